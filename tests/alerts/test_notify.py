"""Alert delivery to a fake webhook receiver and fake desktop tools on a test PATH."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpm.alerts.notify import Notifier
from gpm.model import Alert
from gpm.settings import AlertsConfig
from tests.conftest import free_port, wait_for_async
from tests.fakes.fake_command import calls_of
from tests.fakes.fake_desktop_notify import fake_desktop_tool
from tests.fakes.fake_webhook import WebhookReceiver, webhook_receiver

FIRING = Alert(
    timestamp=1_795_000_000.0,
    rule="temperature",
    state="firing",
    severity="critical",
    message="GPU 0 (RTX 4090) at 88 °C, above 85 °C",
    gpu_id=0,
    value=88.0,
    threshold=85.0,
)
RESOLVED = Alert(
    timestamp=1_795_000_060.0,
    rule="temperature",
    state="resolved",
    severity="critical",
    message="GPU 0 (RTX 4090) back to 80 °C, below 82 °C",
    gpu_id=0,
    value=80.0,
    threshold=85.0,
)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, level: int | None = None) -> list[str]:
        return [r.getMessage() for r in self.records if level is None or r.levelno == level]


@pytest.fixture
def log(request: pytest.FixtureRequest) -> tuple[logging.Logger, Records]:
    logger = logging.getLogger(f"gpm.test.{request.node.name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = Records()
    logger.addHandler(handler)
    return logger, handler


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver("/hook/secret-token") as rec:
        yield rec


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/hook"  # closed again: nothing listens there


async def test_webhook_receives_json(
    receiver: WebhookReceiver, log: tuple[logging.Logger, Records]
) -> None:
    logger, records = log
    notifier = Notifier(AlertsConfig(webhook_url=receiver.url), logger)
    await notifier.start()
    notifier.send(FIRING)
    notifier.send(RESOLVED)
    await wait_for_async(
        lambda: len(receiver.requests) == 2, timeout=5, what="both alerts at the receiver"
    )
    await notifier.stop()
    (ctype, body), (_, second) = receiver.requests
    assert ctype == "application/json"
    host = socket.gethostname()
    assert body["text"] == f"[FIRING critical] {host}: GPU 0 (RTX 4090) at 88 °C, above 85 °C"
    assert body["title"] == f"GPM on {host}: temperature firing"
    assert body["alert"] == {
        "timestamp": "2026-11-18T11:06:40.000Z",
        "rule": "temperature",
        "state": "firing",
        "severity": "critical",
        "message": "GPU 0 (RTX 4090) at 88 °C, above 85 °C",
        "gpu_id": 0,
        "value": 88.0,
        "threshold": 85.0,
    }
    assert str(second["text"]).startswith("[RESOLVED]")  # in order
    assert records.lines(logging.WARNING) == [
        "alert firing (critical): GPU 0 (RTX 4090) at 88 °C, above 85 °C"
    ]
    assert records.lines(logging.INFO) == [
        "alert resolved: GPU 0 (RTX 4090) back to 80 °C, below 82 °C"
    ]


async def test_webhook_retries_with_backoff_until_it_succeeds(
    receiver: WebhookReceiver, log: tuple[logging.Logger, Records]
) -> None:
    logger, records = log
    receiver.fail_first = 2
    notifier = Notifier(AlertsConfig(webhook_url=receiver.url), logger, backoff_secs=0.01)
    await notifier.start()
    notifier.send(FIRING)
    await wait_for_async(lambda: len(receiver.requests) == 1, timeout=5, what="the alert delivered")
    await notifier.stop()
    assert receiver.attempts == 3
    retries = [line for line in records.lines() if "retrying" in line]
    assert len(retries) == 2
    assert "attempt 1/5 failed (HTTP 503); retrying in 0.0 s" in retries[0]
    assert all("secret-token" not in line for line in records.lines())  # URL path not logged


async def test_client_error_is_not_retried(
    receiver: WebhookReceiver, log: tuple[logging.Logger, Records]
) -> None:
    logger, records = log
    receiver.fail_first, receiver.fail_status = 10, 404
    notifier = Notifier(AlertsConfig(webhook_url=receiver.url), logger, backoff_secs=0.01)
    await notifier.start()
    notifier.send(FIRING)
    await wait_for_async(
        lambda: any("gave up" in line for line in records.lines()), timeout=5, what="giving up"
    )
    await notifier.stop()
    assert receiver.attempts == 1
    assert "after 1 attempt(s): HTTP 404" in records.lines(logging.ERROR)[0]


async def test_dead_receiver_never_blocks_and_gives_up(
    log: tuple[logging.Logger, Records],
) -> None:
    logger, records = log
    notifier = Notifier(AlertsConfig(webhook_url=dead_url()), logger, retries=2, backoff_secs=0.01)
    await notifier.start()
    started = time.perf_counter()
    for _ in range(3):
        notifier.send(FIRING)
    assert time.perf_counter() - started < 0.05  # enqueued, not delivered inline
    await wait_for_async(
        lambda: len(records.lines(logging.ERROR)) == 3, timeout=5, what="three errors"
    )
    await notifier.stop()
    assert all("after 3 attempt(s): ClientConnectorError" in e for e in records.lines(40))
    assert len([line for line in records.lines() if "retrying" in line]) == 6


async def test_stop_is_bounded_with_deliveries_pending(
    log: tuple[logging.Logger, Records],
) -> None:
    logger, records = log
    notifier = Notifier(AlertsConfig(webhook_url=dead_url()), logger, backoff_secs=60.0)
    await notifier.start()
    notifier.send(FIRING)
    notifier.send(RESOLVED)
    started = time.monotonic()
    await notifier.stop(timeout=0.2)
    assert time.monotonic() - started < 2.0
    assert "stopping with 1 webhook notification(s) undelivered" in records.lines()


async def test_desktop_notification_with_notify_send(
    tmp_path: Path, log: tuple[logging.Logger, Records]
) -> None:
    logger, _ = log
    calls = fake_desktop_tool(tmp_path, "notify-send")
    fake_desktop_tool(tmp_path, "gdbus")  # notify-send wins when both exist
    cfg = AlertsConfig(enable_desktop_notifications=True)
    notifier = Notifier(cfg, logger, search_path=str(tmp_path))
    await notifier.start()
    notifier.send(FIRING)
    notifier.send(RESOLVED)
    await wait_for_async(lambda: len(calls_of(calls)) == 2, timeout=5, what="two notifications")
    await notifier.stop()
    assert calls_of(calls) == [
        ["--app-name=GPM", "--urgency=critical", "--", "GPU alert firing: temperature",
         FIRING.message],
        ["--app-name=GPM", "--urgency=normal", "--", "GPU alert resolved: temperature",
         RESOLVED.message],
    ]  # fmt: skip
    assert not (tmp_path / "gdbus.calls").exists()


async def test_desktop_falls_back_to_gdbus(
    tmp_path: Path, log: tuple[logging.Logger, Records]
) -> None:
    logger, _ = log
    calls = fake_desktop_tool(tmp_path, "gdbus")
    alert = Alert(0.0, "memory", "firing", "warning", "it's 95% \\ full", gpu_id=0)
    notifier = Notifier(
        AlertsConfig(enable_desktop_notifications=True), logger, search_path=str(tmp_path)
    )
    await notifier.start()
    notifier.send(alert)
    await wait_for_async(lambda: len(calls_of(calls)) == 1, timeout=5, what="one notification")
    await notifier.stop()
    argv = calls_of(calls)[0]
    assert argv[:8] == [
        "call", "--session", "--dest", "org.freedesktop.Notifications",
        "--object-path", "/org/freedesktop/Notifications",
        "--method", "org.freedesktop.Notifications.Notify",
    ]  # fmt: skip
    assert argv[8:] == [
        "'GPM'", "0", "''", "'GPU alert firing: memory'", "'it\\'s 95% \\\\ full'",
        "[]", "{'urgency': <byte 1>}", "10000",
    ]  # fmt: skip


async def test_no_desktop_tool_logs_once(
    tmp_path: Path, log: tuple[logging.Logger, Records]
) -> None:
    logger, records = log
    notifier = Notifier(
        AlertsConfig(enable_desktop_notifications=True), logger, search_path=str(tmp_path)
    )
    await notifier.start()
    for _ in range(3):
        notifier.send(FIRING)
    await notifier.stop()
    missing = [line for line in records.lines() if "neither notify-send nor gdbus" in line]
    assert len(missing) == 1
    assert len(records.lines(logging.WARNING)) == 4  # that line and the three alerts


async def test_failing_desktop_tool_warns_once(
    tmp_path: Path, log: tuple[logging.Logger, Records]
) -> None:
    logger, records = log
    calls = fake_desktop_tool(tmp_path, "notify-send", status=1, stderr="Cannot autolaunch D-Bus")
    notifier = Notifier(
        AlertsConfig(enable_desktop_notifications=True), logger, search_path=str(tmp_path)
    )
    await notifier.start()
    for _ in range(3):
        notifier.send(RESOLVED)
    await wait_for_async(lambda: len(calls_of(calls)) == 3, timeout=5, what="three notifications")
    await notifier.stop()
    failures = [r for r in records.records if "desktop notification via" in r.getMessage()]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "Cannot autolaunch D-Bus" in failures[0].getMessage()
