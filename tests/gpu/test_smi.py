"""The nvidia-smi fallback: parsers against real captures, SmiSource against fake executables."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from gpm.gpu.smi import SmiSource
from gpm.gpu.smi_parse import (
    MIB,
    decode_clock_event_reasons,
    merge_pmon,
    parse_csv,
    parse_monitor_table,
    pmon_processes,
    processes_from_rows,
    samples_from_rows,
)
from gpm.model import GpuProcess, GpuSample
from tests.conftest import wait_for
from tests.fakes.fake_command import calls_of
from tests.fakes.fake_nvidia_smi import HANGS, NO_DEVICES, TWO_GPUS_OLD_DRIVER, fake_nvidia_smi

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia-smi"
ZERO_UUID = "GPU-00000000-0000-0000-0000-000000000000"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def gpus_from(name: str, fields: list[str] | None = None) -> tuple[GpuSample, ...]:
    problems: list[str] = []
    samples = samples_from_rows(parse_csv(fixture(name), fields, problems), 100.0, None, problems)
    assert problems == []
    return samples


# --- parsers, one test per captured file -------------------------------------------------------


def test_query_gpu_with_units_reads_every_capture() -> None:
    h100, h100_mig, rtx4080, rtx2080 = gpus_from("query-gpu-units.csv")
    assert h100 == GpuSample(
        gpu_id=0,
        timestamp=100.0,
        uuid=ZERO_UUID,
        name="NVIDIA H100 80GB HBM3",
        utilization_percent=100.0,
        memory_utilization_percent=11.0,
        memory_total_bytes=81559 * MIB,
        memory_used_bytes=19818 * MIB,
        memory_free_bytes=61263 * MIB,
        temperature_celsius=59.0,
        power_watts=631.95,
        power_limit_watts=700.0,
        fan_percent=None,
        clock_graphics_mhz=1980,
        clock_memory_mhz=2619,
        performance_state=0,
        encoder_utilization_percent=0.0,
        decoder_utilization_percent=0.0,
        processes=None,
    )
    assert h100_mig.utilization_percent is None
    assert h100_mig.encoder_utilization_percent is None
    assert h100_mig.power_watts == 433.78
    assert h100_mig.memory_used_bytes == 11125 * MIB
    assert (rtx4080.performance_state, rtx4080.fan_percent, rtx4080.power_watts) == (8, 0.0, 26.2)
    assert (rtx4080.clock_graphics_mhz, rtx4080.clock_memory_mhz) == (210, 405)
    assert (rtx2080.performance_state, rtx2080.fan_percent) == (2, 38.0)
    assert rtx2080.encoder_utilization_percent == 100.0
    assert rtx2080.memory_total_bytes == 8192 * MIB


def test_query_gpu_multi_uses_row_position_and_header_aliases() -> None:
    first, second = gpus_from("query-gpu-multi.csv")
    assert (first.gpu_id, first.name, first.fan_percent) == (0, "GeForce GTX 1080 Ti", 37.0)
    assert (first.memory_total_bytes, first.memory_used_bytes) == (11175 * MIB, 10356 * MIB)
    assert (first.utilization_percent, first.temperature_celsius) == (100.0, 67.0)
    assert (first.power_watts, first.clock_graphics_mhz, first.clock_memory_mhz) == (
        280.72,
        1885,
        5508,
    )
    assert (second.gpu_id, second.name, second.power_watts) == (1, "GeForce GTX 1060 6GB", 121.51)
    assert (second.clock_graphics_mhz, second.clock_memory_mhz) == (1746, 3802)


def test_noheader_nounits_reads_na_and_not_supported_as_none() -> None:
    fields = [
        "memory.total",
        "memory.free",
        "memory.used",
        "temperature.gpu",
        "fan.speed",
        "utilization.gpu",
        "utilization.memory",
    ]
    newer, older = gpus_from("query-gpu-nounits-na.csv", fields)
    for gpu in (newer, older):
        assert gpu.fan_percent is None
        assert (gpu.memory_total_bytes, gpu.memory_free_bytes) == (2004 * MIB, 2004 * MIB)
        assert (gpu.memory_used_bytes, gpu.temperature_celsius) == (0, 44.0)
        assert (gpu.utilization_percent, gpu.memory_utilization_percent) == (0.0, 0.0)


def test_v100_noheader_in_driver_order() -> None:
    fields = [
        "fan.speed",
        "memory.total",
        "memory.used",
        "memory.free",
        "pstate",
        "temperature.gpu",
        "name",
        "uuid",
        "utilization.gpu",
        "utilization.memory",
        "index",
    ]
    (v100,) = gpus_from("query-gpu-v100-nounits.csv", fields)
    assert v100.gpu_id == 3
    assert v100.name == "Tesla V100-SXM2-32GB"
    assert v100.uuid == "GPU-124-124-1241-241241241242341"
    assert (v100.fan_percent, v100.performance_state, v100.temperature_celsius) == (None, 0, 35.0)
    assert v100.memory_total_bytes == 32510 * MIB
    assert v100.memory_free_bytes == 32510 * MIB


def test_compute_apps_grouped_by_uuid() -> None:
    procs = processes_from_rows(parse_csv(fixture("query-compute-apps.csv")))
    assert procs == {
        ZERO_UUID: (
            GpuProcess(pid=11345, name="./gpu_burn", gpu_memory_bytes=15690 * MIB),
            GpuProcess(pid=2165, name="/usr/bin/kwin_wayland", gpu_memory_bytes=25 * MIB),
            GpuProcess(pid=5022, name="ffmpeg", gpu_memory_bytes=503 * MIB),
        )
    }


def test_compute_apps_on_windows_has_unknown_memory() -> None:
    procs = processes_from_rows(parse_csv(fixture("query-compute-apps-wddm.csv")))
    assert procs == {
        ZERO_UUID: (GpuProcess(pid=2056, name=r"C:\Windows\System32\dwm.exe"),),
    }


def test_pmon_reads_graphics_processes_and_dashes() -> None:
    found = pmon_processes(parse_monitor_table(fixture("pmon.txt")))
    assert found == [
        (0, GpuProcess(pid=2165, name="kwin_wayland", kind="compute+graphics")),
        (0, GpuProcess(pid=2954, name="plasmashell", kind="graphics")),
        (0, GpuProcess(pid=5022, name="ffmpeg", kind="compute", sm_utilization_percent=5.0)),
    ]


def test_dmon_columns_by_header_name() -> None:
    (row,) = parse_monitor_table(fixture("dmon.txt"))
    assert row == {
        "gpu": "0",
        "pwr": "631",
        "gtemp": "63",
        "mtemp": "57",
        "sm": "100",
        "mem": "10",
        "enc": "0",
        "dec": "0",
        "jpg": "0",
        "ofa": "0",
        "mclk": "2619",
        "pclk": "1980",
    }


def test_every_fixture_file_has_a_test() -> None:
    tested = {
        "query-gpu-units.csv",
        "query-gpu-multi.csv",
        "query-gpu-nounits-na.csv",
        "query-gpu-v100-nounits.csv",
        "query-compute-apps.csv",
        "query-compute-apps-wddm.csv",
        "pmon.txt",
        "dmon.txt",
        # -q -x reports, in test_smi_xml.py
        "q-x-a100-mig.xml",
        "q-x-a100-mig-2procs.derived.xml",
        "q-x-rtx4090-remapped-rows.xml",
        "q-x-rtx4000ada-v13.xml",
        "q-x-p100-retired-pages.xml",
        "q-x-dual-a5000-v13.xml",
        "q-x-rtx3080-v13.xml",
    }
    assert {p.name for p in FIXTURES.iterdir()} == tested


# --- parser edge cases ---------------------------------------------------------------------------


def test_clock_event_bitmask_uses_nvml_names() -> None:
    assert decode_clock_event_reasons(0) == ()
    assert decode_clock_event_reasons(0x1 | 0x4 | 0x40) == (
        "gpu_idle",
        "sw_power_cap",
        "hw_thermal_slowdown",
    )
    assert decode_clock_event_reasons(0x1FF)[-1] == "display_clock_setting"
    assert len(decode_clock_event_reasons(0x1FF)) == 9


def test_every_no_value_token_is_none() -> None:
    tokens = [
        "[N/A]",
        "N/A",
        "[Not Supported]",
        "[Insufficient Permissions]",
        "[Requested functionality has been deprecated]",
        "[Unknown Error]",
    ]
    rows = parse_csv(
        "\n".join(f"{i}, {t}, {t}" for i, t in enumerate(tokens)),
        ["index", "power.draw", "clocks_event_reasons.active"],
    )
    samples = samples_from_rows(rows, 1.0)
    assert [s.gpu_id for s in samples] == list(range(len(tokens)))
    assert all(s.power_watts is None and s.throttle_reasons is None for s in samples)


def test_bad_cell_is_reported_and_the_rest_of_the_row_kept() -> None:
    problems: list[str] = []
    rows = parse_csv(
        "0, banana, P9, 0x0000000000000024, 7, 1",
        [
            "index",
            "power.draw",
            "pstate",
            "clocks_throttle_reasons.active",
            "ecc.errors.corrected.volatile.total",
            "ecc.errors.uncorrected.volatile.total",
        ],
    )
    (gpu,) = samples_from_rows(rows, 1.0, problems=problems)
    assert problems == ["power.draw: 'banana' is not a number"]
    assert gpu.power_watts is None
    assert gpu.performance_state == 9
    assert gpu.throttle_reasons == ("sw_power_cap", "sw_thermal_slowdown")
    assert (gpu.ecc_errors_corrected, gpu.ecc_errors_uncorrected) == (7, 1)


def test_line_with_wrong_cell_count_is_skipped_with_a_reason() -> None:
    problems: list[str] = []
    rows = parse_csv(
        "0, 50\nWARNING: infoROM is corrupted\n1, 60", ["index", "utilization.gpu"], problems
    )
    assert [r["index"] for r in rows] == ["0", "1"]
    assert len(problems) == 1 and "infoROM" in problems[0]


def test_process_name_with_commas_is_joined_back() -> None:
    rows = parse_csv(
        "GPU-a, 77, python -c f(1, 2), 300", ["gpu_uuid", "pid", "process_name", "used_gpu_memory"]
    )
    assert processes_from_rows(rows) == {
        "GPU-a": (GpuProcess(pid=77, name="python -c f(1, 2)", gpu_memory_bytes=300 * MIB),)
    }


def test_merge_pmon_adds_graphics_and_sm_and_keeps_memory() -> None:
    procs = processes_from_rows(parse_csv(fixture("query-compute-apps.csv")))
    (base,) = samples_from_rows([{"index": "0", "uuid": ZERO_UUID}], 1.0, procs)
    (merged,) = merge_pmon([base], pmon_processes(parse_monitor_table(fixture("pmon.txt"))))
    assert merged.processes is not None
    by_pid = {p.pid: p for p in merged.processes}
    assert by_pid[2165] == GpuProcess(
        pid=2165, name="/usr/bin/kwin_wayland", gpu_memory_bytes=25 * MIB, kind="compute+graphics"
    )
    assert by_pid[2954] == GpuProcess(pid=2954, name="plasmashell", kind="graphics")
    assert by_pid[5022].sm_utilization_percent == 5.0
    assert by_pid[5022].gpu_memory_bytes == 503 * MIB
    assert by_pid[11345].kind == "compute"
    unknown = GpuSample(gpu_id=0, timestamp=1.0, processes=None)
    assert merge_pmon([unknown], [(0, by_pid[2954])]) == (unknown,)


# --- SmiSource against fake nvidia-smi executables (tests/fakes/fake_nvidia_smi.py) -----------


def test_fallback_end_to_end_with_rejected_fields_remembered(tmp_path: Path) -> None:
    exe, log = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER)
    source = SmiSource(exe, timeout=10.0)
    snap = source.poll(1000.0)
    assert (snap.source, snap.message, snap.timestamp) == ("nvidia-smi", None, 1000.0)
    assert snap.poll_seconds is not None and snap.poll_seconds >= 0
    gpu0, gpu1 = snap.gpus
    assert (gpu0.gpu_id, gpu0.uuid, gpu0.name) == (0, "GPU-aaaa", "NVIDIA GeForce RTX 4090")
    assert (gpu0.utilization_percent, gpu0.memory_used_bytes) == (97.0, 20000 * MIB)
    assert (gpu0.power_watts, gpu0.power_limit_watts, gpu0.performance_state) == (301.52, 450.0, 2)
    assert (gpu0.clock_sm_mhz, gpu0.decoder_utilization_percent) == (2520, 3.0)
    assert gpu0.throttle_reasons == ("sw_power_cap",)
    assert (gpu0.ecc_errors_corrected, gpu0.timestamp, gpu0.simulated) == (None, 1000.0, False)
    assert gpu0.processes == (
        GpuProcess(
            pid=4242,
            name="/usr/bin/ollama",
            gpu_memory_bytes=8000 * MIB,
            sm_utilization_percent=90.0,
        ),
        GpuProcess(pid=5151, name="python -c train(a, b)", gpu_memory_bytes=1000 * MIB),
    )
    assert (gpu1.power_watts, gpu1.fan_percent, gpu1.encoder_utilization_percent) == (
        None,
        None,
        None,
    )
    assert gpu1.throttle_reasons == ("gpu_idle",)
    assert gpu1.processes == (
        GpuProcess(pid=6000, name="game.exe", kind="graphics", sm_utilization_percent=10.0),
    )
    queried = [c[0] for c in calls_of(log) if c[0].startswith("--query-gpu=")]
    assert len(queried) > 1  # rejected fields were retried without them
    assert "clocks_throttle_reasons.active" in source.gpu_fields
    assert not any(f.startswith("ecc.") for f in source.gpu_fields)

    log.write_text("")
    assert source.poll(1002.0).gpus[0].throttle_reasons == ("sw_power_cap",)
    again = [c for c in calls_of(log) if c[0].startswith("--query-gpu=")]
    assert again == [
        [f"--query-gpu={','.join(source.gpu_fields)}", "--format=csv,noheader,nounits"]
    ]


def test_newer_driver_keeps_every_field(tmp_path: Path) -> None:
    extra = [
        "clocks_event_reasons.active",
        "ecc.errors.corrected.volatile.total",
        "ecc.errors.uncorrected.volatile.total",
    ]
    exe, log = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER, extra_fields=extra)
    snap = SmiSource(exe, timeout=10.0, use_pmon=False).poll(5.0)
    assert snap.gpus[0].ecc_errors_corrected == 0
    assert snap.gpus[0].processes is not None and len(snap.gpus[0].processes) == 2
    assert [c[0] for c in calls_of(log)].count("pmon") == 0
    assert sum(c[0].startswith("--query-gpu=") for c in calls_of(log)) == 1


def test_pmon_failure_keeps_the_poll_and_stops_asking(tmp_path: Path) -> None:
    exe, log = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER, pmon_fails=True)
    source = SmiSource(exe, timeout=10.0)
    snap = source.poll(1.0)
    assert snap.message is None
    assert snap.gpus[1].processes == ()
    assert source.use_pmon is False
    log.write_text("")
    source.poll(2.0)
    assert all(c[0] != "pmon" for c in calls_of(log))


def _dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_hanging_nvidia_smi_is_killed_at_the_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    exe, _ = fake_nvidia_smi(tmp_path, HANGS, pids=str(pids))
    source = SmiSource(exe, timeout=1.0)
    started = time.monotonic()
    snap = source.poll(7.0)
    elapsed = time.monotonic() - started
    assert elapsed < 5.0
    assert snap.gpus == ()
    assert snap.message is not None and "timed out after 1 s and was killed" in snap.message
    assert snap.message.startswith(f"{exe} --query-gpu")
    started_pids = [int(p) for line in pids.read_text().splitlines() for p in line.split()]
    assert started_pids  # the fake did start before it was killed
    wait_for(
        lambda: all(_dead(p) for p in started_pids),
        timeout=5.0,
        interval=0.02,
        what="the fake and its child to die",
    )
    assert [p for p in started_pids if not _dead(p)] == []


def test_nonzero_exit_gives_a_message_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exe, _ = fake_nvidia_smi(tmp_path, NO_DEVICES)
    logger = logging.getLogger("test.smi.fail")
    source = SmiSource(exe, timeout=10.0, use_pmon=False, logger=logger)
    with caplog.at_level(logging.WARNING, logger="test.smi.fail"):
        first = source.poll(1.0)
        second = source.poll(2.0)
    assert first.gpus == () and second.gpus == ()
    assert first.message == f"{exe} exited with 6: No devices were found"
    assert [r.getMessage() for r in caplog.records] == [f"nvidia-smi: {first.message}"]


def test_missing_executable_is_a_message_not_a_crash(tmp_path: Path) -> None:
    snap = SmiSource(str(tmp_path / "absent"), timeout=1.0).poll(3.0)
    assert snap.gpus == ()
    assert snap.message is not None and snap.message.startswith(f"cannot run {tmp_path}/absent")


# --- nvidia-smi -q -x on its own cadence (gpm/gpu/smi_xml.py parses it) ------------------------

A100_UUID = "GPU-513536b6-7d19-9063-b049-1e69664bb298"


def q_x_report(tmp_path: Path, name: str, uuids: dict[str, str]) -> str:
    """A -q -x capture whose GPU uuids are those of the fake's CSV answers, as a file."""
    text = fixture(name)
    for captured, fake in uuids.items():
        text = text.replace(captured, fake)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def xml_runs(log: Path) -> int:
    return calls_of(log).count(["-q", "-x"])


def test_q_x_is_merged_into_every_poll_but_run_only_each_interval(tmp_path: Path) -> None:
    report = q_x_report(tmp_path, "q-x-a100-mig-2procs.derived.xml", {A100_UUID: "GPU-aaaa"})
    exe, log = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER, q_x=report)
    source = SmiSource(exe, timeout=10.0, use_pmon=False, xml_interval=30.0)
    # (the poll's clock, -q -x runs so far): every 30 s, and again when the clock goes back
    for now, runs in ((1000.0, 1), (1002.0, 1), (1029.9, 1), (1030.0, 2), (1031.0, 2), (900.0, 3)):
        gpu0, gpu1 = source.poll(now).gpus
        assert xml_runs(log) == runs, now
        assert gpu0.utilization_percent == 97.0  # the CSV's readings stand
        assert gpu0.ecc_errors_corrected_aggregate == 0
        assert gpu0.mig_devices is not None
        assert [(m.index, m.memory_total_bytes) for m in gpu0.mig_devices] == [
            (i, 19968 * MIB) for i in range(4)
        ]
        assert gpu0.processes == (
            GpuProcess(pid=4242, name="/usr/bin/ollama", gpu_memory_bytes=8000 * MIB, mig_index=0),
            GpuProcess(
                pid=5151, name="python -c train(a, b)", gpu_memory_bytes=1000 * MIB, mig_index=1
            ),
        )
        assert (gpu1.uuid, gpu1.mig_devices, gpu1.ecc_errors_corrected_aggregate) == (
            "GPU-bbbb",
            None,
            None,
        )


def test_q_x_adds_memory_health_and_the_processes_only_it_lists(tmp_path: Path) -> None:
    a5000 = ("GPU-12345678-aaaa-bbbb-cccc-0123456789ab", "GPU-12345678-aaaa-bbbb-cccc-0123456789cd")
    report = q_x_report(
        tmp_path, "q-x-dual-a5000-v13.xml", dict(zip(a5000, ("GPU-aaaa", "GPU-bbbb"), strict=True))
    )
    exe, _ = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER, q_x=report)
    gpu0, gpu1 = SmiSource(exe, timeout=10.0).poll(5.0).gpus
    for gpu in (gpu0, gpu1):
        assert (gpu.remapped_rows_correctable, gpu.remap_pending, gpu.remap_failed) == (0, 0, 0)
    assert gpu0.processes is not None and gpu1.processes is not None
    assert [p.pid for p in gpu0.processes] == [4242, 5151, 100477]
    assert gpu1.processes == (
        GpuProcess(pid=6000, name="game.exe", kind="graphics", sm_utilization_percent=10.0),
        GpuProcess(
            pid=100477,
            name="/root/src/llama.cpp/build/bin/llama-server",
            gpu_memory_bytes=17246 * MIB,
        ),
    )


def test_q_x_off_is_never_run(tmp_path: Path) -> None:
    report = q_x_report(tmp_path, "q-x-a100-mig.xml", {A100_UUID: "GPU-aaaa"})
    exe, log = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER, q_x=report)
    source = SmiSource(exe, timeout=10.0, use_pmon=False, xml_interval=0)
    assert [source.poll(now).gpus[0].mig_devices for now in (1.0, 100.0)] == [None, None]
    assert xml_runs(log) == 0
    assert sum(c[0].startswith("--query-gpu=") for c in calls_of(log)) > 0


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        ("exits", "exited with 15: Unable to determine the device handle"),
        ("garbled", "printed no readable XML"),
    ],
)
def test_failing_q_x_keeps_the_csv_readings_and_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, broken: str, said: str
) -> None:
    if broken == "garbled":
        garbled = tmp_path / "garbled.xml"
        garbled.write_text(fixture("q-x-a100-mig.xml")[:3000])  # cut off mid-report
        exe, log = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER, q_x=str(garbled))
    else:
        exe, log = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER)
    logger = logging.getLogger("test.smi.xml")
    source = SmiSource(exe, timeout=10.0, use_pmon=False, xml_interval=30.0, logger=logger)
    with caplog.at_level(logging.INFO, logger="test.smi.xml"):
        snaps = [source.poll(now) for now in (0.0, 10.0, 30.0, 60.0)]
        assert xml_runs(log) == 3  # at 0, 30 and 60 s: tried again each interval
        assert [s.message for s in snaps] == [None] * 4
        assert [s.gpus[0].utilization_percent for s in snaps] == [97.0] * 4
        assert all(s.gpus[0].mig_devices is None for s in snaps)
        (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert warning.getMessage().startswith("nvidia-smi -q -x (memory health, MIG; tried every")
        assert said in warning.getMessage()

        report = q_x_report(tmp_path, "q-x-a100-mig.xml", {A100_UUID: "GPU-aaaa"})
        exe, _ = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER, q_x=report)
        healed = source.poll(90.0)
    assert healed.gpus[0].mig_devices is not None and len(healed.gpus[0].mig_devices) == 4
    assert caplog.records[-1].getMessage() == "nvidia-smi -q -x readings are back"


def test_hanging_q_x_is_killed_and_the_poll_keeps_its_csv_readings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exe, _ = fake_nvidia_smi(tmp_path, TWO_GPUS_OLD_DRIVER, q_x_hangs=True)
    logger = logging.getLogger("test.smi.xml.hang")
    source = SmiSource(exe, timeout=1.0, use_pmon=False, logger=logger)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="test.smi.xml.hang"):
        snap = source.poll(1.0)
    assert time.monotonic() - started < 5.0
    assert snap.message is None
    assert [g.uuid for g in snap.gpus] == ["GPU-aaaa", "GPU-bbbb"]
    assert [r.getMessage() for r in caplog.records] == [
        f"nvidia-smi -q -x (memory health, MIG; tried every 30 s): {exe} -q -x timed out after "
        "1 s and was killed"
    ]
