"""Memory health and NVLink through the real bindings: what NVML reports, and null where the GPU
has no such thing (row remapping before Ampere, page retirement after it, NVLink on most cards)."""

from __future__ import annotations

from pathlib import Path

from gpm.gpu.nvml import NvmlSource
from gpm.model import GpuSample
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
