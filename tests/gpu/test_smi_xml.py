"""``nvidia-smi -q -x``: the parser against real captures, and its merge into the CSV samples."""

from __future__ import annotations

from pathlib import Path

from gpm.gpu.smi_parse import MIB
from gpm.gpu.smi_xml import XmlGpu, merge_xml, parse_xml
from gpm.model import GpuProcess, GpuSample, MigDevice

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia-smi"
A100_UUID = "GPU-513536b6-7d19-9063-b049-1e69664bb298"
A5000_UUIDS = (
    "GPU-12345678-aaaa-bbbb-cccc-0123456789ab",
    "GPU-12345678-aaaa-bbbb-cccc-0123456789cd",
)
NO_REMAP = {
    "remapped_rows_correctable": 0,
    "remapped_rows_uncorrectable": 0,
    "remap_pending": 0,
    "remap_failed": 0,
}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def parsed(text: str) -> tuple[XmlGpu, ...]:
    problems: list[str] = []
    gpus = parse_xml(text, problems)
    assert problems == []
    return gpus


# --- one test per capture -----------------------------------------------------------------------


def test_a100_in_mig_mode_lists_its_mig_devices() -> None:
    (gpu,) = parsed(fixture("q-x-a100-mig.xml"))
    assert gpu.uuid == A100_UUID
    assert gpu.mig_devices == tuple(
        MigDevice(
            index=index,
            gpu_instance_id=index + 3,
            compute_instance_id=0,
            memory_used_bytes=12 * MIB,
            memory_total_bytes=19968 * MIB,
        )
        for index in range(4)
    )
    # remapped_rows is "N/A" in MIG mode and retired pages are N/A: unset, not 0. ECC is on.
    assert gpu.readings == {
        "ecc_errors_corrected_aggregate": 0,
        "ecc_errors_uncorrected_aggregate": 0,
    }
    assert gpu.processes == ()


def test_two_mig_instances_with_a_process_each_are_told_apart() -> None:
    (gpu,) = parsed(fixture("q-x-a100-mig-2procs.derived.xml"))
    assert gpu.processes == (
        GpuProcess(pid=4242, name="/usr/bin/ollama", gpu_memory_bytes=8000 * MIB, mig_index=0),
        GpuProcess(pid=5151, name="python", gpu_memory_bytes=1000 * MIB, mig_index=1),
    )
    assert gpu.mig_devices is not None
    assert [m.memory_used_bytes for m in gpu.mig_devices] == [
        8012 * MIB,
        1012 * MIB,
        12 * MIB,
        12 * MIB,
    ]


def test_rtx4090_remapped_rows_are_zero_and_not_pending() -> None:
    (gpu,) = parsed(fixture("q-x-rtx4090-remapped-rows.xml"))
    assert gpu.uuid == "GPU-71d1acc2-662d-2166-bf9f-65272d2fc437"
    assert gpu.readings == NO_REMAP  # ECC off: no lifetime counts; retired pages N/A
    assert (gpu.mig_devices, gpu.processes) == (None, ())


def test_rtx4000ada_v13_ignores_inactive_remap_counts_and_reads_process_types() -> None:
    (gpu,) = parsed(fixture("q-x-rtx4000ada-v13.xml"))
    assert gpu.readings == NO_REMAP
    assert gpu.processes == (
        GpuProcess(pid=1842, name="cosmic-comp", gpu_memory_bytes=410 * MIB, kind="graphics"),
        GpuProcess(pid=3190, name="/usr/bin/code", gpu_memory_bytes=451 * MIB, kind="graphics"),
        GpuProcess(pid=4937, name="python", gpu_memory_bytes=160 * MIB, kind="compute"),
        GpuProcess(
            pid=34626,
            name="/usr/lib/chromium/chromium",
            gpu_memory_bytes=183 * MIB,
            kind="compute+graphics",
        ),
    )


def test_p100_retired_pages_and_lifetime_ecc_from_the_v11_totals() -> None:
    (gpu,) = parsed(fixture("q-x-p100-retired-pages.xml"))
    assert gpu.readings == {
        "retired_pages_single_bit": 0,
        "retired_pages_double_bit": 0,
        "retired_pages_pending": 0,
        "ecc_errors_corrected_aggregate": 3,  # aggregate/single_bit/total
        "ecc_errors_uncorrected_aggregate": 0,
    }
    assert gpu.mig_devices is None


def test_dual_a5000_gives_each_gpu_its_own_process_memory() -> None:
    first, second = parsed(fixture("q-x-dual-a5000-v13.xml"))
    assert (first.uuid, second.uuid) == A5000_UUIDS
    assert first.readings == second.readings == NO_REMAP
    assert [p.gpu_memory_bytes for p in (*first.processes, *second.processes)] == [
        22430 * MIB,
        17246 * MIB,
    ]
    assert {p.pid for p in (*first.processes, *second.processes)} == {100477}


def test_rtx3080_v13_reports_nothing_the_csv_lacks() -> None:
    (gpu,) = parsed(fixture("q-x-rtx3080-v13.xml"))
    assert gpu.uuid == "GPU-19d6d965-2acc-f646-00f8-4c76979aabb4"
    assert (gpu.readings, gpu.mig_devices, gpu.processes) == ({}, None, ())


# --- edited captures and broken reports ---------------------------------------------------------


def test_pending_and_failed_remaps_read_as_one() -> None:
    text = (
        fixture("q-x-rtx4090-remapped-rows.xml")
        .replace("<remapped_row_unc>0<", "<remapped_row_unc>4<")
        .replace("<remapped_row_pending>No<", "<remapped_row_pending>Yes<")
    )
    (gpu,) = parsed(text)
    assert gpu.readings == {**NO_REMAP, "remapped_rows_uncorrectable": 4, "remap_pending": 1}
    (failed,) = parsed(text.replace("<remapped_row_failure>No<", "<remapped_row_failure>Yes<"))
    assert failed.readings["remap_failed"] == 1


def test_either_pending_retirement_element_makes_pages_pending() -> None:
    text = fixture("q-x-p100-retired-pages.xml")
    for element in ("pending_blacklist", "pending_retirement"):
        (gpu,) = parsed(text.replace(f"<{element}>No<", f"<{element}>Yes<"))
        assert gpu.readings["retired_pages_pending"] == 1


def test_lifetime_ecc_needs_ecc_on_and_every_part_known() -> None:
    text = fixture("q-x-a100-mig.xml")
    (off,) = parsed(text.replace("<current_ecc>Enabled<", "<current_ecc>Disabled<"))
    assert "ecc_errors_corrected_aggregate" not in off.readings
    aggregate = text.index("<aggregate>")
    partial = text[:aggregate] + text[aggregate:].replace(
        "<dram_correctable>0<", "<dram_correctable>N/A<", 1
    ).replace("<sram_uncorrectable>0<", "<sram_uncorrectable>2<", 1).replace(
        "<dram_uncorrectable>0<", "<dram_uncorrectable>5<", 1
    )
    (gpu,) = parsed(partial)
    assert "ecc_errors_corrected_aggregate" not in gpu.readings  # DRAM unknown: total unknown
    assert gpu.readings["ecc_errors_uncorrected_aggregate"] == 7


def test_unreadable_value_is_reported_and_the_rest_kept() -> None:
    text = fixture("q-x-p100-retired-pages.xml").replace(
        "<retired_count>0</retired_count>", "<retired_count>many</retired_count>", 1
    )
    problems: list[str] = []
    (gpu,) = parse_xml(text, problems)
    assert problems == [
        "nvidia-smi -q -x multiple_single_bit_retirement/retired_count: 'many' is not a number"
    ]
    assert "retired_pages_single_bit" not in gpu.readings
    assert gpu.readings["retired_pages_double_bit"] == 0


def test_malformed_report_gives_nothing_and_one_problem() -> None:
    truncated = fixture("q-x-rtx4090-remapped-rows.xml")[:5000]  # a report cut off mid-way
    for text in (truncated, "No devices were found\n", ""):
        problems: list[str] = []
        assert parse_xml(text, problems) == ()
        assert len(problems) == 1
        assert problems[0].startswith("nvidia-smi -q -x printed no readable XML (")
    problems = []
    assert parse_xml("<html><body>proxy error</body></html>", problems) == ()
    assert problems == ["nvidia-smi -q -x printed <html>, not <nvidia_smi_log>"]


# --- merging into the CSV samples ---------------------------------------------------------------


def test_merge_matches_by_uuid_and_adds_what_the_csv_lacks() -> None:
    (gpu,) = parsed(fixture("q-x-a100-mig-2procs.derived.xml"))
    ollama = GpuProcess(pid=4242, name="ollama", gpu_memory_bytes=8000 * MIB)
    sample = GpuSample(
        gpu_id=0,
        timestamp=1.0,
        uuid=A100_UUID,
        processes=(ollama,),
        readings={"temperature_celsius": 27.0, "ecc_errors_corrected_aggregate": 9},
    )
    other = GpuSample(gpu_id=1, timestamp=1.0, uuid="GPU-other", temperature_celsius=30.0)
    merged, untouched = merge_xml([sample, other], [gpu])
    assert untouched == other
    assert merged.readings == {
        "temperature_celsius": 27.0,
        "ecc_errors_corrected_aggregate": 9,  # the CSV's own reading wins
        "ecc_errors_uncorrected_aggregate": 0,
    }
    assert merged.mig_devices == gpu.mig_devices
    assert merged.processes == (
        GpuProcess(pid=4242, name="ollama", gpu_memory_bytes=8000 * MIB, mig_index=0),
        GpuProcess(pid=5151, name="python", gpu_memory_bytes=1000 * MIB, mig_index=1),
    )


def test_merge_keeps_an_unknown_process_list_unknown() -> None:
    (gpu,) = parsed(fixture("q-x-a100-mig-2procs.derived.xml"))
    (merged,) = merge_xml(
        [GpuSample(gpu_id=0, timestamp=1.0, uuid=A100_UUID, processes=None)], [gpu]
    )
    assert merged.processes is None
    assert merged.mig_devices is not None and len(merged.mig_devices) == 4


def test_merge_without_uuids_goes_by_index_not_minor_number() -> None:
    gpus = parsed(fixture("q-x-dual-a5000-v13.xml"))  # the first <gpu> has minor_number 1
    first, second = merge_xml(
        [GpuSample(gpu_id=0, timestamp=1.0), GpuSample(gpu_id=1, timestamp=1.0)], gpus
    )
    assert first.processes == gpus[0].processes
    assert second.processes is not None
    assert [p.gpu_memory_bytes for p in second.processes] == [17246 * MIB]
    (alone,) = merge_xml([GpuSample(gpu_id=2, timestamp=1.0)], gpus)
    assert alone.readings == {}
