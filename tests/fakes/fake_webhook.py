"""A fake webhook receiver: the HTTP endpoint GPM posts its alerts to.

It stands for whatever a user points ``alerts.webhook_url`` at (a chat hook, ntfy, their own
service): a real HTTP server on a free loopback port, in a thread of its own, so sync tests and
async ones (the event loop goes on while it answers) use it alike::

    with webhook_receiver("/hook/secret-token") as hook:
        notifier = Notifier(AlertsConfig(webhook_url=hook.url), logger)
        ...
        wait_for(lambda: hook.bodies, what="an alert at the webhook")

It keeps every JSON body posted to ``path`` with its content type, in order, and counts every
attempt. ``fail_first`` answers the first attempts with ``fail_status`` instead (a receiver that
is down for a while, or one that refuses the request). Any other path answers 404.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class WebhookReceiver:
    url: str = ""
    fail_first: int = 0
    fail_status: int = 503
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    attempts: int = 0

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies received, oldest first."""
        return [body for _, body in self.requests]

    def answer(self, content_type: str, body: bytes) -> int:
        """The status for one attempt; a successful one is kept."""
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return self.fail_status
        self.requests.append((content_type, json.loads(body)))
        return 200


@contextmanager
def webhook_receiver(path: str = "/hook") -> Iterator[WebhookReceiver]:
    """A receiver taking POSTs on ``path``; stopped at exit."""
    receiver = WebhookReceiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != path:
                status = 404
            else:
                with lock:
                    status = receiver.answer(self.headers.get_content_type(), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
