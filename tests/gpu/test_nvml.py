"""NvmlSource against the real pynvml bindings and the fake libnvidia-ml.so.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpm.gpu.nvml import NvmlSource, NvmlUnavailable, decode_throttle_reasons
from gpm.model import GpuProcess
from tests.fakes.fake_nvml import GIB, Scenario, fake_nvml_call_count

OpenSource = Callable[..., NvmlSource]


@pytest.fixture
def open_source(fake_nvml_lib: Path) -> Iterator[OpenSource]:
    """Opens NvmlSource instances (default: the full fake library) and closes them afterwards."""
    opened: list[NvmlSource] = []

    def open_(library: Path = fake_nvml_lib) -> NvmlSource:
        source = NvmlSource(library_path=str(library))
        opened.append(source)
        return source

    yield open_
    for source in opened:
        source.close()


def test_reports_every_gpu_with_exact_values(
    fake_nvml_scenario: Scenario, open_source: OpenSource
) -> None:
    fake_nvml_scenario.set_gpu(
        0,
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-aaaa",
        util_gpu=97,
        util_memory=40,
        memory_total=80 * GIB,
        memory_used=30 * GIB,
        memory_reserved=1 * GIB,
        temperature_c=71,
        power_mw=301_500,
        power_limit_mw=350_000,
        fan_percent=55,
        clock_graphics_mhz=1980,
        clock_sm_mhz=1970,
        clock_memory_mhz=2619,
        pstate=2,
        encoder_util=7,
        decoder_util=9,
        pcie_tx_kbps=100,
        pcie_rx_kbps=200,
        throttle_reasons=0x4 | 0x8,
        energy_mj=123_456,
        ecc_enabled=1,
        ecc_corrected=3,
        ecc_uncorrected=1,
    )
    fake_nvml_scenario.set_gpu(1, name="NVIDIA GeForce RTX 4090", uuid="GPU-bbbb", util_gpu=5)
    fake_nvml_scenario.write()

    snapshot = open_source().poll(1000.0)

    assert snapshot.source == "nvml" and snapshot.message is None
    assert [g.gpu_id for g in snapshot.gpus] == [0, 1]
    h100, rtx = snapshot.gpus
    assert (h100.uuid, h100.name, h100.up, h100.error) == (
        "GPU-aaaa",
        "NVIDIA H100 80GB HBM3",
        True,
        None,
    )
    assert h100.timestamp == 1000.0
    assert (h100.utilization_percent, h100.memory_utilization_percent) == (97.0, 40.0)
    # memory v2: used excludes the reserved gibibyte, free is what is left of both
    assert (h100.memory_total_bytes, h100.memory_used_bytes, h100.memory_free_bytes) == (
        80 * GIB,
        30 * GIB,
        49 * GIB,
    )
    assert h100.temperature_celsius == 71.0
    assert h100.power_watts == pytest.approx(301.5)
    assert h100.power_limit_watts == pytest.approx(350.0)
    assert h100.fan_percent == 55.0
    assert (h100.clock_graphics_mhz, h100.clock_sm_mhz, h100.clock_memory_mhz) == (1980, 1970, 2619)
    assert h100.performance_state == 2
    assert (h100.encoder_utilization_percent, h100.decoder_utilization_percent) == (7.0, 9.0)
    assert (h100.pcie_tx_bytes_per_second, h100.pcie_rx_bytes_per_second) == (102_400, 204_800)
    assert h100.throttle_reasons == ("sw_power_cap", "hw_slowdown")
    assert h100.energy_joules == pytest.approx(123.456)
    assert (h100.ecc_errors_corrected, h100.ecc_errors_uncorrected) == (3, 1)
    assert h100.processes == ()

    assert (rtx.uuid, rtx.name, rtx.utilization_percent) == (
        "GPU-bbbb",
        "NVIDIA GeForce RTX 4090",
        5.0,
    )
    assert rtx.throttle_reasons == ()
    # ECC disabled: no counters, not zeros
    assert (rtx.ecc_errors_corrected, rtx.ecc_errors_uncorrected) == (None, None)


def test_values_change_between_polls(fake_nvml_scenario: Scenario, open_source: OpenSource) -> None:
    fake_nvml_scenario.set_gpu(0, temperature_c=50, util_gpu=10, memory_used=1 * GIB).write()
    source = open_source()
    first = source.poll(1.0).gpus[0]

    fake_nvml_scenario.set_gpu(0, temperature_c=83, util_gpu=99, memory_used=12 * GIB).write()
    second = source.poll(2.0).gpus[0]

    assert (first.temperature_celsius, first.utilization_percent) == (50.0, 10.0)
    assert (second.temperature_celsius, second.utilization_percent) == (83.0, 99.0)
    assert (first.memory_used_bytes, second.memory_used_bytes) == (1 * GIB, 12 * GIB)


def test_processes_merged_by_pid_with_two_call_protocol(
    fake_nvml_scenario: Scenario, open_source: OpenSource, fake_nvml_lib: Path
) -> None:
    fake_nvml_scenario.set_gpu(0).set_processes(
        0,
        compute=[(100, 2 * GIB), (101, None), (102, 512)],
        graphics=[(100, 2 * GIB), (200, 64 << 20)],
    )
    fake_nvml_scenario.set_process_utilization(0, {100: 80, 102: 5}).write()
    source = open_source()
    calls_before = fake_nvml_call_count(fake_nvml_lib, "nvmlDeviceGetComputeRunningProcesses_v3")

    processes = source.poll(1.0).gpus[0].processes

    assert processes is not None
    by_pid = {p.pid: p for p in processes}
    assert by_pid == {
        100: GpuProcess(
            pid=100, gpu_memory_bytes=2 * GIB, kind="compute+graphics", sm_utilization_percent=80.0
        ),
        101: GpuProcess(pid=101, gpu_memory_bytes=None, kind="compute"),
        102: GpuProcess(pid=102, gpu_memory_bytes=512, kind="compute", sm_utilization_percent=5.0),
        200: GpuProcess(pid=200, gpu_memory_bytes=64 << 20, kind="graphics"),
    }
    # one call to learn the size (INSUFFICIENT_SIZE), one with a buffer large enough
    calls = fake_nvml_call_count(fake_nvml_lib, "nvmlDeviceGetComputeRunningProcesses_v3")
    assert calls - calls_before == 2

    fake_nvml_scenario.set_processes(0, compute=[(102, 1024)]).write()
    (only,) = source.poll(2.0).gpus[0].processes or ()
    assert (only.pid, only.gpu_memory_bytes, only.kind) == (102, 1024, "compute")


def test_not_supported_field_is_none_and_not_asked_again(
    fake_nvml_scenario: Scenario, open_source: OpenSource, fake_nvml_lib: Path
) -> None:
    fake_nvml_scenario.set_gpu(0, temperature_c=66, fan_percent=40).not_supported(0, "fan")
    fake_nvml_scenario.fail(0, "power", "NO_PERMISSION").write()
    source = open_source()
    fan_calls = fake_nvml_call_count(fake_nvml_lib, "nvmlDeviceGetFanSpeed")
    power_calls = fake_nvml_call_count(fake_nvml_lib, "nvmlDeviceGetPowerUsage")

    samples = [source.poll(float(t)).gpus[0] for t in range(3)]

    assert all(s.fan_percent is None and s.power_watts is None for s in samples)
    assert all(s.up and s.temperature_celsius == 66.0 for s in samples)
    assert samples[0].power_limit_watts == 250.0
    # NOT_SUPPORTED is a device capability: asked once; NO_PERMISSION is asked every poll
    assert fake_nvml_call_count(fake_nvml_lib, "nvmlDeviceGetFanSpeed") - fan_calls == 1
    assert fake_nvml_call_count(fake_nvml_lib, "nvmlDeviceGetPowerUsage") - power_calls == 3


def test_missing_symbols_read_as_none_or_fall_back(
    fake_nvml_build: Callable[..., Path], fake_nvml_scenario: Scenario, open_source: OpenSource
) -> None:
    lib = fake_nvml_build(
        omit=(
            "nvmlDeviceGetFanSpeed",
            "nvmlDeviceGetMemoryInfo_v2",
            "nvmlDeviceGetTemperatureV",
            "nvmlDeviceGetCurrentClocksEventReasons",
        )
    )
    fake_nvml_scenario.set_gpu(
        0,
        fan_percent=40,
        temperature_c=61,
        memory_total=8 * GIB,
        memory_used=2 * GIB,
        memory_reserved=1 * GIB,
        throttle_reasons=0x20,
    ).write()
    source = open_source(lib)

    first, second = source.poll(1.0).gpus[0], source.poll(2.0).gpus[0]

    assert first.fan_percent is None and second.fan_percent is None
    # the older memory, temperature and throttle calls stand in for the missing ones
    assert (second.memory_used_bytes, second.memory_free_bytes) == (3 * GIB, 5 * GIB)
    assert second.temperature_celsius == 61.0
    assert second.throttle_reasons == ("sw_thermal_slowdown",)
    assert fake_nvml_call_count(lib, "nvmlDeviceGetMemoryInfo") == 2


def test_lost_gpu_goes_down_alone_and_comes_back_after_reinit(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    for i in range(3):
        fake_nvml_scenario.set_gpu(i, uuid=f"GPU-{i}", temperature_c=50 + i)
    fake_nvml_scenario.write()
    source = NvmlSource(library_path=str(fake_nvml_lib), retry_secs=10.0)
    try:
        assert all(g.up for g in source.poll(1.0).gpus)

        fake_nvml_scenario.lose_gpu(1).write()
        inits = fake_nvml_call_count(fake_nvml_lib, "nvmlInitWithFlags")
        lost = source.poll(2.0)  # sees the loss
        still_lost = source.poll(3.0)  # restarts NVML at once; the GPU is still gone
        fake_nvml_scenario.restore_gpu(1).set_gpu(1, temperature_c=44).write()
        waiting = source.poll(4.0)  # next restart not before 13.0
        assert fake_nvml_call_count(fake_nvml_lib, "nvmlInitWithFlags") - inits == 1
        back = source.poll(13.0).gpus[1]
    finally:
        source.close()

    for snapshot in (lost, still_lost, waiting):
        g0, g1, g2 = snapshot.gpus
        assert (g0.up, g2.up) == (True, True)
        assert (g0.temperature_celsius, g2.temperature_celsius) == (50.0, 52.0)
        assert g1.up is False and g1.error is not None and "lost" in g1.error
        assert (g1.uuid, g1.temperature_celsius, g1.processes) == ("GPU-1", None, None)
    assert (back.up, back.error, back.temperature_celsius, back.uuid) == (True, None, 44.0, "GPU-1")


def test_poll_after_close_does_not_restart_nvml(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    fake_nvml_scenario.set_gpu(0).write()
    source = NvmlSource(library_path=str(fake_nvml_lib))
    source.close()
    inits = fake_nvml_call_count(fake_nvml_lib, "nvmlInitWithFlags")

    snapshot = source.poll(1.0)

    assert snapshot.gpus == () and snapshot.message == "the NVML reader is closed"
    assert fake_nvml_call_count(fake_nvml_lib, "nvmlInitWithFlags") == inits


def test_reset_required_marks_gpu_down(
    fake_nvml_scenario: Scenario, open_source: OpenSource
) -> None:
    fake_nvml_scenario.set_gpu(0).write()
    source = open_source()
    fake_nvml_scenario.lose_gpu(0, "RESET_REQUIRED").write()

    (gpu,) = source.poll(1.0).gpus

    assert gpu.up is False and gpu.error is not None and "reset" in gpu.error


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        ("DRIVER_NOT_LOADED", "modprobe nvidia"),
        ("NO_PERMISSION", "/dev/nvidia*"),
        ("LIB_RM_VERSION_MISMATCH", "Reboot"),
    ],
)
def test_init_failure_raises_with_advice(
    fake_nvml_scenario: Scenario, open_source: OpenSource, error: str, advice: str
) -> None:
    fake_nvml_scenario.set_gpu(0).init_error(error).write()

    with pytest.raises(NvmlUnavailable, match="NVML") as info:
        open_source()

    assert advice in str(info.value)


def test_missing_library_path_is_named(open_source: OpenSource, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "libnvidia-ml.so.1"

    with pytest.raises(NvmlUnavailable) as info:
        open_source(missing)

    assert str(missing) in str(info.value) and "gpu.nvml_library" in str(info.value)


def test_process_list_binding_mismatch_makes_processes_unknown(
    fake_nvml_build: Callable[..., Path], fake_nvml_scenario: Scenario, open_source: OpenSource
) -> None:
    lib = fake_nvml_build(omit=("nvmlDeviceGetComputeRunningProcesses_v3",))
    fake_nvml_scenario.set_gpu(0, util_gpu=33).set_processes(0, graphics=[(5, 10)]).write()
    source = open_source(lib)

    first, second = source.poll(1.0).gpus[0], source.poll(2.0).gpus[0]

    assert first.processes is None and second.processes is None
    assert first.up and first.utilization_percent == 33.0


def test_no_gpus_gives_empty_snapshot_with_message(
    fake_nvml_scenario: Scenario, open_source: OpenSource
) -> None:
    snapshot = open_source().poll(1.0)

    assert snapshot.gpus == ()
    assert snapshot.message is not None and "no NVIDIA GPUs" in snapshot.message


def test_close_shuts_nvml_down_once(fake_nvml_scenario: Scenario, fake_nvml_lib: Path) -> None:
    fake_nvml_scenario.set_gpu(0).write()
    source = NvmlSource(library_path=str(fake_nvml_lib))
    shutdowns = fake_nvml_call_count(fake_nvml_lib, "nvmlShutdown")

    source.close()
    source.close()

    assert fake_nvml_call_count(fake_nvml_lib, "nvmlShutdown") - shutdowns == 1


def test_second_library_refused_while_first_is_open(
    fake_nvml_build: Callable[..., Path], fake_nvml_scenario: Scenario, open_source: OpenSource
) -> None:
    fake_nvml_scenario.set_gpu(0).write()
    open_source()
    other = fake_nvml_build(omit=("nvmlDeviceGetComputeRunningProcesses_v3",))  # built once

    with pytest.raises(NvmlUnavailable, match="already in use"):
        open_source(other)


def test_decode_throttle_reasons() -> None:
    assert decode_throttle_reasons(0) == ()
    assert decode_throttle_reasons(0x1 | 0x100) == ("gpu_idle", "display_clock_setting")
    assert decode_throttle_reasons(0x40 | 0x1000) == ("hw_thermal_slowdown", "0x1000")
