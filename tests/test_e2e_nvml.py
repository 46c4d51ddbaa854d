"""The whole service against the fake libnvidia-ml.so.1, through the real nvidia-ml-py bindings.

``gpm status --json`` must report exactly the scenario; ``gpm run`` must follow it as it changes:
values, a GPU lost and back, a GPU heating up into an alert that reaches a webhook.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GpmProcess, get_json, wait_for
from tests.fakes.fake_nvml import Scenario, build_fake_nvml
from tests.fakes.fake_webhook import WebhookReceiver, webhook_receiver
from tests.fakes.prometheus_server import needs_prometheus, query, run_prometheus, value_of

GIB = 2**30


@pytest.fixture(scope="module")
def nvml_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_nvml(tmp_path_factory.mktemp("fake-nvml"))


def two_gpus(path: Path) -> Scenario:
    sc = Scenario(path)
    sc.set_gpu(
        0,
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-e2e-0000",
        util_gpu=97,
        util_memory=41,
        memory_total=80 * GIB,
        memory_used=20 * GIB,
        temperature_c=65,
        power_mw=431_500,
        power_limit_mw=700_000,
        fan_percent=0,
        clock_graphics_mhz=1980,
        clock_memory_mhz=2619,
        pstate=0,
    )
    sc.set_gpu(
        1,
        name="NVIDIA GeForce RTX 4090",
        uuid="GPU-e2e-0001",
        util_gpu=3,
        memory_total=24 * GIB,
        memory_used=1 * GIB,
        temperature_c=38,
        power_mw=21_000,
        power_limit_mw=450_000,
        fan_percent=30,
    )
    sc.not_supported(0, "fan")
    sc.set_processes(0, compute=[(1, 2 * GIB)], graphics=[])
    sc.write()
    return sc


def test_status_json_reports_exactly_the_scenario(
    gpm_process: Callable[..., GpmProcess], nvml_lib: Path, tmp_path: Path
) -> None:
    sc = two_gpus(tmp_path / "scenario.txt")
    gpm = gpm_process(GPM_GPU_NVML_LIBRARY=str(nvml_lib), FAKE_NVML_SCENARIO=str(sc.path))
    result = gpm.run("status", "--json")
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert snap["source"] == "nvml"
    g0, g1 = snap["gpus"]
    assert g0["name"] == "NVIDIA H100 80GB HBM3" and g0["uuid"] == "GPU-e2e-0000"
    assert g0["utilization_percent"] == 97 and g0["memory_utilization_percent"] == 41
    assert g0["memory_used_bytes"] == 20 * GIB and g0["memory_total_bytes"] == 80 * GIB
    assert g0["temperature_celsius"] == 65
    assert g0["power_watts"] == 431.5 and g0["power_limit_watts"] == 700.0
    assert g0["fan_percent"] is None  # NOT_SUPPORTED: null, not 0
    assert g0["clock_graphics_mhz"] == 1980 and g0["performance_state"] == 0
    assert g0["simulated"] is False and g0["up"] is True
    assert [(p["pid"], p["gpu_memory_bytes"]) for p in g0["processes"]] == [(1, 2 * GIB)]
    assert g1["fan_percent"] == 30 and g1["temperature_celsius"] == 38
    assert g1["processes"] == []


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as hook:
        yield hook


def test_run_follows_the_gpu_loss_and_heat_into_alerts(
    gpm_process: Callable[..., GpmProcess],
    nvml_lib: Path,
    tmp_path: Path,
    webhook: WebhookReceiver,
) -> None:
    sc = two_gpus(tmp_path / "scenario.txt")
    gpm = gpm_process(
        GPM_GPU_NVML_LIBRARY=str(nvml_lib),
        FAKE_NVML_SCENARIO=str(sc.path),
        GPM_ALERTS_WEBHOOK_URL=webhook.url,
        GPM_ALERTS_MIN_DURATION_SECS="1",
        GPM_OLLAMA_ENABLED="false",
    ).start("run")
    snap = gpm.wait_ready()
    assert snap["gpus"][0]["temperature_celsius"] == 65

    def gpu(i: int) -> dict[str, Any]:
        return get_json(gpm.api + "/api/realtime")["gpus"][i]  # type: ignore[no-any-return]

    # values change while running
    sc.set_gpu(1, util_gpu=88)
    sc.write()
    wait_for(lambda: gpu(1)["utilization_percent"] == 88, what="GPU 1 at 88 %")

    # GPU 0 falls off the bus: marked down, GPU 1 goes on; then it comes back
    sc.lose_gpu(0)
    sc.write()

    def gpu0_down() -> dict[str, Any] | None:
        g = gpu(0)
        return None if g["up"] else g

    down = wait_for(gpu0_down, what="GPU 0 down")
    assert down["error"] and down["temperature_celsius"] is None
    assert gpu(1)["up"] is True
    sc.restore_gpu(0)
    sc.write()
    wait_for(lambda: gpu(0)["up"], timeout=20, what="GPU 0 back after re-initialisation")

    # GPU 0 heats past 85 °C: one firing alert in the API and at the webhook
    sc.set_gpu(0, temperature_c=92)
    sc.write()
    active = wait_for(
        lambda: [
            a for a in get_json(gpm.api + "/api/alerts")["active"] if a["rule"] == "temperature"
        ],
        timeout=20,
        what="a temperature alert",
    )
    assert active[0]["gpu_id"] == 0 and active[0]["value"] == 92
    hook = wait_for(
        lambda: [r for r in webhook.bodies if "temperature" in json.dumps(r)],
        timeout=20,
        what="the webhook to receive the alert",
    )
    assert "92" in json.dumps(hook[0])
    assert gpm.stop() == 0


@needs_prometheus
def test_prometheus_scrapes_the_running_service(
    gpm_process: Callable[..., GpmProcess], nvml_lib: Path, tmp_path: Path
) -> None:
    """Pointing a stock Prometheus at GPM shows the fake GPUs, with no relabelling."""
    sc = two_gpus(tmp_path / "scenario.txt")
    gpm = gpm_process(
        GPM_GPU_NVML_LIBRARY=str(nvml_lib),
        FAKE_NVML_SCENARIO=str(sc.path),
        GPM_OLLAMA_ENABLED="false",
    ).start("run")
    gpm.wait_ready()
    with run_prometheus(tmp_path, f"127.0.0.1:{gpm.ports['metrics']}") as prom:
        temp = 'gpm_gpu_temperature_celsius{gpu_id="0",gpu_name="NVIDIA H100 80GB HBM3"}'
        assert value_of(prom, temp, timeout=60) == 65
        assert value_of(prom, 'gpm_gpu_memory_total_bytes{gpu_id="1"}') == 24 * GIB
        assert value_of(prom, 'gpm_gpu_power_watts{gpu_uuid="GPU-e2e-0000"}') == 431.5
        assert value_of(prom, 'gpm_gpu_up{gpu_id="1"}') == 1
        assert query(prom, 'gpm_gpu_fan_percent{gpu_id="0"}') == []  # unsupported: no series
        sc.set_gpu(0, temperature_c=71)
        sc.write()
        wait_for(lambda: value_of(prom, temp) == 71, timeout=30, what="the new temperature")
    assert gpm.stop() == 0
