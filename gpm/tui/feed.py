"""Where ``gpm top`` gets its data: a running GPM (its event stream and API), or the GPUs read
directly when no service answers.

Both feeds publish a :class:`Frame`, plain data in the JSON shapes of docs/api.md that the
widgets only render: the feeds are tested without a terminal, and the screen never reads a
socket or a GPU itself. Nothing here imports Textual.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from gpm.timefmt import parse_rfc3339

if TYPE_CHECKING:
    import aiohttp

    from gpm.gpu.base import GpuSource
    from gpm.settings import ApiConfig, Config

Json = dict[str, Any]
Publish = Callable[["Frame"], None]
Points = tuple[tuple[float, float | None], ...]

SPARK_SECONDS = 180.0  # what a GPU's sparkline covers
SPARK_POINTS = 90  # what a reconnect asks /api/historical for, to start the sparkline
LLM_WINDOW_HOURS = 0.25  # per-model figures over the last 15 minutes
SESSIONS_SHOWN = 30
# The stream sends a keepalive every 15 s: this long without a byte is a dead connection.
STREAM_SILENCE_SECS = 45.0
NO_SERVICE_LLM = "no GPM service: LLM traffic is recorded by `gpm run`"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The alert thresholds that colour temperature and memory (``/api/info`` in attached mode,
    the config in standalone mode)."""

    temp_celsius: float | None = None
    memory_percent: float | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Thresholds:
        t = info.get("thresholds") or {}
        return cls(t.get("temp_threshold_celsius"), t.get("memory_threshold_percent"))


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything one screen shows, as the feed last knew it.

    ``snapshot`` is the ``/api/realtime`` object; ``sessions``, ``model_stats``, ``models`` and
    ``alerts`` are the lists of ``/api/llm-sessions``, ``/api/llm-stats``, ``/api/models`` and
    ``/api/alerts`` (``active``). ``problem`` says why the values are not live (the banner);
    ``history`` holds each GPU's utilization over the last ``SPARK_SECONDS``.
    """

    mode: Literal["attached", "standalone"]
    where: str  # the service's URL, or the GPU source's name in standalone mode
    snapshot: Json | None = None
    thresholds: Thresholds = Thresholds()
    history: Mapping[int, Points] = field(default_factory=dict)
    sessions: tuple[Json, ...] = ()
    model_stats: tuple[Json, ...] = ()
    models: tuple[Json, ...] = ()
    alerts: tuple[Json, ...] = ()
    info: Json = field(default_factory=dict)
    problem: str | None = None
    note: str | None = None  # standalone: what the LLM pane says instead of its data
    reason: str = ""  # standalone: why GPM top reads the GPUs itself
    received_at: float | None = None  # when the newest snapshot arrived (epoch seconds)

    @property
    def stale(self) -> bool:
        """Values are on screen but no longer live."""
        return self.problem is not None and self.snapshot is not None


class Feed(Protocol):
    """A data source for the screen: ``run`` publishes frames until cancelled."""

    mode: Literal["attached", "standalone"]

    async def run(self, publish: Publish) -> None: ...


class UtilHistory:
    """Each GPU's utilization over the last ``seconds``, for the sparklines."""

    def __init__(self, seconds: float = SPARK_SECONDS) -> None:
        self.seconds = seconds
        self._points: dict[int, deque[tuple[float, float | None]]] = {}

    def seed(self, history: Mapping[str, Any]) -> dict[int, Points]:
        """Start from an ``/api/historical`` answer, so a sparkline has its past at once."""
        for g in history.get("gpus") or ():
            points = self._points.setdefault(g["gpu_id"], deque())
            if not points:
                points.extend(
                    (parse_rfc3339(p["timestamp"]), p.get("utilization_percent"))
                    for p in g.get("points") or ()
                )
        return self.view()

    def view(self) -> dict[int, Points]:
        return {gpu: tuple(points) for gpu, points in self._points.items()}

    def add(self, snapshot: Mapping[str, Any]) -> dict[int, Points]:
        """Record a snapshot; returns the history as the frame holds it."""
        stamp = snapshot.get("timestamp")
        if stamp:
            ts = parse_rfc3339(stamp)
            seen = set()
            for g in snapshot.get("gpus") or ():
                seen.add(g["gpu_id"])
                points = self._points.setdefault(g["gpu_id"], deque())
                if points and points[-1][0] >= ts:
                    continue  # the same poll again (a reconnect sends the latest one first)
                points.append((ts, g.get("utilization_percent")))
                while points and points[0][0] < ts - self.seconds:
                    points.popleft()
            for gone in set(self._points) - seen:
                del self._points[gone]
        return self.view()


class SseParser:
    """Splits a Server-Sent Events byte stream into ``(event, data)`` pairs: the parts of the
    format GPM's stream uses (event and data fields, comments, LF or CRLF line ends)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        self._buf.extend(chunk)
        out: list[tuple[str, str]] = []
        while (end := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:end]).rstrip(b"\r").decode("utf-8", "replace")
            del self._buf[: end + 1]
            if not line:
                if self._data:
                    out.append((self._event or "message", "\n".join(self._data)))
                self._event, self._data = "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)
        return out


class ServiceError(Exception):
    """The service answered, but not with what the view needs; the message says why."""


class AttachedFeed:
    """Follows a running GPM: snapshots from ``/api/stream``, and every ``interval`` the LLM
    sessions, per-model figures, resident models and active alerts.

    When the service goes away the last frame stays, with ``problem`` set, and the feed
    reconnects with a backoff from ``retry[0]`` doubling to ``retry[1]`` seconds.
    """

    mode: Literal["attached", "standalone"] = "attached"

    def __init__(
        self,
        url: str,
        token: str = "",
        interval: float = 1.0,
        *,
        retry: tuple[float, float] = (0.5, 5.0),
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.interval = interval
        self.retry = retry
        self.frame = Frame(mode="attached", where=self.url, problem=f"connecting to {self.url}")
        self._history = UtilHistory()
        self._live = False

    def _update(self, publish: Publish, **changes: Any) -> None:
        self.frame = replace(self.frame, **changes)
        publish(self.frame)

    async def run(self, publish: Publish) -> None:
        import aiohttp

        publish(self.frame)
        headers = {"Accept-Encoding": "identity"}  # small answers: gzip would only cost CPU
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=STREAM_SILENCE_SECS)
        delay = self.retry[0]
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            while True:
                self._live = False
                try:
                    await self._follow(http, publish)
                    reason = "the event stream ended"
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    reason = _describe(exc)
                except ServiceError as exc:
                    reason = str(exc)
                if self._live:
                    delay = self.retry[0]
                self._update(publish, problem=f"{self.url}: {reason}; retrying in {delay:g} s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry[1])

    async def _follow(self, http: aiohttp.ClientSession, publish: Publish) -> None:
        """One connection: returns or raises when it is lost."""
        info = await self._get(http, "/api/info")
        past = await self._get_optional(
            http, f"/api/historical?hours={SPARK_SECONDS / 3600:.4f}&points={SPARK_POINTS}"
        )
        history = self._history.seed(past) if past else self._history.view()
        self._update(publish, info=info, thresholds=Thresholds.from_info(info), history=history)
        tasks = {
            asyncio.create_task(self._stream(http, publish)),
            asyncio.create_task(self._extras(http, publish)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _stream(self, http: aiohttp.ClientSession, publish: Publish) -> None:
        async with http.get(self.url + "/api/stream") as resp:
            await _check(resp)
            parser = SseParser()
            async for chunk in resp.content.iter_any():
                for event, data in parser.feed(chunk):
                    if event != "snapshot":
                        continue
                    snapshot = json.loads(data)
                    self._live = True
                    self._update(
                        publish,
                        snapshot=snapshot,
                        history=self._history.add(snapshot),
                        problem=None,
                        received_at=time.time(),
                    )

    async def _extras(self, http: aiohttp.ClientSession, publish: Publish) -> None:
        """The slower-moving parts, at ``interval``; a route that errors keeps its last value."""
        hours = LLM_WINDOW_HOURS
        while True:
            sessions, stats, models, alerts = await asyncio.gather(
                self._get_optional(http, f"/api/llm-sessions?limit={SESSIONS_SHOWN}"),
                self._get_optional(http, f"/api/llm-stats?hours={hours}"),
                self._get_optional(http, f"/api/models?hours={hours}"),
                self._get_optional(http, f"/api/alerts?hours={hours}"),
            )
            changes: dict[str, tuple[Json, ...]] = {}
            for name, answer, key in (
                ("sessions", sessions, "sessions"),
                ("model_stats", stats, "models"),
                ("models", models, "models"),
                ("alerts", alerts, "active"),
            ):
                if answer is not None:
                    value = tuple(answer.get(key) or ())
                    if value != getattr(self.frame, name):
                        changes[name] = value
            if changes:
                self._update(publish, **changes)
            await asyncio.sleep(self.interval)

    async def _get(self, http: aiohttp.ClientSession, path: str) -> Json:
        async with http.get(self.url + path) as resp:
            await _check(resp)
            answer: Json = await resp.json()
            return answer

    async def _get_optional(self, http: aiohttp.ClientSession, path: str) -> Json | None:
        try:
            return await self._get(http, path)
        except ServiceError as exc:
            log.debug("%s: %s", path, exc)
            return None


async def _check(resp: aiohttp.ClientResponse) -> None:
    if resp.status == 401:
        raise ServiceError("the service wants a token: pass --token, or set GPM_API_TOKEN")
    if resp.status >= 400:
        detail = (await resp.text())[:200]
        raise ServiceError(f"HTTP {resp.status} from {resp.url.path}: {detail}")


def _describe(exc: BaseException) -> str:
    """A short reason for a lost connection."""
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    cause = exc.__cause__ or exc
    text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return f"not answering ({text})"


class StandaloneFeed:
    """Reads the GPUs itself every ``interval`` (in a worker thread, like nvitop does): the
    source the config asks for, simulated GPUs with ``demo``, or the ``source`` given.

    There is no LLM data without the service: the frame's ``note`` says so, and ``reason`` (if
    given) why there is no service.
    """

    mode: Literal["attached", "standalone"] = "standalone"

    def __init__(
        self,
        config: Config,
        *,
        interval: float = 1.0,
        demo: bool = False,
        source: GpuSource | None = None,
        reason: str = "",
    ) -> None:
        self.config = config
        self.interval = interval
        self.demo = demo
        self.source = source
        self.reason = reason

    async def run(self, publish: Publish) -> None:
        from gpm.classify import read_and_classify
        from gpm.classify.tracker import ProcessTracker
        from gpm.gpu import open_gpu_source
        from gpm.health import HealthWatch
        from gpm.views import snapshot_view

        cfg = self.config
        source = self.source
        if source is None:
            source = await asyncio.to_thread(
                open_gpu_source, cfg.gpu, self.demo, logging.getLogger("gpm.gpu")
            )
        tracker = ProcessTracker(rules=cfg.classifier.rules)
        health, history = HealthWatch(), UtilHistory()
        frame = Frame(
            mode="standalone",
            where=source.name,
            thresholds=Thresholds(
                cfg.alerts.temp_threshold_celsius, cfg.alerts.memory_threshold_percent
            ),
            note=NO_SERVICE_LLM,
            reason=self.reason,
        )
        try:
            while True:
                started = time.monotonic()
                snap, _ = await asyncio.to_thread(
                    read_and_classify, source, tracker, health, time.time()
                )
                view = snapshot_view(snap)
                frame = replace(
                    frame, snapshot=view, history=history.add(view), received_at=time.time()
                )
                publish(frame)
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            if self.source is None:
                source.close()


def service_url(api: ApiConfig) -> str:
    """Where the config's GPM serves its API, as a client on this machine reaches it."""
    host = api.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{api.port}"


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether something listens at ``url``'s host and port (the feed then checks it is GPM)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False
