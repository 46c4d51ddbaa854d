"""Alert rules as a pure state machine: readings in, firing/resolved transitions out.

No I/O and no clock of its own: the service passes each snapshot, GPM's health and ``now``, and
delivers whatever transitions come back (see ``gpm.alerts.notify``). Every rule has the same shape:

* a reading is *above* (the alert condition holds), *below* (clearly clear: for numeric rules
  under ``threshold - hysteresis``), *between* (the hysteresis band: hold the current state) or
  *unknown* (the value was not reported: hold the state, and restart the min-duration clock);
* an alert fires once the reading has stayed above for ``min_duration_secs`` without a break,
  and resolves at the first reading below; so a value hovering at the threshold neither fires on
  a single sample nor flaps once it has fired.

``sw_power_cap`` is deliberately not an alert: a GPU under full load sits at its power limit by
design. Thermal slowdowns and hardware power brakes/slowdowns are.

The uncorrected-ECC rule is event-like: it fires at once when the count goes up (the first count
seen is the baseline) and resolves after ``ecc_quiet_secs`` without a further increase.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gpm.energy.waste import IdleWaste
from gpm.gpu import clock_events
from gpm.gpu.xid import describe as describe_xid
from gpm.model import Alert, GpuEvent, GpuSample, Snapshot
from gpm.settings import AlertsConfig
from gpm.state import Health

_REASON_TEXT = {
    "sw_thermal_slowdown": "software thermal slowdown",
    "hw_thermal_slowdown": "hardware thermal slowdown",
    "hw_power_brake_slowdown": "hardware power brake",
    "hw_slowdown": "hardware slowdown",
}
DEFAULT_ECC_QUIET_SECS = 3600.0
_MEMORY_PROBLEMS = (
    "a row remap failed, the GPU needs service",
    "a row remap is pending, reset the GPU to apply it",
    "a page retirement is pending, reboot to apply it",
)

# (rule, gpu_id, variant): one alert can be active per key.
Key = tuple[str, int | None, str]


class Level(Enum):
    ABOVE = "above"
    BETWEEN = "between"
    BELOW = "below"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class _Reading:
    """One rule's verdict on one reading, with the words for either transition."""

    level: Level
    severity: str
    fire_message: str = ""
    clear_message: str = ""
    value: float | None = None
    threshold: float | None = None
    hold_secs: float = 0.0


@dataclass(slots=True)
class _Track:
    pending_since: float | None = None
    firing: Alert | None = None


def _waste_text(label: str, w: IdleWaste) -> str:
    held = "" if w.memory_used_bytes is None else f" {w.memory_used_bytes / 2**30:.1f} GiB"
    used = "" if w.joules is None else f", {w.joules / 3600:.1f} Wh used meanwhile"
    return (
        f"{label} idle for {_num(w.seconds / 60)} min with{held} memory held by "
        f"{', '.join(w.holders)}{used}: unload the model or stop the process to free it"
    )


def gpu_label(gpu: GpuSample) -> str:
    """``GPU 0 (RTX 4090)``, or ``GPU 0`` when the name is unknown."""
    return f"GPU {gpu.gpu_id} ({gpu.name})" if gpu.name else f"GPU {gpu.gpu_id}"


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def _level(value: float | None, threshold: float, hysteresis: float) -> Level:
    if value is None:
        return Level.UNKNOWN
    if value > threshold:
        return Level.ABOVE
    if value < threshold - hysteresis:
        return Level.BELOW
    return Level.BETWEEN


class AlertEngine:
    """Tracks every rule for every GPU; ``evaluate`` once per poll (and on a stall timer)."""

    def __init__(self, cfg: AlertsConfig, *, ecc_quiet_secs: float = DEFAULT_ECC_QUIET_SECS):
        self._cfg = cfg
        self._ecc_quiet_secs = ecc_quiet_secs
        self._tracks: dict[Key, _Track] = {}
        self._ecc_last: dict[int, float] = {}  # last uncorrected count seen, per GPU
        self._ecc_increase_at: dict[int, float] = {}
        self._xid_at: dict[int, float] = {}  # when each GPU last reported an Xid error

    @property
    def active(self) -> tuple[Alert, ...]:
        """The firing alerts, oldest first."""
        firing = [t.firing for t in self._tracks.values() if t.firing is not None]
        return tuple(sorted(firing, key=lambda a: a.timestamp))

    def evaluate(self, snapshot: Snapshot | None, health: Health, now: float) -> list[Alert]:
        """Apply one set of readings; return the alerts that started or cleared just now."""
        events: list[Alert] = []
        if snapshot is not None:
            present = {gpu.gpu_id for gpu in snapshot.gpus}
            for gpu in snapshot.gpus:
                for key, reading in self._gpu_readings(gpu):
                    events.extend(self._step(key, reading, now))
                events.extend(self._ecc(gpu, now))
                events.extend(self._xid_quiet(gpu, now))
            events.extend(self._forget_missing(present, now))
        events.extend(self._step(("poll_stalled", None, ""), self._stall_reading(health, now), now))
        return events

    def _gpu_readings(self, gpu: GpuSample) -> list[tuple[Key, _Reading]]:
        cfg, label, hold = self._cfg, gpu_label(gpu), self._cfg.min_duration_secs
        gid = gpu.gpu_id
        temp, temp_limit = gpu.temperature_celsius, cfg.temp_threshold_celsius
        temp_clear = temp_limit - cfg.hysteresis_celsius
        mem, mem_limit = gpu.memory_percent, cfg.memory_threshold_percent
        mem_clear = mem_limit - cfg.hysteresis_percent
        readings: list[tuple[Key, _Reading]] = [
            (
                ("temperature", gid, ""),
                _Reading(
                    _level(temp, temp_limit, cfg.hysteresis_celsius),
                    "critical",
                    f"{label} at {_num(temp or 0)} °C, above {_num(temp_limit)} °C",
                    f"{label} back to {_num(temp or 0)} °C, below {_num(temp_clear)} °C",
                    temp,
                    temp_limit,
                    hold,
                ),
            ),
            (
                ("memory", gid, ""),
                _Reading(
                    _level(mem, mem_limit, cfg.hysteresis_percent),
                    "warning",
                    f"{label} memory {_num(mem or 0)}% used, above {_num(mem_limit)}%",
                    f"{label} memory back to {_num(mem or 0)}% used, below {_num(mem_clear)}%",
                    mem,
                    mem_limit,
                    hold,
                ),
            ),
            (
                ("gpu_down", gid, ""),
                _Reading(
                    Level.BELOW if gpu.up else Level.ABOVE,
                    "critical",
                    f"{label} is down: {gpu.error or 'no reason given'}",
                    f"{label} is back up",
                    hold_secs=hold,
                ),
            ),
        ]
        for variant, reasons in (
            ("thermal", clock_events.THERMAL),
            ("power", clock_events.POWER),
        ):
            readings.append((("throttle", gid, variant), self._throttle(gpu, variant, reasons)))
        readings.append((("memory_health", gid, ""), self._memory_health(gpu)))
        return readings

    @staticmethod
    def _memory_health(gpu: GpuSample) -> _Reading:
        """A row remap that failed (critical) or waits for a reset, or a page retirement that
        waits for a reboot; fires at once, as these are not noise."""
        flags = (gpu.remap_failed, gpu.remap_pending, gpu.retired_pages_pending)
        if all(f is None for f in flags):
            return _Reading(Level.UNKNOWN, "warning")
        label = gpu_label(gpu)
        problems = [text for flag, text in zip(flags, _MEMORY_PROBLEMS, strict=True) if flag]
        return _Reading(
            Level.ABOVE if problems else Level.BELOW,
            "critical" if gpu.remap_failed else "warning",
            f"{label} memory: {'; '.join(problems)}",
            f"{label} memory: no remap or page retirement waiting",
        )

    def _throttle(self, gpu: GpuSample, variant: str, reasons: tuple[str, ...]) -> _Reading:
        label = gpu_label(gpu)
        if gpu.throttle_reasons is None:
            return _Reading(Level.UNKNOWN, "warning")
        active = [r for r in reasons if r in gpu.throttle_reasons]
        # A hardware-initiated slowdown means the board itself is protecting against damage.
        severity = "critical" if any(r.startswith("hw_") for r in active) else "warning"
        return _Reading(
            Level.ABOVE if active else Level.BELOW,
            severity,
            f"{label} throttled ({variant}): {', '.join(_REASON_TEXT[r] for r in active)}",
            f"{label} no longer throttled ({variant})",
            hold_secs=self._cfg.min_duration_secs,
        )

    def _stall_reading(self, health: Health, now: float) -> _Reading:
        since = health.last_poll_at if health.last_poll_at is not None else health.started_at
        if not since:
            return _Reading(Level.UNKNOWN, "critical")
        age, limit = now - since, self._cfg.poll_stall_secs
        what = "last poll" if health.last_poll_at is not None else "no poll since start"
        # The stall limit is itself a duration, so no extra min-duration on top.
        return _Reading(
            Level.ABOVE if age > limit else Level.BELOW,
            "critical",
            f"GPU polling stalled: {what} {_num(age)} s ago (limit {_num(limit)} s)",
            "GPU polling resumed",
            age,
            limit,
        )

    def _step(self, key: Key, reading: _Reading, now: float) -> list[Alert]:
        track = self._tracks.setdefault(key, _Track())
        if reading.level is Level.ABOVE:
            if track.firing is not None:
                return []
            if track.pending_since is None:
                track.pending_since = now
            if now - track.pending_since < reading.hold_secs:
                return []
            track.pending_since = None
            track.firing = self._alert(
                key, "firing", reading.severity, reading.fire_message, reading, now
            )
            return [track.firing]
        track.pending_since = None
        if reading.level is Level.BELOW and track.firing is not None:
            resolved = self._alert(
                key, "resolved", track.firing.severity, reading.clear_message, reading, now
            )
            track.firing = None
            return [resolved]
        return []

    def _ecc(self, gpu: GpuSample, now: float) -> list[Alert]:
        gid, count = gpu.gpu_id, gpu.ecc_errors_uncorrected
        key: Key = ("ecc", gid, "")
        label = gpu_label(gpu)
        if count is None:
            return []
        previous = self._ecc_last.get(gid)
        self._ecc_last[gid] = count  # a lower count (driver reload) becomes the new baseline
        track = self._tracks.setdefault(key, _Track())
        if previous is not None and count > previous:
            self._ecc_increase_at[gid] = now
            if track.firing is None:
                new = count - previous
                noun = "error" if new == 1 else "errors"
                track.firing = Alert(
                    timestamp=now,
                    rule="ecc",
                    state="firing",
                    severity="critical",
                    message=f"{label} reported {new} new uncorrected ECC {noun} (total {count})",
                    gpu_id=gid,
                    value=float(count),
                )
                return [track.firing]
            return []
        quiet_since = self._ecc_increase_at.get(gid, now)
        if track.firing is None or now - quiet_since < self._ecc_quiet_secs:
            return []
        track.firing = None
        return [
            Alert(
                timestamp=now,
                rule="ecc",
                state="resolved",
                severity="critical",
                message=f"{label}: no new uncorrected ECC errors for "
                f"{_num(self._ecc_quiet_secs / 60)} min (total {count})",
                gpu_id=gid,
                value=float(count),
            )
        ]

    def gpu_event(self, e: GpuEvent, label: str, now: float) -> list[Alert]:
        """An Xid error fires at once, saying what the code means and what to do; more Xids on
        the same GPU keep it firing, and it resolves after ``ecc_quiet_secs`` without one."""
        xid = describe_xid(e.code)
        self._xid_at[e.gpu_id] = now
        track = self._tracks.setdefault(("xid", e.gpu_id, ""), _Track())
        if track.firing is not None:
            return []
        track.firing = Alert(
            timestamp=now,
            rule="xid",
            state="firing",
            severity="critical" if xid.health == "failed" else "warning",
            message=f"{label}: Xid {e.code}, {xid.meaning}: {xid.action}",
            gpu_id=e.gpu_id,
            value=float(e.code),
        )
        return [track.firing]

    def _xid_quiet(self, gpu: GpuSample, now: float) -> list[Alert]:
        track = self._tracks.get(("xid", gpu.gpu_id, ""))
        last = self._xid_at.get(gpu.gpu_id)
        if track is None or track.firing is None or last is None:
            return []
        if now - last < self._ecc_quiet_secs:
            return []
        severity, track.firing = track.firing.severity, None
        minutes = _num(self._ecc_quiet_secs / 60)
        return [
            Alert(
                timestamp=now,
                rule="xid",
                state="resolved",
                severity=severity,
                message=f"{gpu_label(gpu)}: no Xid errors for {minutes} min",
                gpu_id=gpu.gpu_id,
            )
        ]

    def idle_waste(self, snapshot: Snapshot, wastes: list[IdleWaste], now: float) -> list[Alert]:
        """A warning while a GPU is idle with its memory held for ``energy.idle_minutes``."""
        by_gpu = {w.gpu_id: w for w in wastes}
        events = []
        for gpu in snapshot.gpus:
            w = by_gpu.get(gpu.gpu_id)
            label = gpu_label(gpu)
            reading = _Reading(
                Level.BELOW if w is None else Level.ABOVE,
                "warning",
                "" if w is None else _waste_text(label, w),
                f"{label} is working again or its memory was released",
                None if w is None else w.seconds / 60,
            )
            events.extend(self._step(("idle_waste", gpu.gpu_id, ""), reading, now))
        return events

    def _forget_missing(self, present: set[int], now: float) -> list[Alert]:
        """A GPU gone from the snapshot takes its alerts with it (each resolved once)."""
        events = []
        for key in [k for k in self._tracks if k[1] is not None and k[1] not in present]:
            track = self._tracks.pop(key)
            if track.firing is not None:
                gone = track.firing
                events.append(
                    Alert(
                        timestamp=now,
                        rule=gone.rule,
                        state="resolved",
                        severity=gone.severity,
                        message=f"GPU {key[1]} is no longer reported; {gone.rule} alert cleared",
                        gpu_id=gone.gpu_id,
                        threshold=gone.threshold,
                    )
                )
        for gid in [g for g in self._ecc_last if g not in present]:
            self._ecc_last.pop(gid)
            self._ecc_increase_at.pop(gid, None)
        return events

    @staticmethod
    def _alert(
        key: Key, state: str, severity: str, message: str, reading: _Reading, now: float
    ) -> Alert:
        return Alert(
            timestamp=now,
            rule=key[0],
            state=state,
            severity=severity,
            message=message,
            gpu_id=key[1],
            value=reading.value,
            threshold=reading.threshold,
        )
