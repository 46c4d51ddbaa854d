"""GPUs read concurrently: a poll costs the slowest GPU, not the sum of all, a GPU that hangs
cannot hold up the others, and the service's event loop stays free while NVML works.

The fake library spends each scenario latency outside its lock, as a real driver's calls on
different GPUs overlap; REALISTIC_LATENCIES_US gives PCIe throughput its 20 ms per direction.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from gpm.gpu.nvml import STALE_AFTER_SECS, NvmlSource
from tests.conftest import GpmProcess, get_json, wait_for
from tests.fakes.fake_nvml import Scenario


def timed_poll(source: NvmlSource, now: float) -> tuple[float, list[object]]:
    start = time.perf_counter()
    snap = source.poll(now)
    return time.perf_counter() - start, list(snap.gpus)


def eight_slow_gpus(scenario: Scenario, lib: Path) -> NvmlSource:
    """8 GPUs with ECC on and a real driver's latencies (REALISTIC_LATENCIES_US)."""
    for i in range(8):
        scenario.set_gpu(i, ecc_enabled=1)
    scenario.realistic_latencies().write()
    return NvmlSource(str(lib))


def test_eight_gpus_poll_in_the_time_of_one(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    source = eight_slow_gpus(fake_nvml_scenario, fake_nvml_lib)
    try:
        source.poll(0.0)  # first poll: unsupported calls are learnt
        wall, gpus = timed_poll(source, 1.0)
    finally:
        source.close()
    assert len(gpus) == 8 and all(g.up for g in gpus)  # type: ignore[attr-defined]
    # One GPU alone spends at least 2 x 20 ms on PCIe plus its lists and ECC: about 50 ms. In
    # series 8 would take 400 ms; together they take about one GPU's time.
    assert 0.045 < wall < 0.25, wall


def test_a_hung_gpu_does_not_hold_up_the_others(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    for i in range(3):
        fake_nvml_scenario.set_gpu(i, temperature_c=50 + i)
    fake_nvml_scenario.write()
    source = NvmlSource(str(fake_nvml_lib), read_timeout=0.3)
    try:
        _, before = timed_poll(source, 1.0)
        fake_nvml_scenario.set_latency("nvmlDeviceGetUtilizationRates", 2_000_000, gpu=1)
        fake_nvml_scenario.set_gpu(0, temperature_c=70).write()
        wall, gpus = timed_poll(source, 2.0)
        assert wall < 0.6, wall  # bounded by read_timeout, not by GPU 1's two seconds
        g0, g1, g2 = gpus
        assert (g0.timestamp, g0.temperature_celsius) == (2.0, 70)  # type: ignore[attr-defined]
        assert g2.timestamp == 2.0  # type: ignore[attr-defined]
        assert g1 is before[1]  # GPU 1: its previous reading, until it answers
        # While GPU 1's read is still out, the next poll does not pile another one on it.
        _, again = timed_poll(source, 3.0)
        assert again[1] is before[1]
        # Past STALE_AFTER_SECS its last values are no longer passed off as live.
        _, later = timed_poll(source, 1.0 + STALE_AFTER_SECS + 1)
        assert not later[1].up and "has not answered" in (later[1].error or "")  # type: ignore[attr-defined]
    finally:
        source.close()


async def test_the_event_loop_stays_free_while_gpus_are_read(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    source = eight_slow_gpus(fake_nvml_scenario, fake_nvml_lib)
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        """How late a 5 ms sleep wakes: the loop's lag."""
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - start - 0.005)

    try:
        watcher = asyncio.create_task(probe())
        for k in range(10):
            await asyncio.to_thread(source.poll, float(k))  # as the service polls
        done.set()
        await watcher
    finally:
        source.close()
    lags.sort()
    assert len(lags) > 20
    assert lags[len(lags) // 2] < 0.005, lags  # median lag under 5 ms


def test_the_poll_phases_are_reported(
    gpm_process: Callable[..., GpmProcess], fake_nvml_lib: Path, tmp_path: Path
) -> None:
    scenario = Scenario(tmp_path / "scenario.txt")
    for i in range(8):
        scenario.set_gpu(i)
    scenario.realistic_latencies().write()
    gpm = gpm_process(
        GPM_GPU_NVML_LIBRARY=str(fake_nvml_lib), FAKE_NVML_SCENARIO=str(scenario.path)
    )
    gpm.start("run").wait_ready()
    phases = wait_for(lambda: get_json(gpm.api + "/api/info")["poll_phase_seconds"])
    assert set(phases) == {"gpus", "classify", "record"}
    # 8 GPUs of about 45 ms each (two 20 ms PCIe samples), read together.
    assert 0.04 < phases["gpus"] < 0.3, phases
    with urllib.request.urlopen(f"http://127.0.0.1:{gpm.ports['metrics']}/metrics") as resp:
        assert 'gpm_poll_phase_seconds{phase="gpus"}' in resp.read().decode()


def test_pcie_throughput_can_be_left_out(fake_nvml_scenario: Scenario, fake_nvml_lib: Path) -> None:
    """gpu.pcie_throughput = false: no 2 x 20 ms PCIe sample, and no PCIe reading (null)."""
    fake_nvml_scenario.set_gpu(0, pcie_tx_kbps=100).realistic_latencies().write()
    source = NvmlSource(str(fake_nvml_lib), pcie_throughput=False)
    try:
        source.poll(0.0)
        wall, (gpu,) = timed_poll(source, 1.0)
    finally:
        source.close()
    assert gpu.pcie_tx_bytes_per_second is None  # type: ignore[attr-defined]
    assert wall < 0.035, wall  # the rest of the calls: about 7 ms
