"""The service's live state: the latest of everything, written by the loop, read by sinks.

Only the service loop writes here (on the event loop); the API, Prometheus collector and OTLP
exporter read it. Values are replaced whole (immutable snapshots), never mutated in place, so a
reader on another thread always sees a consistent object.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gpm.energy.meter import EnergyTotals
from gpm.energy.waste import IdleWaste
from gpm.model import Alert, HostInfo, LoadedModel, Snapshot


@dataclass(slots=True)
class Health:
    """GPM's own health, for ``/metrics`` and the poll-stalled alert."""

    started_at: float = 0.0
    last_poll_at: float | None = None  # when the last poll finished
    last_success_at: float | None = None  # last poll that read at least one GPU or had none
    last_poll_seconds: float | None = None
    # The last poll's time by phase: "gpus" (the source's reading), "classify" (processes and
    # health, in the same worker trip), "record" (energy, storage, alerts, on the event loop).
    phase_seconds: dict[str, float] = field(default_factory=dict)
    polls: int = 0
    polls_skipped: int = 0  # overran their slot
    errors: Counter[str] = field(default_factory=Counter)  # by kind: "nvml", "storage", ...


@dataclass(slots=True)
class LiveState:
    snapshot: Snapshot | None = None
    host: HostInfo | None = None  # set once the GPU source is open
    models: tuple[LoadedModel, ...] = ()
    backend_up: bool | None = None  # None: not polled (proxy off)
    backend_version: str | None = None
    active_alerts: tuple[Alert, ...] = ()
    health: Health = field(default_factory=Health)
    energy: EnergyTotals = field(default_factory=EnergyTotals)
    idle_waste: tuple[IdleWaste, ...] = ()
