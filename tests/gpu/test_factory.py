"""open_gpu_source: every branch, with real configs and a real (fake) nvidia-smi on disk."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from gpm.gpu import NoGpuSource, open_gpu_source
from gpm.gpu.simulated import SimulatedSource
from gpm.gpu.smi import SmiSource
from gpm.settings import GpuConfig
from tests.fakes.fake_nvidia_smi import ONE_GPU, fake_nvidia_smi

LOGGER = "test.gpu.factory"


def no_nvml(tmp_path: Path, **kw: Any) -> GpuConfig:
    """NVML on, but pointed at a library that does not exist."""
    return GpuConfig(nvml_library=str(tmp_path / "missing" / "libnvidia-ml.so.1"), **kw)


def open_logged(
    cfg: GpuConfig, caplog: pytest.LogCaptureFixture, demo: bool = False
) -> tuple[object, list[logging.LogRecord]]:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        source = open_gpu_source(cfg, demo=demo, logger=logging.getLogger(LOGGER))
    return source, [r for r in caplog.records if r.name == LOGGER]


def test_demo_gives_two_simulated_gpus(caplog: pytest.LogCaptureFixture) -> None:
    source, _ = open_logged(GpuConfig(), caplog, demo=True)
    assert isinstance(source, SimulatedSource)
    assert source.count == 2
    assert len(source.poll(1.0).gpus) == 2


def test_simulated_gpus_setting_wins_over_nvml(caplog: pytest.LogCaptureFixture) -> None:
    source, _ = open_logged(GpuConfig(simulated_gpus=5, fallback_to_nvidia_smi=True), caplog)
    assert isinstance(source, SimulatedSource) and source.count == 5
    source, _ = open_logged(GpuConfig(simulated_gpus=3), caplog, demo=True)
    assert isinstance(source, SimulatedSource) and source.count == 3


def test_no_nvml_and_no_fallback_gives_one_clear_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, records = open_logged(no_nvml(tmp_path), caplog)
    assert isinstance(source, NoGpuSource)
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].getMessage().startswith("No NVIDIA GPU found: ")
    assert source.message.count("fallback_to_nvidia_smi = true") == 1
    assert "--demo" in source.message
    snap = source.poll(42.0)
    assert (snap.source, snap.gpus, snap.timestamp) == ("none", (), 42.0)
    assert snap.message == source.message
    assert records[0].getMessage() == f"No NVIDIA GPU found: {source.message}"


def test_no_nvml_falls_back_to_nvidia_smi(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    exe, _ = fake_nvidia_smi(tmp_path, ONE_GPU)
    cfg = no_nvml(
        tmp_path,
        fallback_to_nvidia_smi=True,
        nvidia_smi_path=exe,
        nvidia_smi_timeout_secs=2.5,
        nvidia_smi_xml_interval_secs=120.0,
    )
    source, records = open_logged(cfg, caplog)
    assert isinstance(source, SmiSource)
    assert (source.executable, source.timeout, source.xml_interval) == (exe, 2.5, 120.0)
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].getMessage().endswith(f"reading GPUs through {exe}")


def test_fallback_on_but_nvidia_smi_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "bin" / "nvidia-smi")
    source, records = open_logged(
        no_nvml(tmp_path, fallback_to_nvidia_smi=True, nvidia_smi_path=missing), caplog
    )
    assert isinstance(source, NoGpuSource)
    assert f"{missing!r} was not found" in source.message
    assert len(records) == 1 and records[0].getMessage().startswith("No NVIDIA GPU found: ")


def test_nvml_off_uses_nvidia_smi_when_allowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exe, _ = fake_nvidia_smi(tmp_path, ONE_GPU)
    source, _ = open_logged(
        GpuConfig(enable_nvml=False, fallback_to_nvidia_smi=True, nvidia_smi_path=exe), caplog
    )
    assert isinstance(source, SmiSource)


def test_nvml_off_without_fallback_says_so(caplog: pytest.LogCaptureFixture) -> None:
    source, records = open_logged(GpuConfig(enable_nvml=False), caplog)
    assert isinstance(source, NoGpuSource)
    assert source.message.startswith("NVML is turned off (gpu.enable_nvml = false). Set gpu.")
    assert "GPM_GPU_FALLBACK_TO_NVIDIA_SMI=true" in source.message
    assert len(records) == 1


def test_nvml_module_that_cannot_be_imported_counts_as_unavailable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry makes "import gpm.gpu.nvml" raise ImportError, as a broken install would.
    monkeypatch.setitem(sys.modules, "gpm.gpu.nvml", None)
    source, records = open_logged(GpuConfig(), caplog)
    assert isinstance(source, NoGpuSource)
    assert source.message.startswith("the NVML reader could not be imported (")
    assert "GPM_GPU_FALLBACK_TO_NVIDIA_SMI=true" in source.message
    assert len(records) == 1
