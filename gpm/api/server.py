"""The API's HTTP server: uvicorn on sockets bound beforehand, its signal handling left to the
process that runs it (``gpm run`` and ``gpm-server`` own SIGTERM/SIGINT)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_api(app: Any) -> ApiServer:
    """A server for ``app``; ``serve(sockets=...)`` runs it on the caller's event loop, on
    sockets bound beforehand (so a port in use is reported before anything starts)."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=2,
        proxy_headers=False,
    )
    return ApiServer(config)
