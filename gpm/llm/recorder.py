"""An LLM session's way from the proxy to the sinks (storage, Prometheus, OTLP).

Its energy is metered at both edges in tasks of their own, so the proxy's path never waits on
NVML; then every sink gets the session, a failing sink never keeping it from the others, and a
session whose energy could not be read is still recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from gpm.energy.meter import EnergyMeter
from gpm.model import LlmSession, Snapshot

log = logging.getLogger("gpm.service")

SessionSink = Callable[[LlmSession], None]


class SessionRecorder:
    """Meters and delivers the proxy's sessions; ``errors`` counts what failed, by kind."""

    def __init__(
        self,
        energy: EnergyMeter,
        snapshot: Callable[[], Snapshot | None],
        errors: Counter[str],
        sinks: list[SessionSink],
    ) -> None:
        self._energy = energy
        self._snapshot = snapshot
        self._errors = errors
        self.sinks = sinks
        self._tasks: set[asyncio.Task[None]] = set()  # sessions being metered

    def started(self, session: LlmSession) -> None:
        """The proxy began a session: place it on its GPUs and read their energy."""
        self._spawn(self._energy.session_started(session, self._snapshot()))

    def finished(self, session: LlmSession) -> None:
        """A finished session: its energy is read, then every sink gets it."""
        self._spawn(self._record(session))

    async def drain(self, timeout: float) -> None:
        """Wait for the sessions being metered, at most ``timeout`` seconds."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._errors["energy"] += 1
            log.warning("metering an LLM session's energy failed: %s", task.exception())

    async def _record(self, session: LlmSession) -> None:
        try:
            await self._energy.session_finished(session)
        finally:  # recorded even when its energy could not be read
            for sink in self.sinks:
                try:
                    sink(session)
                except Exception as exc:
                    self._errors["session_sink"] += 1
                    log.warning("recording an LLM session failed: %s", exc)
