"""CPU time of one NVML poll per GPU, against the fake libnvidia-ml.so.1.

Splits the time into the NVML calls themselves (the pynvml bindings plus the fake library,
measured by a pass that makes only the raw calls) and GPM's own work on top (building samples,
merging process lists, decoding throttle reasons, handling errors). Needs gcc and nvml.h, as
the tests do. Run from the repository root: ``.venv/bin/python bench/poll.py`` (every health
reading on, 18 NVLink links), with ``--no-health`` for a GPU without them, or with ``--mig`` for
GPUs in MIG mode with 7 MIG devices each, a process on each. ``--realistic`` gives the slow calls
what they take on a real driver (REALISTIC_LATENCIES_US: PCIe throughput 20 ms per direction)
and prints the wall time of one poll for 1 and 8 GPUs, read one after another (as GPM did
before 0.2) and together, against the floor: the slowest GPU's own calls.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pynvml as nv

from gpm.gpu.nvml import NvmlSource
from tests.fakes.fake_nvml import GIB, Scenario, build_fake_nvml

PROCESSES_PER_GPU = 4
NVLINKS = 18  # an H100 SXM's links
HEALTH = "--no-health" not in sys.argv  # with memory health, NVLink and field values on
MIG = 7 if "--mig" in sys.argv else 0  # MIG devices per GPU (7: the most an A100/H100 takes)


def raw_pass(handles: list[object]) -> None:
    """The NVML calls one poll makes, with nothing done to their results."""
    for h in handles:
        nv.nvmlDeviceGetUtilizationRates(h)
        nv.nvmlDeviceGetMemoryInfo(h, nv.nvmlMemory_v2)
        nv.nvmlDeviceGetPerformanceState(h)
        nv.nvmlDeviceGetEncoderUtilization(h)
        nv.nvmlDeviceGetDecoderUtilization(h)
        nv.nvmlDeviceGetPcieThroughput(h, nv.NVML_PCIE_UTIL_TX_BYTES)
        nv.nvmlDeviceGetPcieThroughput(h, nv.NVML_PCIE_UTIL_RX_BYTES)
        nv.nvmlDeviceGetCurrentClocksEventReasons(h)
        nv.nvmlDeviceGetTotalEccErrors(h, nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_VOLATILE_ECC)
        nv.nvmlDeviceGetTotalEccErrors(
            h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC
        )
        nv.nvmlDeviceGetTemperatureV(h, nv.NVML_TEMPERATURE_GPU)
        nv.nvmlDeviceGetPowerUsage(h)
        nv.nvmlDeviceGetEnforcedPowerLimit(h)
        nv.nvmlDeviceGetFanSpeed(h)
        for clock in (nv.NVML_CLOCK_GRAPHICS, nv.NVML_CLOCK_SM, nv.NVML_CLOCK_MEM):
            nv.nvmlDeviceGetClockInfo(h, clock)
        nv.nvmlDeviceGetTotalEnergyConsumption(h)
        nv.nvmlDeviceGetComputeRunningProcesses(h)
        nv.nvmlDeviceGetGraphicsRunningProcesses(h)
        nv.nvmlDeviceGetProcessUtilization(h, 0)
        if MIG:
            nv.nvmlDeviceGetMigMode(h)
            for index in range(nv.nvmlDeviceGetMaxMigDeviceCount(h)):
                mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(h, index)
                nv.nvmlDeviceGetUUID(mig)
                nv.nvmlDeviceGetMemoryInfo(mig)
                nv.nvmlDeviceGetComputeRunningProcesses(mig)
                with contextlib.suppress(nv.NVMLError_NotSupported):
                    nv.nvmlDeviceGetUtilizationRates(mig)
        if not HEALTH:
            continue
        nv.nvmlDeviceGetFieldValues(
            h, [nv.NVML_FI_DEV_MEMORY_TEMP, nv.NVML_FI_DEV_PCIE_REPLAY_COUNTER]
        )
        nv.nvmlDeviceGetRemappedRows(h)
        for cause in (
            nv.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
            nv.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
        ):
            nv.nvmlDeviceGetRetiredPages(h, cause)
        nv.nvmlDeviceGetRetiredPagesPendingStatus(h)
        for kind in (nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED):
            nv.nvmlDeviceGetTotalEccErrors(h, kind, nv.NVML_AGGREGATE_ECC)
        for link in range(NVLINKS):
            nv.nvmlDeviceGetNvLinkState(h, link)
            for counter in (
                nv.NVML_NVLINK_ERROR_DL_CRC_FLIT,
                nv.NVML_NVLINK_ERROR_DL_REPLAY,
                nv.NVML_NVLINK_ERROR_DL_RECOVERY,
            ):
                nv.nvmlDeviceGetNvLinkErrorCounter(h, link, counter)


def cpu_per_call(fn: Callable[[], object], repeat: int) -> float:
    """Mean CPU seconds of ``fn()`` over ``repeat`` calls."""
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat


def best_of(rounds: int, repeat: int, *fns: Callable[[], object]) -> list[float]:
    """Per function, the lowest mean over interleaved rounds: the least disturbed by neighbours."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], cpu_per_call(fn, repeat))
    return best


def measure(lib: Path, scenario: Scenario, gpus: int, repeat: int) -> None:
    for i in range(gpus):
        scenario.set_gpu(i, util_gpu=50, memory_used=4 * GIB, ecc_enabled=1, throttle_reasons=0x5)
        if HEALTH:  # a data-centre GPU: every health reading there, 18 NVLink links up
            scenario.set_gpu(
                i, memory_temperature_c=70, pcie_replay=0, remap_correctable=0,
                remap_uncorrectable=0, remap_pending=0, remap_failure=0, retired_sbe=0,
                retired_dbe=0, retired_pending=0, ecc_corrected_aggregate=0,
                ecc_uncorrected_aggregate=0, nvlink_links=NVLINKS, nvlink_active=NVLINKS,
                nvlink_crc=0, nvlink_replay=0, nvlink_recovery=0,
            )  # fmt: skip
        pids = [10_000 * (i + 1) + p for p in range(PROCESSES_PER_GPU)]
        scenario.set_processes(
            i, compute=[(pid, GIB) for pid in pids[:3]], graphics=[(pids[2], GIB), (pids[3], 1)]
        )
        scenario.set_process_utilization(i, {pid: 25 for pid in pids})
        for k in range(MIG):
            scenario.set_mig(
                i, k, gi=k + 1, ci=0, memory_total=10 * GIB, memory_used=GIB,
                compute=[(50_000 + 10 * i + k, GIB)],
            )  # fmt: skip
    scenario.write()
    source = NvmlSource(library_path=str(lib))
    try:
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(gpus)]
        full, raw = best_of(7, repeat, lambda: source.poll(time.time()), lambda: raw_pass(handles))
    finally:
        source.close()
    per_gpu = 1e3 / gpus
    print(
        f"{gpus} GPU(s), {PROCESSES_PER_GPU + MIG} processes each"
        f"{f', {MIG} MIG devices each' if MIG else ''}: "
        f"full poll {full * per_gpu:.3f} ms/GPU, NVML calls {raw * per_gpu:.3f} ms/GPU, "
        f"GPM's own work {(full - raw) * per_gpu:.3f} ms/GPU"
    )


def wall(lib: Path, scenario: Scenario, gpus: int, polls: int = 10) -> None:
    """Wall time of one poll with realistic latencies: serial, concurrent, and the floor."""
    for i in range(gpus):
        scenario.set_gpu(i, util_gpu=50, ecc_enabled=1)
    scenario.realistic_latencies().write()
    source = NvmlSource(library_path=str(lib))
    try:
        source.poll(time.time())  # learn what is unsupported
        devices = list(source._devices)

        def serial() -> None:
            for dev in devices:
                source._poll_device(dev, time.time())

        def timed(fn: Callable[[], object]) -> float:
            runs = []
            for _ in range(polls):
                start = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - start)
            return sorted(runs)[len(runs) // 2] * 1e3

        one = timed(lambda: source._poll_device(devices[0], time.time()))
        print(
            f"{gpus} GPU(s), realistic latencies: one poll serial {timed(serial):.0f} ms, "
            f"concurrent {timed(lambda: source.poll(time.time())):.0f} ms; "
            f"floor (one GPU's calls) {one:.0f} ms"
        )
    finally:
        source.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_fake_nvml(Path(tmp))
        scenario = Scenario(Path(tmp) / "scenario.txt")
        os.environ["FAKE_NVML_SCENARIO"] = str(scenario.path)
        if "--realistic" in sys.argv:
            wall(lib, scenario, gpus=1)
            wall(lib, scenario, gpus=8)
            return
        measure(lib, scenario, gpus=1, repeat=400)
        measure(lib, scenario, gpus=8, repeat=60)


if __name__ == "__main__":
    main()
