"""The energy meter: keeps the ledger, and charges sessions, processes and workloads from it.

It runs on the event loop; ledger reads between polls (at session edges) go to a worker thread.
One lock orders every read and charge, so a session's start is accounted before its end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gpm.energy.attribution import IDLE, IdleFloor, SessionShares, Split, split_interval
from gpm.energy.ledger import EnergyRead, Ledger, reads_of
from gpm.energy.placement import Gpus, SessionPlacement
from gpm.gpu.base import EnergyReader
from gpm.model import EnergyUse, LlmSession, ProcessEvent, Snapshot


@dataclass(frozen=True, slots=True)
class EnergyTotals:
    """Joules since GPM started, for the exporters: replaced whole, never changed in place."""

    by_gpu: dict[int, float] = field(default_factory=dict)
    idle_by_gpu: dict[int, float] = field(default_factory=dict)
    by_workload: dict[str, float] = field(default_factory=dict)
    methods: dict[int, str] = field(default_factory=dict)


class EnergyMeter:
    def __init__(
        self,
        reader: EnergyReader | None,
        placement: SessionPlacement,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``reader`` reads the ledger between polls (None: polls only, as for nvidia-smi)."""
        self._reader = reader
        self._placement = placement
        self._clock = clock
        self._lock = asyncio.Lock()
        self.ledger = Ledger()
        self.sessions = SessionShares()
        self.floor = IdleFloor()
        self._prev: Snapshot | None = None
        self._at_prev: dict[int, float] = {}  # ledger totals at the previous poll
        self._process_joules: dict[tuple[int, int], float] = {}  # (gpu, pid) -> joules
        self.totals = EnergyTotals()

    async def poll(self, snap: Snapshot, events: list[ProcessEvent]) -> list[EnergyUse]:
        """Take a poll's readings into the ledger; what each GPU used since the last poll, by
        workload. Ended processes' events get their energy."""
        async with self._lock:
            self.sessions.charge(self.ledger.record(reads_of(snap.gpus)))
            splits = self._split(snap)
            for g in snap.gpus:
                self.floor.learn(g)
            self._prev = snap
            self._at_prev = {gid: self.ledger.total(gid) or 0.0 for gid in self.ledger.gpus()}
        for s in splits:
            for pid, joules in s.processes.items():
                key = (s.gpu_id, pid)
                self._process_joules[key] = self._process_joules.get(key, 0.0) + joules
        for i, e in enumerate(events):
            if e.event == "end":
                events[i] = replace(
                    e, energy_joules=self._process_joules.pop((e.gpu_id, e.pid), None)
                )
        self._add_totals(splits)
        return [
            EnergyUse(snap.timestamp, s.gpu_id, workload, joules)
            for s in splits
            for workload, joules in s.workloads.items()
            if joules > 0
        ]

    def _split(self, snap: Snapshot) -> list[Split]:
        """Each GPU's energy since the previous poll, split by the processes it had then."""
        prev = self._prev
        if prev is None:
            return []
        seconds = snap.timestamp - prev.timestamp
        out = []
        for g in prev.gpus:
            now, before = self.ledger.total(g.gpu_id), self._at_prev.get(g.gpu_id)
            if now is None or before is None or seconds <= 0:
                continue
            out.append(split_interval(g, now - before, seconds, self.floor.watts(g.gpu_id)))
        return out

    async def session_started(self, s: LlmSession, snap: Snapshot | None) -> None:
        """Place the session on its GPUs and read the ledger: one trip to a worker thread."""
        async with self._lock:
            gpus, rule, reads = await asyncio.to_thread(self._place_and_read, snap)
            self.sessions.charge(self.ledger.record(reads))
            self.sessions.start(s.id, gpus, rule)

    async def session_finished(self, s: LlmSession) -> None:
        """Give the session its energy and its GPUs' rule."""
        async with self._lock:
            reads = await asyncio.to_thread(self._read) if self._reader else []
            self.sessions.charge(self.ledger.record(reads))
            s.energy_joules, s.energy_rule = self.sessions.finish(s.id)

    def _place_and_read(self, snap: Snapshot | None) -> tuple[Gpus, str, list[EnergyRead]]:
        gpus, rule = self._placement.gpus(snap)
        return gpus, rule, self._read() if self._reader else []

    def _read(self) -> list[EnergyRead]:
        """A ledger read now, between polls (blocks: NVML)."""
        assert self._reader is not None
        return self._reader.read_energy(self._clock())

    def _add_totals(self, splits: list[Split]) -> None:
        t = self.totals
        by_gpu, idle, workloads = dict(t.by_gpu), dict(t.idle_by_gpu), dict(t.by_workload)
        for s in splits:
            by_gpu[s.gpu_id] = by_gpu.get(s.gpu_id, 0.0) + s.joules
            idle[s.gpu_id] = idle.get(s.gpu_id, 0.0) + s.idle_joules
            for workload, joules in s.workloads.items():
                if workload != IDLE:
                    workloads[workload] = workloads.get(workload, 0.0) + joules
        methods = {g: m for g in self.ledger.gpus() if (m := self.ledger.method(g))}
        self.totals = replace(
            t, by_gpu=by_gpu, idle_by_gpu=idle, by_workload=workloads, methods=methods
        )
