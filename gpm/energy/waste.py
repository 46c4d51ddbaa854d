"""Idle waste: a GPU doing no work while its memory is held, by a process or a resident model,
for longer than ``energy.idle_minutes``; who holds it, how much, since when, and the energy the
GPU used meanwhile."""

from __future__ import annotations

from dataclasses import dataclass

from gpm.energy.attribution import IDLE_UTILIZATION_PERCENT
from gpm.energy.ledger import Ledger
from gpm.model import GpuSample, LoadedModel, Snapshot, Workload


@dataclass(frozen=True, slots=True)
class IdleWaste:
    gpu_id: int
    since: float
    seconds: float
    memory_used_bytes: int | None
    holders: tuple[str, ...]  # "ollama (pid 4242)", "model qwen2:7b"
    joules: float | None


@dataclass(slots=True)
class _Idle:
    since: float
    joules_at: float | None  # the ledger's total when it began


class WasteWatch:
    def __init__(self, idle_minutes: float) -> None:
        self.idle_secs = idle_minutes * 60
        self._idle: dict[int, _Idle] = {}

    def update(
        self, snap: Snapshot, models: tuple[LoadedModel, ...], ledger: Ledger
    ) -> list[IdleWaste]:
        """The GPUs idle with memory held for at least ``idle_minutes``, as of this poll."""
        out = []
        for g in snap.gpus:
            holders = _holders(g, models)
            if not holders or not _idle(g):
                self._idle.pop(g.gpu_id, None)
                continue
            idle = self._idle.setdefault(g.gpu_id, _Idle(snap.timestamp, ledger.total(g.gpu_id)))
            seconds = snap.timestamp - idle.since
            if seconds < self.idle_secs:
                continue
            now_j = ledger.total(g.gpu_id)
            joules = (
                now_j - idle.joules_at if now_j is not None and idle.joules_at is not None else 0.0
            )
            memory = g.memory_used_bytes
            out.append(
                IdleWaste(g.gpu_id, idle.since, seconds, None if memory is None else int(memory),
                          holders, joules)
            )  # fmt: skip
        return out


def _idle(g: GpuSample) -> bool:
    util = g.utilization_percent
    return g.up and util is not None and util <= IDLE_UTILIZATION_PERCENT


def _holders(g: GpuSample, models: tuple[LoadedModel, ...]) -> tuple[str, ...]:
    """The processes on the GPU, and the resident models where an LLM server is one of them."""
    procs = g.processes or ()
    names = [f"{p.name or 'pid'} (pid {p.pid})" for p in procs]
    serving = any(
        p.classification and p.classification.workload is Workload.LLM_INFERENCE for p in procs
    )
    if serving:
        names += [f"model {m.name}" for m in models]
    return tuple(names)
