"""CPU time of the Xid event thread while no event comes, on 8 GPUs of the fake NVML library.

The thread waits in ``nvmlEventSetWait_v2`` (500 ms per wait). A real driver blocks in the
kernel there; the fake library instead checks its scenario every 5 ms inside the call, so the
figure below is an upper bound that includes the fake's own polling.

Run from the repository root: ``.venv/bin/python bench/xid_idle.py [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpm.gpu.events import XidWatcher
from tests.fakes.fake_nvml import Scenario, build_fake_nvml


def thread_cpu_seconds(native_id: int) -> float:
    """User + system CPU of one thread, from /proc (clock ticks)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_fake_nvml(Path(tmp))
        scenario = Scenario(Path(tmp) / "scenario.txt")
        for i in range(8):
            scenario.set_gpu(i)
        scenario.write()
        os.environ["FAKE_NVML_SCENARIO"] = str(scenario.path)
        watcher = XidWatcher(str(lib), lambda e: None)
        watcher.start()
        watcher.ready.wait(10)
        thread = watcher._thread
        assert thread is not None and thread.native_id is not None
        start = thread_cpu_seconds(thread.native_id)
        time.sleep(args.seconds)  # the measuring window: the thread idles
        used = thread_cpu_seconds(thread.native_id) - start
        watcher.stop()
    print(
        f"Xid thread idle on 8 GPUs for {args.seconds:.0f} s: {used:.2f} s CPU "
        f"({100 * used / args.seconds:.2f} % of one core, fake library's 5 ms polling included)"
    )


if __name__ == "__main__":
    main()
