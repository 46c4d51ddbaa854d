"""The alert state machine driven by scripted readings, one poll every 2 seconds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from gpm.alerts.engine import AlertEngine
from gpm.model import Alert, GpuSample, Snapshot
from gpm.settings import AlertsConfig
from gpm.state import Health

GIB = 1024**3
CFG = AlertsConfig(
    temp_threshold_celsius=85.0,
    memory_threshold_percent=90.0,
    hysteresis_celsius=3.0,
    hysteresis_percent=3.0,
    min_duration_secs=10.0,
    poll_stall_secs=30.0,
)


def gpu(gpu_id: int = 0, **kw: object) -> GpuSample:
    base = GpuSample(
        gpu_id=gpu_id,
        timestamp=0.0,
        name="RTX 4090",
        temperature_celsius=60.0,
        memory_used_bytes=4 * GIB,
        memory_total_bytes=24 * GIB,
        throttle_reasons=(),
        ecc_errors_uncorrected=0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


class Run:
    """Feeds readings to an engine at a fixed poll interval, keeping poll health fresh."""

    def __init__(self, cfg: AlertsConfig = CFG, step: float = 2.0, **engine_kw: float) -> None:
        self.engine = AlertEngine(cfg, **engine_kw)
        self.now = 1000.0
        self.step = step
        self.health = Health(started_at=self.now)
        self.events: list[Alert] = []

    def poll(self, *gpus: GpuSample) -> list[Alert]:
        self.now += self.step
        self.health.last_poll_at = self.now
        snap = Snapshot(timestamp=self.now, source="simulated", gpus=gpus)
        out = self.engine.evaluate(snap, self.health, self.now)
        self.events.extend(out)
        return out

    def temps(self, values: Iterable[float]) -> None:
        for t in values:
            self.poll(gpu(temperature_celsius=t))


def states(events: Iterable[Alert], rule: str) -> list[str]:
    return [e.state for e in events if e.rule == rule]


def test_fires_only_after_min_duration_with_a_readable_message() -> None:
    run = Run()
    run.temps([88.0] * 5)  # 0, 2, 4, 6, 8 s above: not yet 10 s
    assert run.events == []
    fired = run.poll(gpu(temperature_celsius=88.0))  # 10 s above
    assert [(a.rule, a.state, a.severity, a.gpu_id) for a in fired] == [
        ("temperature", "firing", "critical", 0)
    ]
    assert fired[0].message == "GPU 0 (RTX 4090) at 88 °C, above 85 °C"
    assert fired[0].value == 88.0 and fired[0].threshold == 85.0
    assert run.engine.active == tuple(fired)
    run.temps([90.0] * 10)
    assert len(run.events) == 1  # exactly one event while it stays hot


def test_hovering_at_the_threshold_never_fires() -> None:
    run = Run()
    run.temps([85.5, 84.9] * 20)  # above for one poll at a time, never 10 s in a row
    assert run.events == []
    assert run.engine.active == ()


def test_hysteresis_band_holds_a_firing_alert_without_flapping() -> None:
    run = Run()
    run.temps([86.0] * 6)
    assert states(run.events, "temperature") == ["firing"]
    run.temps([84.0, 86.0, 83.0, 85.5, 82.5, 86.0] * 5)  # dips into 82..85: still firing
    assert states(run.events, "temperature") == ["firing"]
    cleared = run.poll(gpu(temperature_celsius=81.9))  # below 85 - 3
    assert [(a.state, a.message) for a in cleared] == [
        ("resolved", "GPU 0 (RTX 4090) back to 81.9 °C, below 82 °C")
    ]
    assert run.engine.active == ()


def test_refires_after_clearing() -> None:
    run = Run()
    run.temps([90.0] * 6 + [70.0] + [90.0] * 5)
    assert states(run.events, "temperature") == ["firing", "resolved"]
    run.temps([90.0])
    assert states(run.events, "temperature") == ["firing", "resolved", "firing"]


def test_unknown_reading_holds_state_and_restarts_the_clock() -> None:
    run = Run()
    run.temps([90.0] * 4)
    run.poll(gpu(temperature_celsius=None))
    run.temps([90.0] * 5)  # 8 s since the gap: not yet
    assert run.events == []
    run.temps([90.0])
    assert states(run.events, "temperature") == ["firing"]
    run.poll(gpu(temperature_celsius=None))
    assert run.engine.active and run.events[-1].state == "firing"


def test_memory_warning_uses_percent_of_total() -> None:
    run = Run()
    for _ in range(6):
        run.poll(gpu(memory_used_bytes=int(22.5 * GIB)))  # 93.75 %
    assert [(a.rule, a.severity) for a in run.events] == [("memory", "warning")]
    assert run.events[0].message == "GPU 0 (RTX 4090) memory 93.8% used, above 90%"
    run.poll(gpu(memory_used_bytes=int(21 * GIB)))  # 87.5 %: in the band
    assert len(run.events) == 1
    run.poll(gpu(memory_used_bytes=int(20 * GIB)))  # 83.3 %: below 87
    assert states(run.events, "memory") == ["firing", "resolved"]


def test_gpu_down_and_back_up() -> None:
    run = Run()
    down = gpu(up=False, error="GPU is lost", temperature_celsius=None, memory_used_bytes=None)
    for _ in range(6):
        run.poll(down)
    assert [(a.rule, a.severity, a.message) for a in run.events] == [
        ("gpu_down", "critical", "GPU 0 (RTX 4090) is down: GPU is lost")
    ]
    run.poll(gpu())
    assert states(run.events, "gpu_down") == ["firing", "resolved"]
    assert run.events[-1].message == "GPU 0 (RTX 4090) is back up"


def test_thermal_and_power_throttle_but_not_power_cap() -> None:
    run = Run()
    for _ in range(10):
        run.poll(gpu(throttle_reasons=("sw_power_cap", "gpu_idle")))
    assert run.events == []
    for _ in range(6):
        run.poll(gpu(throttle_reasons=("sw_power_cap", "sw_thermal_slowdown", "hw_slowdown")))
    fired = {(a.message, a.severity) for a in run.events}
    assert fired == {
        ("GPU 0 (RTX 4090) throttled (thermal): software thermal slowdown", "warning"),
        ("GPU 0 (RTX 4090) throttled (power): hardware slowdown", "critical"),
    }
    run.poll(gpu(throttle_reasons=("sw_power_cap",)))
    assert states(run.events, "throttle") == ["firing", "firing", "resolved", "resolved"]
    run.poll(gpu(throttle_reasons=None))  # unknown: nothing changes
    assert len(run.events) == 4


def test_ecc_increase_fires_at_once_and_resolves_after_quiet_period() -> None:
    run = Run(ecc_quiet_secs=60.0)
    run.poll(gpu(ecc_errors_uncorrected=5))  # first count: baseline, not an alert
    assert run.events == []
    fired = run.poll(gpu(ecc_errors_uncorrected=7))
    assert [(a.rule, a.state, a.severity) for a in fired] == [("ecc", "firing", "critical")]
    assert fired[0].message == "GPU 0 (RTX 4090) reported 2 new uncorrected ECC errors (total 7)"
    for _ in range(20):  # 40 s, one more increase half-way: the quiet clock restarts
        run.poll(gpu(ecc_errors_uncorrected=8 if run.now > 1020 else 7))
    assert states(run.events, "ecc") == ["firing"]
    for _ in range(30):
        run.poll(gpu(ecc_errors_uncorrected=8))
    assert states(run.events, "ecc") == ["firing", "resolved"]
    run.poll(gpu(ecc_errors_uncorrected=0))  # driver reload resets the count: new baseline
    run.poll(gpu(ecc_errors_uncorrected=0))
    assert states(run.events, "ecc") == ["firing", "resolved"]


def test_poll_stalled_fires_and_resolves_without_a_gpu() -> None:
    engine = AlertEngine(CFG)
    health = Health(started_at=100.0, last_poll_at=100.0)
    assert engine.evaluate(None, health, 129.0) == []
    fired = engine.evaluate(None, health, 131.0)
    assert [(a.rule, a.gpu_id, a.state) for a in fired] == [("poll_stalled", None, "firing")]
    assert fired[0].message == "GPU polling stalled: last poll 31 s ago (limit 30 s)"
    assert engine.evaluate(None, health, 200.0) == []
    health.last_poll_at = 201.0
    cleared = engine.evaluate(None, health, 202.0)
    assert [(a.state, a.message) for a in cleared] == [("resolved", "GPU polling resumed")]


def test_never_polled_counts_from_service_start() -> None:
    engine = AlertEngine(CFG)
    assert engine.evaluate(None, Health(started_at=0.0), 10_000.0) == []  # start unknown
    fired = engine.evaluate(None, Health(started_at=100.0), 140.0)
    assert fired[0].message == "GPU polling stalled: no poll since start 40 s ago (limit 30 s)"


def test_gpu_disappearing_resolves_its_alerts_once() -> None:
    run = Run()
    for _ in range(6):
        run.poll(gpu(0, temperature_celsius=90.0), gpu(1, temperature_celsius=90.0))
    assert {a.gpu_id for a in run.events if a.state == "firing"} == {0, 1}
    gone = run.poll(gpu(0, temperature_celsius=90.0))
    assert [(a.gpu_id, a.rule, a.state) for a in gone] == [(1, "temperature", "resolved")]
    assert "no longer reported" in gone[0].message
    assert [a.gpu_id for a in run.engine.active] == [0]
    run.poll(gpu(0, temperature_celsius=90.0))
    assert len(run.events) == 3
    # It comes back hot: a fresh min-duration, then a fresh alert.
    for _ in range(6):
        run.poll(gpu(0, temperature_celsius=90.0), gpu(1, temperature_celsius=90.0))
    assert [(a.gpu_id, a.state) for a in run.events[3:]] == [(1, "firing")]


def test_min_duration_zero_fires_on_first_reading() -> None:
    run = Run(replace(CFG, min_duration_secs=0.0))
    assert states(run.poll(gpu(temperature_celsius=86.0)), "temperature") == ["firing"]


def test_memory_health_fires_at_once_and_clears_after_the_reset() -> None:
    engine = AlertEngine(CFG)  # no min-duration for these: they are not noise

    def poll(now: float, **readings: float) -> list[str]:
        gpu = GpuSample(gpu_id=0, timestamp=now, name="A100", **readings)
        events = engine.evaluate(Snapshot(now, "nvml", (gpu,)), Health(started_at=now), now)
        return [f"{e.state} {e.severity} {e.message}" for e in events if e.rule == "memory_health"]

    assert poll(0.0) == []  # a GPU without remapping: nothing to say
    assert poll(1.0, remap_pending=0, remap_failed=0) == []
    assert poll(2.0, remap_pending=1, remap_failed=0) == [
        "firing warning GPU 0 (A100) memory: a row remap is pending, reset the GPU to apply it"
    ]
    assert poll(3.0, remap_pending=1, remap_failed=0) == []  # still firing, said once
    assert poll(4.0, remap_pending=0, remap_failed=0) == [
        "resolved warning GPU 0 (A100) memory: no remap or page retirement waiting"
    ]


def test_an_xid_fires_at_once_says_what_to_do_and_resolves_when_quiet() -> None:
    from gpm.model import GpuEvent

    engine = AlertEngine(CFG, ecc_quiet_secs=60.0)
    fired = engine.gpu_event(GpuEvent(0.0, 0, None, "xid", 79), "GPU 0 (H100)", 0.0)
    assert [(a.rule, a.state, a.severity) for a in fired] == [("xid", "firing", "critical")]
    assert fired[0].message == (
        "GPU 0 (H100): Xid 79, GPU has fallen off the bus: reboot; check power and the PCIe slot"
    )
    assert engine.gpu_event(GpuEvent(5.0, 0, None, "xid", 79), "GPU 0 (H100)", 5.0) == []
    gpu = GpuSample(gpu_id=0, timestamp=30.0, name="H100")
    health = Health(started_at=0.0, last_poll_at=30.0)
    assert [a for a in engine.evaluate(Snapshot(30.0, "nvml", (gpu,)), health, 30.0)
            if a.rule == "xid"] == []  # fmt: skip
    quiet = [a for a in engine.evaluate(Snapshot(70.0, "nvml", (gpu,)), health, 70.0)
             if a.rule == "xid"]  # fmt: skip
    assert [(a.state, a.message) for a in quiet] == [
        ("resolved", "GPU 0 (H100): no Xid errors for 1 min")
    ]
