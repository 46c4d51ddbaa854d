"""A health verdict per GPU: ``ok``, ``degraded`` or ``failed``, with the reasons.

The rules are the signals datacenter tools watch (DCGM's health watches, gpud), read from each
poll: a GPU that cannot be read, uncorrectable memory errors and a failed row remap mean the GPU
has failed; a remap or page retirement waiting for a reset, a storm of corrected errors, an NVLink
link down while others are up, and minutes of thermal or power slowdown mean it is degraded.
No I/O and no clock of its own: the poll's timestamp drives the time-based rules.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from gpm.gpu import clock_events
from gpm.gpu.xid import describe as describe_xid
from gpm.model import GpuEvent, GpuSample, Snapshot


class Verdict(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


VERDICTS = tuple(v.value for v in Verdict)


SLOWDOWN_REASONS = frozenset(clock_events.THERMAL + clock_events.POWER)
SLOWDOWN_SECONDS = 300.0  # held this long, a slowdown is a degraded GPU, not a moment of heat
STORM_ERRORS = 100  # corrected ECC errors ...
STORM_SECONDS = 600.0  # ... within this window
XID_HOLD_SECONDS = 3600.0  # an Xid that marks a GPU failed or degraded holds for this long


@dataclass
class _Watch:
    """What one GPU's time-based rules remember between polls."""

    slowdown_since: float | None = None
    corrected: deque[tuple[float, float]] = field(default_factory=deque)  # (time, count)


class HealthWatch:
    """Gives each GPU of a snapshot its verdict; keeps what the time-based rules need."""

    def __init__(self) -> None:
        self._watches: dict[int, _Watch] = {}
        self._xids: dict[int, GpuEvent] = {}  # per GPU, the latest Xid with a verdict

    def note(self, e: GpuEvent) -> None:
        """An Xid error: a fatal one marks its GPU failed, a serious one degraded, for
        XID_HOLD_SECONDS (or until a worse one); an application's fault changes nothing."""
        new = describe_xid(e.code).health
        if new is None:
            return
        held = self._xids.get(e.gpu_id)
        if held is None or new == "failed" or describe_xid(held.code).health != "failed":
            self._xids[e.gpu_id] = e

    def assess(self, snapshot: Snapshot) -> Snapshot:
        gpus = tuple(self._assess(g, snapshot.timestamp) for g in snapshot.gpus)
        return dataclasses.replace(snapshot, gpus=gpus)

    def _assess(self, g: GpuSample, now: float) -> GpuSample:
        watch = self._watches.setdefault(g.gpu_id, _Watch())
        failed: list[str] = []
        degraded: list[str] = []
        xid = self._xids.get(g.gpu_id)
        if xid is not None and now - xid.timestamp < XID_HOLD_SECONDS:
            entry = describe_xid(xid.code)
            said = f"Xid {xid.code} ({entry.meaning}): {entry.action}"
            (failed if entry.health == "failed" else degraded).append(said)
        if not g.up:
            failed.append(f"GPU cannot be read: {g.error or 'lost'}")
        else:
            self._memory(g, failed, degraded)
            self._nvlink(g, degraded)
            self._slowdown(g, watch, now, degraded)
            self._storm(g, watch, now, degraded)
        verdict = Verdict.FAILED if failed else Verdict.DEGRADED if degraded else Verdict.OK
        return dataclasses.replace(g, health=verdict.value, health_reasons=(*failed, *degraded))

    @staticmethod
    def _memory(g: GpuSample, failed: list[str], degraded: list[str]) -> None:
        if g.ecc_errors_uncorrected:
            failed.append(
                f"{g.ecc_errors_uncorrected:.0f} uncorrectable ECC errors since the driver loaded"
            )
        if g.remap_failed:
            failed.append("a memory row remap failed: the GPU needs service")
        if g.remap_pending:
            degraded.append("a memory row remap is pending: reset the GPU to apply it")
        if g.retired_pages_pending:
            degraded.append("a memory page retirement is pending: reboot to apply it")

    @staticmethod
    def _nvlink(g: GpuSample, degraded: list[str]) -> None:
        # All links down is a GPU without a bridge; some down while others are up is a fault.
        down, up = g.nvlink_links_inactive, g.nvlink_links_active
        if down and up:
            degraded.append(f"{down:.0f} of {down + up:.0f} NVLink links are down")

    @staticmethod
    def _slowdown(g: GpuSample, watch: _Watch, now: float, degraded: list[str]) -> None:
        if g.throttle_reasons is None:
            return  # unknown: keep the clock as it is
        active = SLOWDOWN_REASONS.intersection(g.throttle_reasons)
        if not active:
            watch.slowdown_since = None
            return
        if watch.slowdown_since is None:
            watch.slowdown_since = now
        minutes = (now - watch.slowdown_since) / 60.0
        if now - watch.slowdown_since >= SLOWDOWN_SECONDS:
            reasons = ", ".join(sorted(active))
            degraded.append(f"slowed down ({reasons}) for {minutes:.0f} minutes")

    @staticmethod
    def _storm(g: GpuSample, watch: _Watch, now: float, degraded: list[str]) -> None:
        count = g.ecc_errors_corrected
        if count is None:
            return
        history = watch.corrected
        if history and count < history[-1][1]:
            history.clear()  # the driver reloaded: volatile counts start again
        history.append((now, count))
        while history and history[0][0] < now - STORM_SECONDS:
            history.popleft()
        gained = count - history[0][1]
        if gained >= STORM_ERRORS:
            minutes = STORM_SECONDS / 60.0
            degraded.append(f"{gained:.0f} corrected ECC errors in {minutes:.0f} minutes")
