"""Who used a GPU's energy: LLM sessions, processes and their workloads, and the idle floor.

Sessions: between two ledger reads, a GPU's energy is split equally among the sessions active
on it (reads happen at every session start and end, so the set of sessions is constant between
them). Processes: each poll interval's energy of a GPU, less its idle floor, is split among the
processes that were on it by their SM utilization share, else by GPU memory share, else
equally. The idle floor is the GPU's lowest power seen while no process was on it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from gpm.model import GpuSample

IDLE = "idle"  # the workload key of the idle floor's energy
UNATTRIBUTED = "unattributed"  # energy of an interval whose process list was unknown
IDLE_UTILIZATION_PERCENT = 5.0  # at or below: no work, for learning the idle floor


@dataclass(slots=True)
class _Session:
    gpus: tuple[int, ...]
    rule: str
    joules: float = 0.0
    charged: bool = False  # some ledger interval of one of its GPUs was charged to it


class SessionShares:
    """Energy per LLM session, from the ledger's per-GPU deltas."""

    def __init__(self) -> None:
        self._active: dict[str, _Session] = {}

    def start(self, session_id: str, gpus: tuple[int, ...], rule: str) -> None:
        self._active[session_id] = _Session(gpus, rule)

    def charge(self, deltas: dict[int, float]) -> None:
        """Share each GPU's energy since its last read equally among its active sessions."""
        on = Counter(g for s in self._active.values() for g in s.gpus)
        for s in self._active.values():
            for g in s.gpus:
                if g in deltas:
                    s.joules += deltas[g] / on[g]
                    s.charged = True

    def finish(self, session_id: str) -> tuple[float | None, str | None]:
        """The session's energy (None when no GPU of it was read) and the rule that chose its
        GPUs; (None, None) for a session never started."""
        s = self._active.pop(session_id, None)
        if s is None:
            return None, None
        return (s.joules if s.charged else None), s.rule

    @property
    def active(self) -> int:
        return len(self._active)


class IdleFloor:
    """Each GPU's lowest power seen while no process was on it and it did no work."""

    def __init__(self) -> None:
        self._floor: dict[int, float] = {}

    def learn(self, g: GpuSample) -> None:
        if not g.up or g.processes != () or g.power_watts is None:
            return
        util = g.utilization_percent
        if util is not None and util > IDLE_UTILIZATION_PERCENT:
            return
        known = self._floor.get(g.gpu_id)
        if known is None or g.power_watts < known:
            self._floor[g.gpu_id] = g.power_watts

    def watts(self, gpu_id: int) -> float | None:
        return self._floor.get(gpu_id)


@dataclass(frozen=True, slots=True)
class Split:
    """One GPU's energy over one poll interval, by who used it."""

    gpu_id: int
    joules: float
    idle_joules: float
    processes: dict[int, float]  # pid -> joules
    workloads: dict[str, float]  # workload (IDLE and UNATTRIBUTED included) -> joules


def split_interval(g: GpuSample, joules: float, seconds: float, floor: float | None) -> Split:
    """Split ``joules`` used over ``seconds`` by the processes ``g`` saw at the interval's start.

    With processes, the idle floor's share (floor x seconds, at most all of it) is idle energy
    and the rest is theirs; without any, it is all idle; with an unknown list, unattributed.
    """
    procs = g.processes
    if procs is None:
        return Split(g.gpu_id, joules, 0.0, {}, {UNATTRIBUTED: joules})
    if not procs:
        return Split(g.gpu_id, joules, joules, {}, {IDLE: joules})
    idle = min(joules, floor * seconds) if floor is not None else 0.0
    busy = joules - idle
    weights = _weights([p.sm_utilization_percent for p in procs]) or _weights(
        [p.gpu_memory_bytes for p in procs]
    )
    if weights is None:
        weights = [1.0 / len(procs)] * len(procs)
    by_pid: dict[int, float] = {}
    workloads: dict[str, float] = {IDLE: idle} if idle else {}
    for p, w in zip(procs, weights, strict=True):
        share = busy * w
        by_pid[p.pid] = by_pid.get(p.pid, 0.0) + share
        c = p.classification
        workload = c.workload.value if c else "general_compute"
        workloads[workload] = workloads.get(workload, 0.0) + share
    return Split(g.gpu_id, joules, idle, by_pid, workloads)


def _weights(values: list[float | int | None]) -> list[float] | None:
    """Shares proportional to ``values``; None unless every value is known and they sum above 0."""
    if any(v is None for v in values):
        return None
    total = float(sum(v for v in values if v is not None))
    if total <= 0:
        return None
    return [float(v or 0) / total for v in values]
