"""A GPM names its machine the same way everywhere: /metrics, /api/info and OTLP."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GpmProcess, get_json
from tests.fakes.fake_nvml import Scenario, build_fake_nvml


def test_host_name_and_versions_on_metrics_and_info(
    gpm_process: Callable[..., GpmProcess], tmp_path: Path
) -> None:
    lib = build_fake_nvml(tmp_path / "lib")
    scenario = Scenario(tmp_path / "scenario.txt").set_driver("550.54.15", 12040)
    scenario.set_gpu(0, name="NVIDIA H100 80GB HBM3").write()
    gpm = gpm_process(
        GPM_GPU_NVML_LIBRARY=str(lib),
        FAKE_NVML_SCENARIO=str(scenario.path),
        GPM_SERVICE_HOST_NAME="gpu-box-7",
    )
    gpm.start("run").wait_ready()
    info = get_json(gpm.api + "/api/info")
    assert (info["hostname"], info["driver_version"], info["cuda_version"]) == (
        "gpu-box-7",
        "550.54.15",
        "12.4",
    )
    assert info["url"] == f"http://gpu-box-7:{gpm.ports['api']}"
    with urllib.request.urlopen(f"http://127.0.0.1:{gpm.ports['metrics']}/metrics") as resp:
        text = resp.read().decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "gpm_host_info"]
    (sample,) = family.samples
    assert sample.value == 1.0
    assert sample.labels["host"] == "gpu-box-7"
    assert (sample.labels["driver_version"], sample.labels["cuda_version"]) == ("550.54.15", "12.4")
    assert sample.labels["version"] == info["version"]
