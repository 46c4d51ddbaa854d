"""Fan-out of snapshots to Server-Sent Event subscribers.

Each subscriber holds at most the newest message: a slow browser skips snapshots instead of
making the service buffer them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gpm.model import Snapshot
from gpm.views import snapshot_json


class Broadcaster:
    """Publishes each snapshot once as SSE text; subscribers get the latest one.

    It also keeps the snapshot's JSON rendered once per poll (:meth:`json`), which
    ``/api/realtime`` serves too: both answers carry the same text.
    """

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._latest: Snapshot | None = None
        self._rendered: str | None = None
        self._json: tuple[Snapshot | None, float | None, str] | None = None

    def json(self, snapshot: Snapshot | None) -> str:
        """``snapshot`` as JSON, rendered once for each poll (by identity and timestamp)."""
        cached = self._json
        stamp = None if snapshot is None else snapshot.timestamp
        if cached is not None and (
            cached[0] is snapshot or (stamp is not None and cached[1] == stamp)
        ):
            return cached[2]
        text = snapshot_json(snapshot)
        self._json = (snapshot, stamp, text)
        return text

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, snapshot: Snapshot) -> None:
        """Call on the event loop that serves the API."""
        self._latest, self._rendered = snapshot, None
        if not self._subscribers:
            return  # rendered lazily, when someone subscribes
        message = self._message()
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

    @property
    def latest_timestamp(self) -> float | None:
        return self._latest.timestamp if self._latest else None

    def _message(self) -> str:
        if self._rendered is None:
            self._rendered = f"event: snapshot\ndata: {self.json(self._latest)}\n\n"
        return self._rendered

    async def subscribe(self, keepalive: float = 15.0) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        if self._latest is not None:
            queue.put_nowait(self._message())
        self._subscribers.add(queue)
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), timeout=keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
        finally:
            self._subscribers.discard(queue)
