"""HTTP done fully around the routes: HEAD for every GET, the bearer token off loopback, CORS
for GPM's own dashboard, and the dashboard's static files."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpm.api.routers.gpus import STREAM_PATH
from gpm.net import is_loopback
from gpm.settings import Config


class HeadAsGet:
    """Every GET route under /api/ answers HEAD: the route runs as a GET and the server sends
    its status and headers only (uvicorn knows the request was a HEAD). A streaming answer is
    ended after its headers instead of being followed forever."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                raise _HeadDone
            await send(message)

        with contextlib.suppress(_HeadDone):
            await self.app({**scope, "method": "GET"}, receive, headers_only)


class _HeadDone(Exception):
    """The HEAD answer is complete: stop the GET behind it."""


def add_security(app: FastAPI, cfg: Config) -> None:
    """Bearer token when bound off loopback; CORS only for GPM's own dashboard origins."""
    origins = [
        f"http://{h}:{p}"
        for h in {cfg.api.host, "127.0.0.1", "localhost"}
        for p in (cfg.api.port, cfg.api.dashboard_port)
    ]
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET"],
        allow_headers=["Authorization"],
    )
    if is_loopback(cfg.api.host):
        return
    expected = cfg.api.token.encode()

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:]
        elif request.url.path == STREAM_PATH:
            # A browser's EventSource cannot send a header: the stream alone takes ?token=.
            given = request.query_params.get("token", "")
        else:
            given = ""
        if not hmac.compare_digest(given.encode(), expected):
            return JSONResponse(
                {"detail": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)


_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>GPM</title>
<h1>GPM</h1><p>The dashboard is not built in this checkout. Run
<code>cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build</code>, or use the API:
<a href="/api/realtime">/api/realtime</a>, <a href="/docs">/docs</a>.</p>"""


def mount_dashboard(app: FastAPI, static_dir: Path) -> None:
    if (static_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static_dir, html=True), name="dashboard")
        return

    @app.get("/", include_in_schema=False)
    def not_built() -> HTMLResponse:
        return HTMLResponse(_NOT_BUILT)
