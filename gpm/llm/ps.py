"""Which models Ollama holds in memory (``/api/ps``), and when they come and go.

Polled straight from the backend (not through the proxy, so polls are not sessions). An
unreachable backend is reported as down, logged once, and retried every interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from gpm.llm.wire import count
from gpm.model import LoadedModel, ModelEvent

OnUpdate = Callable[[tuple[LoadedModel, ...], list[ModelEvent], bool, str | None], None]


def parse_ps(body: object) -> tuple[LoadedModel, ...]:
    """``/api/ps`` JSON -> LoadedModel per item; items without a name are skipped."""
    items = body.get("models") if isinstance(body, dict) else None
    models = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        expires = item.get("expires_at")
        models.append(
            LoadedModel(
                name=item["name"],
                size_bytes=count(item, "size"),
                vram_bytes=count(item, "size_vram"),
                context_length=count(item, "context_length"),
                expires_at=expires if isinstance(expires, str) else None,
            )
        )
    return tuple(models)


def diff_models(
    before: dict[str, LoadedModel], now: tuple[LoadedModel, ...], timestamp: float
) -> list[ModelEvent]:
    """Load events for models that appeared, unload events for those that left."""
    current = {m.name: m for m in now}
    events = [
        ModelEvent(timestamp, "load", m.name, m.size_bytes, m.vram_bytes)
        for name, m in current.items()
        if name not in before
    ]
    events += [
        ModelEvent(timestamp, "unload", m.name, m.size_bytes, m.vram_bytes)
        for name, m in before.items()
        if name not in current
    ]
    return events


class ModelPoller:
    """Polls ``{api_url}/api/ps`` and ``/api/version`` every ``interval`` seconds.

    ``on_update(models, events, backend_up, backend_version)`` runs after every poll. The first
    successful poll sets the baseline: models already resident then produce no load events.
    """

    def __init__(
        self,
        api_url: str,
        interval: float,
        on_update: OnUpdate,
        *,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.api_url = api_url.rstrip("/")
        self.interval = interval
        self._on_update = on_update
        self._clock = clock
        self._log = logger or logging.getLogger(__name__)
        self._known: dict[str, LoadedModel] | None = None
        self._up: bool | None = None
        self._version: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=max(2.0, min(self.interval, 10.0)))
        self._client = aiohttp.ClientSession(timeout=timeout)
        self._task = asyncio.create_task(self._run(), name="gpm-model-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await self.poll_once()
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - began)))

    async def poll_once(self) -> None:
        """One poll and one ``on_update`` call; never raises for backend trouble."""
        try:
            models = parse_ps(await self._get("/api/ps"))
            if self._up is not True:
                version = await self._get("/api/version")
                raw = version.get("version") if isinstance(version, dict) else None
                self._version = raw if isinstance(raw, str) else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if self._up is not False:
                self._log.warning(
                    "LLM backend at %s is unreachable (%s); retrying every %gs",
                    self.api_url, exc or type(exc).__name__, self.interval,
                )  # fmt: skip
            self._up = False
            self._notify((), [], False, None)
            return
        if self._up is False:
            self._log.info("LLM backend at %s is reachable again", self.api_url)
        self._up = True
        events = [] if self._known is None else diff_models(self._known, models, self._clock())
        self._known = {m.name: m for m in models}
        self._notify(models, events, True, self._version)

    async def _get(self, path: str) -> Any:
        assert self._client is not None
        async with self._client.get(self.api_url + path) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    def _notify(
        self, models: tuple[LoadedModel, ...], events: list[ModelEvent], up: bool, ver: str | None
    ) -> None:
        try:
            self._on_update(models, events, up, ver)
        except Exception:
            self._log.exception("model update handler failed")
