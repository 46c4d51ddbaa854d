"""CPU cost of the energy meter: per GPU per poll (ledger + process split), per LLM session
(placement, a ledger read at each edge, the split among sessions), against the fake NVML library.

Run from the repository root: ``.venv/bin/python bench/energy.py``. The poll figure excludes the
NVML poll itself (bench/poll.py measures that); the session figure includes its two ledger reads
(one NVML energy call per GPU each) and the placement's /proc lookups for a backend listening on
a local port.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpm.energy.meter import EnergyMeter
from gpm.energy.placement import SessionPlacement
from gpm.gpu.nvml import NvmlSource
from gpm.model import LlmSession
from tests.fakes.fake_nvml import GIB, Scenario, build_fake_nvml

GPUS = 8
PROCESSES_PER_GPU = 4


async def measure(lib: Path, scenario: Scenario, port: int) -> None:
    for i in range(GPUS):
        scenario.set_gpu(i, power_mw=250_000, energy_rate_mw=250_000, util_gpu=60)
        pids = [10_000 * (i + 1) + p for p in range(PROCESSES_PER_GPU)]
        scenario.set_processes(i, compute=[(pid, GIB) for pid in pids])
        scenario.set_process_utilization(i, {pid: 10 + p for p, pid in enumerate(pids)})
    scenario.set_processes(1, compute=[(os.getpid(), GIB)])  # the "backend" on GPU 1
    scenario.write()
    source = NvmlSource(str(lib))
    meter = EnergyMeter(source, SessionPlacement(port))
    try:
        snaps = [source.poll(time.time() + k) for k in range(200)]
        await meter.poll(snaps[0], [])
        start = time.process_time()
        for snap in snaps[1:]:
            await meter.poll(snap, [])
        per_poll = (time.process_time() - start) / (len(snaps) - 1)
        sessions = 300
        start = time.process_time()
        for k in range(sessions):
            s = LlmSession(id=str(k), model="m", endpoint="/api/chat", started_at=time.time())
            await meter.session_started(s, snaps[-1])
            await meter.session_finished(s)
        per_session = (time.process_time() - start) / sessions
    finally:
        source.close()
    print(
        f"{GPUS} GPUs, {PROCESSES_PER_GPU} processes each: "
        f"poll {per_poll / GPUS * 1e3:.4f} ms CPU per GPU; "
        f"session {per_session * 1e3:.3f} ms CPU (placement, 2 ledger reads, split)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as backend:
        backend.bind(("127.0.0.1", 0))
        backend.listen()
        lib = build_fake_nvml(Path(tmp))
        scenario = Scenario(Path(tmp) / "scenario.txt")
        os.environ["FAKE_NVML_SCENARIO"] = str(scenario.path)
        for _ in range(3):
            asyncio.run(measure(lib, scenario, backend.getsockname()[1]))


if __name__ == "__main__":
    main()
