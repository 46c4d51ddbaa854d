"""Process tracking: fill each GPU process with its facts and workload, and emit start/end events.

A process is read from /proc once, when first seen (keyed by pid and start time); later polls
only ask the exit watch which known processes have exited, so a reused pid is read afresh.
``update`` reads /proc on first sight, so call it from the same worker thread as the GPU poll,
never on the event loop. One caller at a time.

``update`` runs on every poll for every GPU process, so its steady state is kept lean: each
session remembers the last process the source gave and the filled one made from it, and state
that must be swept (sessions not seen, pids no longer listed) is marked with the poll number
instead of being collected into fresh sets on every poll.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpm.classify.facts import PROC, ExitWatch, read_facts
from gpm.classify.rules import classify
from gpm.model import Classification, GpuProcess, GpuSample, ProcessEvent, Snapshot
from gpm.settings import ClassifierRule


@dataclass(slots=True)
class _Known:
    """What /proc said about a pid when first read; valid until the exit watch says otherwise."""

    name: str
    user: str | None
    started_at: float | None
    classification: Classification
    parent_pid: int | None
    parent_name: str | None
    listed: int = 0  # the last poll that listed this pid on a GPU


@dataclass(slots=True)
class _Session:
    """One process's stay on one GPU, with the last process the source gave and its filled form."""

    gpu_uuid: str | None
    process: GpuProcess  # filled, as first seen: what its events say
    first_seen: float
    peak_memory: int | None
    seen: int  # the last poll that listed it
    given: GpuProcess  # as the source last gave it
    filled: GpuProcess  # ``given`` with its facts and workload
    known: _Known | None  # what ``filled`` was made from; None when the source classified it


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
        self._poll = 0
        self._stale: dict[int, _Known] = {}  # exited this poll: reused if the pid is the same one

    def update(self, snapshot: Snapshot) -> tuple[Snapshot, list[ProcessEvent]]:
        """Fill the snapshot's processes; return it with start and end events for this poll.

        A GPU that is down, missing, or whose process list is unknown (None) keeps its sessions
        open, unless the process itself has exited.
        """
        self._poll += 1
        now = snapshot.timestamp
        exited = self._watch.exited()
        self._stale = {pid: known for pid in exited if (known := self._forget(pid))}
        events: list[ProcessEvent] = []
        readable: set[int] = set()
        gpus = []
        listed = 0  # distinct known pids listed this poll
        for gpu in snapshot.gpus:
            if not gpu.up or gpu.processes is None:
                gpus.append(gpu)
                continue
            readable.add(gpu.gpu_id)
            filled, newly_listed = self._fill_gpu(gpu, now, events)
            listed += newly_listed
            gpus.append(gpu if filled is None else dataclasses.replace(gpu, processes=filled))
        for key, session in list(self._sessions.items()):
            if session.seen != self._poll and (
                key[0] in readable or (key[1] in exited and not self._alive(key))
            ):
                events.append(self._end(key, now))
        if listed < len(self._known):
            self._sweep()
        return dataclasses.replace(snapshot, gpus=tuple(gpus)), events

    def close(self, now: float | None = None) -> list[ProcessEvent]:
        """End every open session (at shutdown) and release the exit watch."""
        at = self._clock() if now is None else now
        events = [self._end(key, at) for key in list(self._sessions)]
        self._watch.close()
        self._known.clear()
        return events

    def _fill_gpu(
        self, gpu: GpuSample, now: float, events: list[ProcessEvent]
    ) -> tuple[tuple[GpuProcess, ...] | None, int]:
        """This GPU's processes filled in (None if none changed) and how many pids were newly
        counted as listed this poll.

        A process that exited between the GPU poll and now is left as it came, unclassified and
        without a session, until it is seen again. The loop is the hot path: locals, no calls
        but for processes that are new or whose readings changed.
        """
        poll, sessions, known_pids = self._poll, self._sessions, self._known
        gpu_id, out, listed, changed = gpu.gpu_id, [], 0, False
        for proc in gpu.processes or ():
            known = None
            if proc.classification is None:
                known = known_pids.get(proc.pid) or self._read(proc)
                if known is None:
                    out.append(proc)
                    continue
                if known.listed != poll:
                    known.listed = poll
                    listed += 1
                key = (gpu_id, proc.pid, known.started_at)
            else:
                key = (gpu_id, proc.pid, proc.started_at)  # the source knows (simulated GPUs)
            session = sessions.get(key)
            if session is None:
                session = self._start(key, gpu, proc, known, now, events)
            else:
                session.seen = poll
                memory = proc.gpu_memory_bytes
                if memory is not None and (session.peak_memory or 0) <= memory:
                    session.peak_memory = memory
                last = session.given
                if known is not None and not (
                    session.known is known
                    and last.gpu_memory_bytes == memory
                    and last.sm_utilization_percent == proc.sm_utilization_percent
                    and last.name == proc.name
                    and last.user == proc.user
                    and last.kind == proc.kind
                ):
                    session.given, session.filled, session.known = proc, _filled(proc, known), known
            out.append(session.filled)
            changed = changed or session.filled is not proc
        return (tuple(out) if changed else None), listed

    def _start(
        self,
        key: _Key,
        gpu: GpuSample,
        proc: GpuProcess,
        known: _Known | None,
        now: float,
        events: list[ProcessEvent],
    ) -> _Session:
        filled = proc if known is None else _filled(proc, known)
        session = _Session(
            gpu.uuid, filled, now, proc.gpu_memory_bytes, self._poll, proc, filled, known
        )
        self._sessions[key] = session
        events.append(_event("start", now, key[0], session))
        return session

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
            parent_pid=facts.ppid if facts.ppid is not None and facts.ppid > 1 else None,
            parent_name=facts.ancestors[0][0] if facts.ancestors else None,
        )
        self._known[proc.pid] = known
        return known

    def _forget(self, pid: int) -> _Known | None:
        self._watch.remove(pid)
        return self._known.pop(pid, None)

    def _sweep(self) -> None:
        """Forget pids no GPU listed this poll, unless a session (on an unreadable GPU) holds it."""
        held = {key[1] for key in self._sessions}
        for pid in [p for p, k in self._known.items() if k.listed != self._poll]:
            if pid not in held:
                self._forget(pid)

    def _alive(self, key: _Key) -> bool:
        known = self._known.get(key[1])
        return known is not None and known.started_at == key[2]

    def _end(self, key: _Key, now: float) -> ProcessEvent:
        session = self._sessions.pop(key)
        return _event("end", now, key[0], session, duration=max(0.0, now - session.first_seen))


def _filled(proc: GpuProcess, known: _Known) -> GpuProcess:
    """``proc`` with its name, user, start time, workload and parent from /proc.

    Built positionally, not with dataclasses.replace or keywords: this runs for every process
    whose readings changed, on every poll, and those cost several times more.
    test_fill_keeps_every_source_field guards the field order.
    """
    return GpuProcess(
        proc.pid,
        proc.name or known.name,
        proc.gpu_memory_bytes,
        proc.sm_utilization_percent,
        proc.kind,
        proc.user or known.user,
        known.started_at,
        known.classification,
        proc.mig_index,
        proc.parent_pid or known.parent_pid,
        proc.parent_name or known.parent_name,
    )


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
