"""The health verdict: each rule on its own (pure, the poll's time drives it), then end to end
through the fake NVML library, the real bindings and ``gpm status``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gpm.health import SLOWDOWN_SECONDS, STORM_SECONDS, HealthWatch
from gpm.model import GpuSample, Snapshot
from tests.conftest import GpmProcess
from tests.fakes.fake_nvml import Scenario, build_fake_nvml


def judge(watch: HealthWatch, now: float = 0.0, **readings: object) -> GpuSample:
    gpu = GpuSample(gpu_id=0, timestamp=now, **readings)  # type: ignore[arg-type]
    return watch.assess(Snapshot(timestamp=now, source="nvml", gpus=(gpu,))).gpus[0]


def test_a_healthy_gpu_is_ok_with_no_reasons() -> None:
    g = judge(HealthWatch(), ecc_errors_uncorrected=0, remap_pending=0, throttle_reasons=())
    assert (g.health, g.health_reasons) == ("ok", ())


@pytest.mark.parametrize(
    ("readings", "verdict", "says"),
    [
        ({"up": False, "error": "GPU is lost"}, "failed", "GPU is lost"),
        ({"ecc_errors_uncorrected": 2}, "failed", "2 uncorrectable ECC errors"),
        ({"remap_failed": 1}, "failed", "remap failed"),
        ({"remap_pending": 1}, "degraded", "reset the GPU"),
        ({"retired_pages_pending": 1}, "degraded", "reboot"),
        ({"nvlink_links_active": 11, "nvlink_links_inactive": 1}, "degraded", "1 of 12 NVLink"),
        ({"nvlink_links_active": 0, "nvlink_links_inactive": 4}, "ok", ""),  # no bridge at all
        ({"remap_pending": 1, "remap_failed": 1}, "failed", "remap failed"),
    ],
)
def test_each_rule(readings: dict[str, object], verdict: str, says: str) -> None:
    g = judge(HealthWatch(), **readings)
    assert g.health == verdict
    assert says in " ".join(g.health_reasons)


def test_a_slowdown_degrades_only_once_it_lasts() -> None:
    watch = HealthWatch()
    hot = {"throttle_reasons": ("hw_thermal_slowdown",)}
    assert judge(watch, 0.0, **hot).health == "ok"
    assert judge(watch, SLOWDOWN_SECONDS - 1, **hot).health == "ok"
    g = judge(watch, SLOWDOWN_SECONDS, **hot)
    assert g.health == "degraded" and "hw_thermal_slowdown" in g.health_reasons[0]
    assert judge(watch, SLOWDOWN_SECONDS + 2, throttle_reasons=()).health == "ok"
    # Keeping to the power limit under load is normal, not a slowdown.
    capped = {"throttle_reasons": ("sw_power_cap",)}
    assert judge(watch, 0.0, **capped).health == judge(watch, 1e6, **capped).health == "ok"


def test_a_storm_of_corrected_errors_degrades_and_passes() -> None:
    watch = HealthWatch()
    assert judge(watch, 0.0, ecc_errors_corrected=10).health == "ok"
    g = judge(watch, 60.0, ecc_errors_corrected=110)
    assert g.health == "degraded" and "100 corrected ECC errors" in g.health_reasons[0]
    # No new errors for the length of the window: the storm is over.
    assert judge(watch, 60.0 + STORM_SECONDS + 1, ecc_errors_corrected=110).health == "ok"
    # A driver reload resets the volatile count; that is not a storm either.
    assert judge(watch, 2 * STORM_SECONDS, ecc_errors_corrected=0).health == "ok"


def test_status_shows_a_pending_remap_end_to_end(
    gpm_process: Callable[..., GpmProcess], tmp_path: Path
) -> None:
    lib = build_fake_nvml(tmp_path / "lib")
    sc = Scenario(tmp_path / "scenario.txt")
    sc.set_gpu(0, name="NVIDIA A100-SXM4-80GB", remap_correctable=0, remap_uncorrectable=1,
               remap_pending=1, remap_failure=0)  # fmt: skip
    sc.set_gpu(1, name="NVIDIA GeForce RTX 4090").write()
    gpm = gpm_process(GPM_GPU_NVML_LIBRARY=str(lib), FAKE_NVML_SCENARIO=str(sc.path))
    result = gpm.run("status", "--json")
    assert result.returncode == 0, result.stderr
    a100, rtx = json.loads(result.stdout)["gpus"]
    assert a100["health"] == "degraded" and "remap is pending" in a100["health_reasons"][0]
    assert a100["remap_pending"] == 1 and a100["remapped_rows_uncorrectable"] == 1
    assert (rtx["health"], rtx["health_reasons"], rtx["remap_pending"]) == ("ok", [], None)
    table = gpm.run("status").stdout
    assert "degraded" in table and "! a memory row remap is pending" in table


def test_the_verdict_is_on_metrics_as_a_state_set() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from gpm.state import LiveState
    from gpm.telemetry.prometheus import MetricsExporter

    gpu = GpuSample(gpu_id=0, timestamp=0.0, remap_pending=1)
    snap = HealthWatch().assess(Snapshot(timestamp=0.0, source="nvml", gpus=(gpu,)))
    text = MetricsExporter(LiveState(snapshot=snap)).render().decode()
    states = {
        s.labels["state"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "gpm_gpu_health"
        for s in family.samples
    }
    assert states == {"ok": 0.0, "degraded": 1.0, "failed": 0.0}


def test_an_xid_holds_its_verdict_for_a_while() -> None:
    from gpm.health import XID_HOLD_SECONDS
    from gpm.model import GpuEvent

    watch = HealthWatch()
    watch.note(GpuEvent(100.0, 0, None, "xid", 13))  # the application's fault
    assert judge(watch, 101.0).health == "ok"
    watch.note(GpuEvent(100.0, 0, None, "xid", 94))
    assert judge(watch, 101.0).health == "degraded"
    watch.note(GpuEvent(200.0, 0, None, "xid", 48))
    g = judge(watch, 201.0)
    assert g.health == "failed" and g.health_reasons[0].startswith("Xid 48 (double-bit ECC")
    watch.note(GpuEvent(300.0, 0, None, "xid", 94))  # a lesser one does not hide the failure
    assert judge(watch, 301.0).health == "failed"
    assert judge(watch, 200.0 + XID_HOLD_SECONDS).health == "ok"
