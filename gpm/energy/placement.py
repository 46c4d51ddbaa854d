"""Which GPUs serve an LLM session: the rule that decides whose energy a session is charged.

In order: the GPUs holding a process of the backend the proxy forwards to (the process that
listens on the backend's port, and its children, such as Ollama's runners), else the GPUs with
LLM inference processes, else every GPU that was read. The session records which rule applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from yarl import URL

from gpm.classify.facts import PROC, descends_from, listening_pids
from gpm.model import Snapshot, Workload
from gpm.net import is_loopback

BACKEND_PROCESS = "backend_process"
LLM_PROCESSES = "llm_processes"
ALL_GPUS = "all_gpus"
LISTENER_TTL_SECS = 30.0  # how long the backend's listening process is remembered

Gpus = tuple[int, ...]  # the GPU ids a session is charged to


def local_port(url: str) -> int | None:
    """The port of a backend URL on this machine (whose process GPM can find); else None."""
    parsed = URL(url)
    if parsed.host is None or not (parsed.host == "localhost" or is_loopback(parsed.host)):
        return None
    return parsed.port


class SessionPlacement:
    """Finds a session's GPUs from the latest snapshot. Reads /proc: call it off the event loop."""

    def __init__(
        self,
        backend_port: int | None,
        proc_root: Path = PROC,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend_port = backend_port
        self._proc_root = proc_root
        self._clock = clock
        self._listeners: frozenset[int] = frozenset()
        self._looked_at = float("-inf")
        # The last answer, for the snapshot and listeners it was found from: sessions starting
        # within one poll share it.
        self._last: tuple[Snapshot | None, frozenset[int], tuple[tuple[int, ...], str]] | None = (
            None
        )

    def gpus(self, snap: Snapshot | None) -> tuple[Gpus, str]:
        """The session's GPUs and the rule that chose them; no GPUs when none was read."""
        listeners = self._backend()
        last = self._last
        if last is not None and last[0] is snap and last[1] == listeners:
            return last[2]
        found = self._find(snap, listeners)
        self._last = (snap, listeners, found)
        return found

    def _find(
        self, snap: Snapshot | None, listeners: frozenset[int]
    ) -> tuple[tuple[int, ...], str]:
        up = [g for g in (snap.gpus if snap else ()) if g.up]
        if listeners:
            backend = tuple(
                g.gpu_id
                for g in up
                if any(descends_from(p.pid, listeners, self._proc_root) for p in g.processes or ())
            )
            if backend:
                return backend, BACKEND_PROCESS
        llm = tuple(
            g.gpu_id
            for g in up
            if any(
                p.classification and p.classification.workload is Workload.LLM_INFERENCE
                for p in g.processes or ()
            )
        )
        if llm:
            return llm, LLM_PROCESSES
        return tuple(g.gpu_id for g in up), ALL_GPUS

    def _backend(self) -> frozenset[int]:
        """The backend's listening processes, looked up again once they are gone or stale."""
        if self.backend_port is None:
            return frozenset()
        now = self._clock()
        stale = now - self._looked_at >= LISTENER_TTL_SECS
        missing = not self._listeners and now - self._looked_at >= 1.0  # at most once a second
        gone = any(not (self._proc_root / str(pid)).exists() for pid in self._listeners)
        if stale or missing or gone:
            self._listeners = listening_pids(self.backend_port, self._proc_root)
            self._looked_at = now
        return self._listeners
