"""Delivering alert transitions: always the log, optionally a webhook and desktop notifications.

``send`` is called from the event loop by the service right after ``AlertEngine.evaluate``; it
logs at once and only enqueues the rest, so a slow or dead receiver never holds up polling. Each
channel has its own queue and worker, keeping alerts in order per channel (a ``resolved`` never
overtakes its ``firing``) without a stuck webhook delaying the desktop.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gpm.model import Alert
from gpm.settings import AlertsConfig
from gpm.timefmt import to_rfc3339

if TYPE_CHECKING:
    import aiohttp

NOTIFICATIONS_BUS = "org.freedesktop.Notifications"
_PERMANENT_HTTP_ERRORS = range(400, 500)
_RETRYABLE_4XX = (408, 425, 429)


def alert_json(alert: Alert) -> dict[str, object]:
    """The alert as the HTTP API shows it (RFC3339 timestamp)."""
    data = asdict(alert)
    data["timestamp"] = to_rfc3339(alert.timestamp)
    return data


def webhook_payload(alert: Alert, host: str) -> dict[str, object]:
    """A body Slack-style receivers show as is (``text``) and ntfy can template (``title``)."""
    tag = "FIRING " + alert.severity if alert.state == "firing" else "RESOLVED"
    return {
        "text": f"[{tag}] {host}: {alert.message}",
        "title": f"GPM on {host}: {alert.rule} {alert.state}",
        "host": host,
        "alert": alert_json(alert),
    }


def _safe_url(url: str) -> str:
    """Scheme and host only: webhook paths and queries often carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def _gvariant_string(text: str) -> str:
    """Quote text as a GVariant string literal for ``gdbus call``."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def desktop_command(tool: str, alert: Alert) -> list[str]:
    """The argument list (never a shell line) that shows ``alert`` with ``tool``."""
    summary = f"GPU alert {alert.state}: {alert.rule}"
    critical = alert.state == "firing" and alert.severity == "critical"
    if tool.rsplit("/", 1)[-1] == "notify-send":
        urgency = "critical" if critical else "normal"
        return [tool, "--app-name=GPM", f"--urgency={urgency}", "--", summary, alert.message]
    return [
        tool,
        "call",
        "--session",
        "--dest",
        NOTIFICATIONS_BUS,
        "--object-path",
        "/org/freedesktop/Notifications",
        "--method",
        f"{NOTIFICATIONS_BUS}.Notify",
        "'GPM'",
        "0",
        "''",
        _gvariant_string(summary),
        _gvariant_string(alert.message),
        "[]",
        f"{{'urgency': <byte {2 if critical else 1}>}}",
        "10000",  # ms on screen; a negative value would read as an option
    ]


class _Channel:
    """One queue and one worker that hands each alert to ``deliver`` in order."""

    def __init__(
        self,
        name: str,
        deliver: Callable[[Alert], Awaitable[None]],
        size: int,
        logger: logging.Logger,
    ) -> None:
        self.name = name
        self._deliver = deliver
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=size)
        self._logger = logger
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"gpm-notify-{self.name}")

    def put(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self._logger.warning(
                "%s notifications are backed up; dropped: %s", self.name, alert.message
            )

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            except Exception:  # a delivery bug must not end the worker
                self._logger.exception("%s notification failed", self.name)
            finally:
                self._queue.task_done()

    async def stop(self, timeout: float) -> None:
        """Finish what is queued, up to ``timeout`` seconds, then cancel."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            left = self._queue.qsize()
            self._logger.warning("stopping with %d %s notification(s) undelivered", left, self.name)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None


class Notifier:
    """Logs every alert transition and forwards it to the configured receivers.

    ``retries`` and ``backoff_secs`` bound webhook redelivery (waits of backoff, 2x, 4x, ...);
    ``search_path`` is the PATH used to find ``notify-send``/``gdbus`` (None: the process PATH).
    """

    def __init__(
        self,
        cfg: AlertsConfig,
        logger: logging.Logger,
        *,
        retries: int = 4,
        backoff_secs: float = 2.0,
        timeout_secs: float = 10.0,
        search_path: str | None = None,
        queue_size: int = 256,
    ) -> None:
        self._cfg = cfg
        self._logger = logger
        self._retries = retries
        self._backoff = backoff_secs
        self._timeout = timeout_secs
        self._search_path = search_path
        self._queue_size = queue_size
        self._host = socket.gethostname()
        self._channels: list[_Channel] = []
        self._session: aiohttp.ClientSession | None = None
        self._desktop_tool: str | None = None
        self._desktop_failed = False

    async def start(self) -> None:
        if self._cfg.webhook_url:
            import aiohttp

            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
            self._channels.append(self._channel("webhook", self._post))
        if self._cfg.enable_desktop_notifications:
            self._desktop_tool = shutil.which(
                "notify-send", path=self._search_path
            ) or shutil.which("gdbus", path=self._search_path)
            if self._desktop_tool is None:
                self._logger.warning(
                    "desktop notifications are on but neither notify-send nor gdbus was found "
                    "(install libnotify-bin or libnotify, or set "
                    "alerts.enable_desktop_notifications = false); alerts go to the log only"
                )
            else:
                self._channels.append(self._channel("desktop", self._show))
        for channel in self._channels:
            channel.start()

    def _channel(self, name: str, deliver: Callable[[Alert], Awaitable[None]]) -> _Channel:
        return _Channel(name, deliver, self._queue_size, self._logger)

    async def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded by ``timeout`` per channel) and release resources."""
        for channel in self._channels:
            await channel.stop(timeout)
        self._channels = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def send(self, alert: Alert) -> None:
        """Log now; queue webhook/desktop delivery. Never blocks and never raises."""
        if alert.state == "firing":
            self._logger.warning("alert firing (%s): %s", alert.severity, alert.message)
        else:
            self._logger.info("alert resolved: %s", alert.message)
        for channel in self._channels:
            channel.put(alert)

    async def _post(self, alert: Alert) -> None:
        assert self._session is not None
        import aiohttp

        url, where = self._cfg.webhook_url, _safe_url(self._cfg.webhook_url)
        body = webhook_payload(alert, self._host)
        attempts = self._retries + 1
        for attempt in range(1, attempts + 1):
            try:
                async with self._session.post(url, json=body) as resp:
                    if resp.status < 300:
                        return
                    problem = f"HTTP {resp.status}"
                    permanent = (
                        resp.status in _PERMANENT_HTTP_ERRORS and resp.status not in _RETRYABLE_4XX
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem, permanent = f"{type(exc).__name__} {exc}".strip(), False
            if permanent or attempt == attempts:
                self._logger.error(
                    "webhook %s: gave up on %r after %d attempt(s): %s",
                    where,
                    alert.message,
                    attempt,
                    problem,
                )
                return
            delay = self._backoff * 2 ** (attempt - 1)
            self._logger.warning(
                "webhook %s: attempt %d/%d failed (%s); retrying in %.1f s",
                where,
                attempt,
                attempts,
                problem,
                delay,
            )
            await asyncio.sleep(delay)

    async def _show(self, alert: Alert) -> None:
        assert self._desktop_tool is not None
        argv = desktop_command(self._desktop_tool, alert)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                _, err = await asyncio.wait_for(proc.communicate(), self._timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise
            problem = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
            ok = proc.returncode == 0
        except (OSError, TimeoutError) as exc:
            problem, ok = str(exc) or type(exc).__name__, False
        if ok:
            return
        # One clear line for the first failure (usually: no session bus), then quiet.
        log = self._logger.debug if self._desktop_failed else self._logger.warning
        self._desktop_failed = True
        log(
            "desktop notification via %s failed: %s (is there a desktop session bus? "
            "further failures are logged at debug level)",
            self._desktop_tool,
            problem,
        )
