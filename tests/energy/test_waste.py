"""Idle waste: a GPU idle with its memory held for energy.idle_minutes is reported, with who
holds it and the energy it used meanwhile, and alerted on until it works or lets go."""

from __future__ import annotations

from gpm.alerts.engine import AlertEngine
from gpm.energy.ledger import EnergyRead, Ledger
from gpm.energy.waste import WasteWatch
from gpm.model import (
    Classification,
    GpuProcess,
    GpuSample,
    LoadedModel,
    Snapshot,
    Workload,
)
from gpm.settings import AlertsConfig

OLLAMA = GpuProcess(
    4242, "ollama", 6 << 30, classification=Classification(Workload.LLM_INFERENCE, "cmdline")
)
MODEL = LoadedModel("qwen2:7b", 5 << 30, 5 << 30)


def snap(t: float, util: float, procs: tuple[GpuProcess, ...] = (OLLAMA,)) -> Snapshot:
    gpu = GpuSample(0, t, name="RTX 4090", utilization_percent=util, memory_used_bytes=6 << 30,
                    power_watts=30.0, processes=procs)  # fmt: skip
    return Snapshot(t, "nvml", (gpu,))


def test_idle_with_memory_held_is_reported_then_cleared() -> None:
    watch, ledger, alerts = WasteWatch(idle_minutes=10), Ledger(), AlertEngine(AlertsConfig())
    fired = []
    for minute in range(0, 12):
        t = minute * 60.0
        ledger.record([EnergyRead(0, t, 30.0 * t, 30.0)])  # 30 W while idle
        s = snap(t, util=0.0)
        wastes = watch.update(s, (MODEL,), ledger)
        fired += alerts.idle_waste(s, wastes, t)
        if minute < 10:
            assert wastes == []
    (w,) = wastes
    assert (w.gpu_id, w.since, w.seconds) == (0, 0.0, 660.0)
    assert w.holders == ("ollama (pid 4242)", "model qwen2:7b")
    assert w.joules == 30.0 * 660  # what the GPU used while it sat idle
    (alert,) = fired
    assert (alert.rule, alert.state, alert.severity) == ("idle_waste", "firing", "warning")
    assert "idle for 10 min" in alert.message and "ollama (pid 4242)" in alert.message
    # Work resumes: the waste and the alert clear.
    busy = snap(720.0, util=80.0)
    assert watch.update(busy, (MODEL,), ledger) == []
    (cleared,) = alerts.idle_waste(busy, [], 720.0)
    assert cleared.state == "resolved"


def test_idle_without_memory_held_is_not_waste() -> None:
    watch, ledger = WasteWatch(idle_minutes=1), Ledger()
    for t in (0.0, 120.0):
        assert watch.update(snap(t, util=0.0, procs=()), (MODEL,), ledger) == []
    # Utilization unknown: not judged idle.
    unknown = Snapshot(0.0, "nvml", (GpuSample(0, 0.0, processes=(OLLAMA,)),))
    assert watch.update(unknown, (), ledger) == []
