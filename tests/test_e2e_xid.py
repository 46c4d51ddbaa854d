"""Xid errors end to end: the fake library's event set, the real bindings, ``gpm run``, and
what a user sees of them in the API, /metrics and the alerts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GpmProcess, get_json, wait_for
from tests.fakes.fake_nvml import Scenario, build_fake_nvml


def xid_counts(url: str) -> dict[tuple[str, str], float]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.labels["gpu_id"], s.labels["xid"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "gpm_gpu_xid_errors"
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_a_fatal_xid_fails_the_gpu_and_an_application_fault_does_not(
    gpm_process: Callable[..., GpmProcess], tmp_path: Path
) -> None:
    lib = build_fake_nvml(tmp_path / "lib")
    sc = Scenario(tmp_path / "scenario.txt")
    sc.set_gpu(0, name="NVIDIA H100 80GB HBM3").set_gpu(1, name="NVIDIA H100 80GB HBM3").write()
    gpm = gpm_process(
        GPM_GPU_NVML_LIBRARY=str(lib), FAKE_NVML_SCENARIO=str(sc.path), GPM_OLLAMA_ENABLED="false"
    ).start("run")
    gpm.wait_ready()
    wait_for(lambda: "Xid events watched on GPU 0, 1" in gpm.output(), what="the Xid watch")

    sc.add_xid(0, 79).add_xid(1, 13).write()

    def gpus() -> list[dict[str, Any]]:
        return get_json(gpm.api + "/api/realtime")["gpus"]  # type: ignore[no-any-return]

    failed = wait_for(lambda: gpus()[0]["health"] == "failed" and gpus(), what="GPU 0 failed")
    assert "Xid 79 (GPU has fallen off the bus)" in failed[0]["health_reasons"][0]
    assert failed[1]["health"] == "ok"  # Xid 13 is the application's fault

    events = wait_for(
        lambda: len(e := get_json(gpm.api + "/api/gpu-events")["events"]) == 2 and e,
        what="both Xids stored",
    )
    by_gpu = {e["gpu_id"]: e for e in events}
    assert (by_gpu[0]["code"], by_gpu[0]["health"]) == (79, "failed")
    assert by_gpu[1]["code"] == 13 and "application" in by_gpu[1]["meaning"]

    alerts = [a for a in get_json(gpm.api + "/api/alerts")["active"] if a["rule"] == "xid"]
    assert {(a["gpu_id"], a["severity"]) for a in alerts} == {(0, "critical"), (1, "warning")}
    assert any("reboot" in a["message"] for a in alerts if a["gpu_id"] == 0)
    metrics = f"http://127.0.0.1:{gpm.ports['metrics']}/metrics"
    assert xid_counts(metrics) == {("0", "79"): 1.0, ("1", "13"): 1.0}
