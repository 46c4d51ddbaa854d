"""Memory health and NVLink through the real bindings: what NVML reports, and null where the GPU
has no such thing (row remapping before Ampere, page retirement after it, NVLink on most cards)."""

from __future__ import annotations

from pathlib import Path

from gpm.gpu.nvml import NvmlSource
from gpm.model import GpuSample, NvLink
from tests.fakes.fake_nvml import Scenario

HEALTH = (
    "remapped_rows_correctable", "remapped_rows_uncorrectable", "remap_pending", "remap_failed",
    "retired_pages_single_bit", "retired_pages_double_bit", "retired_pages_pending",
    "ecc_errors_corrected_aggregate", "ecc_errors_uncorrected_aggregate",
    "nvlink_links_active", "nvlink_links_inactive", "nvlink_crc_errors", "nvlink_replay_errors",
    "nvlink_recovery_errors",
)  # fmt: skip


def poll(library: Path) -> GpuSample:
    source = NvmlSource(library_path=str(library))
    try:
        return source.poll(1.0).gpus[0]
    finally:
        source.close()


def test_a_pending_remap_and_a_link_down(fake_nvml_scenario: Scenario, fake_nvml_lib: Path) -> None:
    fake_nvml_scenario.set_gpu(
        0, name="NVIDIA A100-SXM4-80GB", ecc_enabled=1,
        remap_correctable=2, remap_uncorrectable=1, remap_pending=1, remap_failure=0,
        ecc_corrected_aggregate=40, ecc_uncorrected_aggregate=1,
        nvlink_links=12, nvlink_active=11, nvlink_crc=3, nvlink_replay=2, nvlink_recovery=1,
    ).write()  # fmt: skip
    g = poll(fake_nvml_lib)
    assert (g.remapped_rows_correctable, g.remapped_rows_uncorrectable) == (2, 1)
    assert (g.remap_pending, g.remap_failed) == (1, 0)
    assert (g.ecc_errors_corrected_aggregate, g.ecc_errors_uncorrected_aggregate) == (40, 1)
    assert (g.nvlink_links_active, g.nvlink_links_inactive) == (11, 1)
    # Counters summed over all twelve links.
    assert (g.nvlink_crc_errors, g.nvlink_replay_errors, g.nvlink_recovery_errors) == (36, 24, 12)
    # An A100 uses row remapping, not page retirement: those stay unknown.
    assert g.retired_pages_single_bit is None and g.retired_pages_pending is None


def test_page_retirement_on_an_older_gpu(fake_nvml_scenario: Scenario, fake_nvml_lib: Path) -> None:
    fake_nvml_scenario.set_gpu(
        0, name="Tesla P100", retired_sbe=3, retired_dbe=1, retired_pending=1
    ).write()
    g = poll(fake_nvml_lib)
    assert (g.retired_pages_single_bit, g.retired_pages_double_bit) == (3, 1)
    assert g.retired_pages_pending == 1
    assert g.remapped_rows_correctable is None and g.remap_pending is None


def test_a_consumer_gpu_reports_none_of_it(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    fake_nvml_scenario.set_gpu(0, name="NVIDIA GeForce RTX 4090").write()
    g = poll(fake_nvml_lib)
    assert all(getattr(g, name) is None for name in HEALTH)


def test_nvlink_failing_mid_run_is_unknown_not_zero(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    fake_nvml_scenario.set_gpu(0, nvlink_links=2, nvlink_active=2, nvlink_crc=5).write()
    source = NvmlSource(library_path=str(fake_nvml_lib))
    try:
        assert source.poll(1.0).gpus[0].nvlink_links_active == 2
        fake_nvml_scenario.fail(0, "nvlink", "UNKNOWN").write()
        g = source.poll(2.0).gpus[0]
        assert g.nvlink_links_active is None and g.nvlink_crc_errors is None
    finally:
        source.close()


def test_each_nvlink_link_is_reported(fake_nvml_scenario: Scenario, fake_nvml_lib: Path) -> None:
    fake_nvml_scenario.set_gpu(0, nvlink_links=3, nvlink_active=2, nvlink_crc=4, nvlink_replay=1,
                               nvlink_recovery=0)  # fmt: skip
    fake_nvml_scenario.set_gpu(1).write()
    source = NvmlSource(library_path=str(fake_nvml_lib))
    try:
        h100, rtx = source.poll(1.0).gpus
    finally:
        source.close()
    assert h100.nvlinks == (
        NvLink(0, True, 4, 1, 0),
        NvLink(1, True, 4, 1, 0),
        NvLink(2, False, 4, 1, 0),
    )
    assert rtx.nvlinks is None  # no NVLink: unknown, not an empty list of links


def test_nvlink_links_on_metrics_and_in_the_api_view() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from gpm.model import Snapshot
    from gpm.state import LiveState
    from gpm.telemetry.prometheus import MetricsExporter
    from gpm.views import sample_view

    g = GpuSample(gpu_id=0, timestamp=1.0, nvlinks=(NvLink(0, True, 2, 0, 0), NvLink(1, False)))
    text = MetricsExporter(LiveState(snapshot=Snapshot(1.0, "nvml", (g,)))).render().decode()
    samples = {
        (s.name, s.labels["link"], s.labels.get("type", "")): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("gpm_gpu_nvlink")
        for s in family.samples
        if "link" in s.labels
    }
    assert samples[("gpm_gpu_nvlink_up", "0", "")] == 1.0
    assert samples[("gpm_gpu_nvlink_up", "1", "")] == 0.0
    assert samples[("gpm_gpu_nvlink_link_errors_total", "0", "crc")] == 2.0
    assert ("gpm_gpu_nvlink_link_errors_total", "1", "crc") not in samples  # unread, not 0
    view = sample_view(g, 1.0)["nvlinks"]
    assert view[1] == {"link": 1, "active": False, "crc_errors": None, "replay_errors": None,
                       "recovery_errors": None}  # fmt: skip
