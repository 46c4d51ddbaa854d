"""Process tracking: fill each GPU process with its facts and workload, and emit start/end events.

A process is read from /proc once, when first seen (keyed by pid and start time); later polls
only ask the exit watch which known processes have exited, so a reused pid is read afresh.
``update`` reads /proc on first sight, so call it from the same worker thread as the GPU poll,
never on the event loop. One caller at a time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpm.classify import classify
from gpm.config import ClassifierRule
from gpm.model import Classification, GpuProcess, GpuSample, ProcessEvent, Snapshot
from gpm.procfacts import PROC, ExitWatch, read_facts


@dataclass(frozen=True, slots=True)
class _Known:
    """What /proc said about a pid when first read; valid until the exit watch says otherwise."""

    name: str
    user: str | None
    started_at: float | None
    classification: Classification


@dataclass(slots=True)
class _Session:
    """One process's stay on one GPU."""

    gpu_uuid: str | None
    process: GpuProcess  # filled, as first seen
    first_seen: float
    peak_memory: int | None


_Key = tuple[int, int, float | None]  # gpu_id, pid, process start time


class ProcessTracker:
    """Classifies GPU processes and turns their comings and goings into ProcessEvents."""

    def __init__(
        self,
        proc_root: Path = PROC,
        rules: Sequence[ClassifierRule] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._proc_root = proc_root
        self._rules = tuple(rules)
        self._clock = clock
        self._known: dict[int, _Known] = {}
        self._watch = ExitWatch(proc_root)
        self._sessions: dict[_Key, _Session] = {}
        self._filled: dict[int, tuple[GpuProcess, GpuProcess]] = {}  # pid: (as given, filled)
        self._stale: dict[int, _Known] = {}  # exited this poll: reused if the pid is the same one

    def update(self, snapshot: Snapshot) -> tuple[Snapshot, list[ProcessEvent]]:
        """Fill the snapshot's processes; return it with start and end events for this poll.

        A GPU that is down, missing, or whose process list is unknown (None) keeps its sessions
        open, unless the process itself has exited.
        """
        now = snapshot.timestamp
        exited = self._watch.exited()
        self._stale = {pid: known for pid in exited if (known := self._forget(pid))}
        events: list[ProcessEvent] = []
        seen: set[_Key] = set()
        listed: set[int] = set()
        unknown = {key[0] for key in self._sessions}
        gpus = []
        for gpu in snapshot.gpus:
            if not gpu.up or gpu.processes is None:
                gpus.append(gpu)
                continue
            unknown.discard(gpu.gpu_id)
            filled = tuple(self._fill(p) for p in gpu.processes)
            gpus.append(dataclasses.replace(gpu, processes=filled))
            for proc in filled:
                listed.add(proc.pid)
                if proc.classification is not None:
                    seen.add(self._track(gpu, proc, now, events))
        for key in [k for k in self._sessions if k not in seen]:
            if key[0] not in unknown or (key[1] in exited and not self._alive(key)):
                events.append(self._end(key, now))
        for pid in set(self._known) - listed - {key[1] for key in self._sessions}:
            self._forget(pid)
        return dataclasses.replace(snapshot, gpus=tuple(gpus)), events

    def close(self, now: float | None = None) -> list[ProcessEvent]:
        """End every open session (at shutdown) and release the exit watch."""
        at = self._clock() if now is None else now
        events = [self._end(key, at) for key in list(self._sessions)]
        self._watch.close()
        self._known.clear()
        self._filled.clear()
        return events

    def _fill(self, proc: GpuProcess) -> GpuProcess:
        """The process with name, user, start time and classification, or as it came if gone."""
        if proc.classification is not None:
            return proc  # the source knows better (the simulated one sets it)
        last = self._filled.get(proc.pid)
        if last is not None and last[0] == proc:
            return last[1]  # steady state: same readings as last poll, same filled process
        known = self._known.get(proc.pid) or self._read(proc)
        if known is None:
            return proc  # exited between the GPU poll and now: skipped until seen again
        # Built directly, not with dataclasses.replace: this runs for every process on every
        # poll and replace costs several times more. test_fill_keeps_every_source_field guards it.
        filled = GpuProcess(
            pid=proc.pid,
            name=proc.name or known.name,
            gpu_memory_bytes=proc.gpu_memory_bytes,
            sm_utilization_percent=proc.sm_utilization_percent,
            kind=proc.kind,
            user=proc.user or known.user,
            started_at=known.started_at,
            classification=known.classification,
        )
        self._filled[proc.pid] = (proc, filled)
        return filled

    def _read(self, proc: GpuProcess) -> _Known | None:
        facts = read_facts(proc.pid, self._proc_root)
        if facts is None or not self._watch.add(proc.pid, facts.started_at):
            return None
        stale = self._stale.get(proc.pid)
        if stale is not None and stale.started_at == facts.started_at:
            # Exited but still listed (a zombie): keep what it was, not its emptied /proc files.
            self._known[proc.pid] = stale
            return stale
        known = _Known(
            name=facts.name,
            user=facts.user,
            started_at=facts.started_at,
            classification=classify(facts, kind=proc.kind, rules=self._rules),
        )
        self._known[proc.pid] = known
        return known

    def _forget(self, pid: int) -> _Known | None:
        self._watch.remove(pid)
        self._filled.pop(pid, None)
        return self._known.pop(pid, None)

    def _alive(self, key: _Key) -> bool:
        known = self._known.get(key[1])
        return known is not None and known.started_at == key[2]

    def _track(
        self, gpu: GpuSample, proc: GpuProcess, now: float, events: list[ProcessEvent]
    ) -> _Key:
        key = (gpu.gpu_id, proc.pid, proc.started_at)
        session = self._sessions.get(key)
        if session is None:
            session = _Session(gpu.uuid, proc, now, proc.gpu_memory_bytes)
            self._sessions[key] = session
            events.append(_event("start", now, key[0], session))
        elif proc.gpu_memory_bytes is not None:
            session.peak_memory = max(session.peak_memory or 0, proc.gpu_memory_bytes)
        return key

    def _end(self, key: _Key, now: float) -> ProcessEvent:
        session = self._sessions.pop(key)
        return _event("end", now, key[0], session, duration=max(0.0, now - session.first_seen))


def _event(
    kind: str, now: float, gpu_id: int, session: _Session, duration: float | None = None
) -> ProcessEvent:
    proc = session.process
    c = proc.classification
    assert c is not None  # only classified processes get sessions
    return ProcessEvent(
        timestamp=now,
        event=kind,
        gpu_id=gpu_id,
        gpu_uuid=session.gpu_uuid,
        pid=proc.pid,
        name=proc.name,
        workload=c.workload,
        reason=c.reason,
        user=proc.user,
        container=c.container,
        model=c.model,
        steam_app_id=c.steam_app_id,
        process_started_at=proc.started_at,
        gpu_memory_peak_bytes=session.peak_memory,
        duration_seconds=duration,
    )
