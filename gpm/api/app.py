"""The FastAPI app: thin routes over the live state and the storage queries.

Routes are plain ``def`` functions where they read SQLite, so FastAPI runs them in its thread
pool and the event loop never waits on the database.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpm import __version__
from gpm.api import schemas
from gpm.api.stream import Broadcaster
from gpm.config import Config
from gpm.model import Snapshot
from gpm.net import is_loopback
from gpm.state import LiveState
from gpm.storage.db import DatabaseError
from gpm.storage.pages import Cursor, CursorError
from gpm.storage.queries import Queries
from gpm.timefmt import parse_rfc3339, to_rfc3339
from gpm.views import (
    alert_view,
    model_event_view,
    model_view,
    process_event_view,
    process_view,
    session_view,
)

log = logging.getLogger("gpm.api")
STREAM_PATH = "/api/stream"

STATIC_DIR = Path(__file__).parent / "static"
MAX_RANGE_SECONDS = 366 * 86400.0
MAX_HOURS = 8784.0
DAY = 86400.0
PARQUET = "application/vnd.apache.parquet"
HISTORY_POINTS = 2000  # /api/historical's default budget, shared by the GPUs

MIN_HOURS = 0.001  # 3.6 s: a shorter range has no room for a single poll
Hours = Annotated[
    float,
    Query(
        ge=MIN_HOURS,
        le=MAX_HOURS,
        allow_inf_nan=False,
        description="hours back from now, 0.001 to 8784",
    ),
]
GpuId = Annotated[int, Query(ge=0, le=1023, description="GPU index")]
Date = Annotated[str | None, Query(description="RFC3339, e.g. 2026-11-27T10:00:00Z")]


@dataclass
class ApiContext:
    """What the routes read. ``state`` is None in ``gpm-server`` (it reads the database)."""

    config: Config
    queries: Queries
    hub: Broadcaster
    state: LiveState | None = None
    simulated: bool = False
    static_dir: Path = STATIC_DIR
    clock: Callable[[], float] = time.time


_ERROR_TEXT = {
    401: "missing or wrong bearer token (api.host is not loopback)",
    404: "no GPU with that gpu_id; `detail` says so",
    422: "a parameter is invalid; `detail` names it and says why",
    503: "the history database cannot be read right now",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route gives, all in the ``Error`` shape."""
    return {code: {"model": schemas.Error, "description": _ERROR_TEXT[code]} for code in codes}


BAD_PARAM = _errors(422)
BAD_PARAM_OR_GPU = _errors(404, 422)


def _unprocessable(param: str, problem: str) -> HTTPException:
    return HTTPException(status_code=422, detail=f"{param}: {problem}")


def describe_invalid(errors: Any) -> str:
    """FastAPI's validation errors as one ``param: problem`` line per parameter."""
    parts = []
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "path", "header")]
        got = repr(err.get("input"))
        got = got if len(got) <= 40 else got[:37] + "..."
        parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')} (got {got})")
    return "; ".join(parts)


def _time_range(
    start_date: str | None,
    end_date: str | None,
    now: float,
    default_seconds: float = DAY,
    *,
    wide: bool = False,
) -> tuple[float, float]:
    """Parse an optional RFC3339 range; defaults to the last day; 422 naming the parameter.

    A listing that pages (``wide``) takes any range; the others are held to 366 days."""
    try:
        end = parse_rfc3339(end_date) if end_date else now
    except ValueError as exc:
        raise _unprocessable("end_date", str(exc)) from None
    try:
        start = parse_rfc3339(start_date) if start_date else end - default_seconds
    except ValueError as exc:
        raise _unprocessable("start_date", str(exc)) from None
    if end <= start:
        raise _unprocessable("end_date", "must be after start_date")
    if not wide and end - start > MAX_RANGE_SECONDS:
        raise _unprocessable("start_date", "range longer than 366 days")
    return start, end


PageCursor = Annotated[
    str | None,
    Query(max_length=200, description="the `next` of the previous page: continue after it"),
]


def _cursor(text: str | None) -> Cursor | None:
    if text is None:
        return None
    try:
        return Cursor.decode(text)
    except CursorError as exc:
        raise _unprocessable("cursor", str(exc)) from None


def _rounded(metric: str, value: float | None) -> float | None:
    """Sensor precision, not float noise: bytes whole, the rest to 0.01 (the tail of a float is
    what gzip cannot compress: it halves a chart on the wire)."""
    if value is None:
        return None
    return round(value) if metric.endswith("_bytes") else round(value, 2)


def _series_json(series: dict[str, Any], points: Iterator[dict[str, Any]]) -> Response:
    """A chart or history answer, RFC3339 times, rounded values, serialized once.

    These answers hold thousands of numbers: pydantic's validate-and-dump pass would cost more
    than the query, so they skip it. Their shape is still published (``response_model``) and
    checked against the schema by the schemathesis run in the tests.
    """
    series["start"], series["end"] = to_rfc3339(series["start"]), to_rfc3339(series["end"])
    for p in points:
        for metric, value in p.items():
            if isinstance(value, dict):  # chart: min/avg/max
                p[metric] = {k: _rounded(metric, v) for k, v in value.items()}
            elif metric != "timestamp":
                p[metric] = _rounded(metric, value)
        p["timestamp"] = to_rfc3339(p["timestamp"])
    body = json.dumps(series, allow_nan=False, separators=(",", ":")).encode()
    return Response(body, media_type="application/json")


def create_app(ctx: ApiContext) -> FastAPI:
    cfg = ctx.config
    app = FastAPI(
        title="GPM",
        version=__version__,
        description="GPU and LLM monitor: live readings, history, LLM sessions and alerts.",
        responses=_errors(503) | ({} if is_loopback(cfg.api.host) else _errors(401)),
    )
    app.state.ctx = ctx
    _add_security(app, cfg)
    app.add_middleware(_HeadAsGet)  # outermost: a HEAD is a GET from here in
    # A 500-point chart is ~190 KB of JSON, ~31 KB gzipped; big bodies compress off the loop.
    app.add_middleware(
        GZipMiddleware,
        minimum_size=1024,
        compresslevel=1,  # 5x faster than 6 for a 500-point chart: 31 KB instead of 23 KB
        thread_minimum_size=32 * 1024,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, PARQUET),
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_invalid(exc.errors())}, status_code=422)

    @app.exception_handler(sqlite3.Error)
    @app.exception_handler(DatabaseError)
    async def _db_error(_: Request, exc: Exception) -> JSONResponse:
        """A locked, missing or not yet upgraded database is a passing state, not a bug: 503."""
        log.warning("database read failed: %s", exc)
        return JSONResponse({"detail": f"database unavailable: {exc}"}, status_code=503)

    def snapshot() -> Snapshot | None:
        if ctx.state is not None:
            return ctx.state.snapshot
        return ctx.queries.latest_snapshot()

    def known_gpu(gpu_id: int) -> None:
        snap = snapshot()
        ids = {g.gpu_id for g in snap.gpus} if snap else set()
        if gpu_id not in ids:
            ids |= {row[0] for row in ctx.queries.gpu_ids()}
        if gpu_id not in ids:
            raise HTTPException(status_code=404, detail=f"gpu_id: no GPU with id {gpu_id}")

    @app.get("/api/info", response_model=schemas.Info, tags=["gpus"])
    def info() -> dict[str, Any]:
        snap = snapshot()
        gpus = (
            [{"gpu_id": g.gpu_id, "uuid": g.uuid, "name": g.name} for g in snap.gpus]
            if snap
            else []
        )
        held = ctx.queries.data_range()
        return {
            "version": __version__,
            "hostname": socket.gethostname(),
            "simulated": ctx.simulated or bool(snap and any(g.simulated for g in snap.gpus)),
            "gpu_source": snap.source if snap else "none",
            "gpu_count": len(gpus),
            "gpus": gpus,
            "database_path": str(cfg.database_path),
            "data_range": {
                "oldest": to_rfc3339(held[0]) if held else None,
                "newest": to_rfc3339(held[1]) if held else None,
            },
            "parts": {
                "proxy": cfg.ollama.enabled and cfg.ollama.enable_proxy,
                "prometheus": cfg.telemetry.enable_prometheus,
                "opentelemetry": cfg.telemetry.enable_opentelemetry,
                "archival": cfg.storage.enable_parquet_archival,
                "alerts": True,
            },
            "poll_interval_secs": cfg.service.poll_interval_secs,
            "thresholds": {
                "temp_threshold_celsius": cfg.alerts.temp_threshold_celsius,
                "memory_threshold_percent": cfg.alerts.memory_threshold_percent,
            },
            "message": snap.message if snap else "no reading yet",
        }

    @app.get("/api/realtime", response_model=schemas.Realtime, tags=["gpus"])
    def realtime() -> Response:
        """Rendered once per poll, the same text the event stream sends: the dashboard and
        scripts ask far more often than GPM polls. Serialized without pydantic's pass like the
        charts (same published, tested schema)."""
        return Response(ctx.hub.json(snapshot()), media_type="application/json")

    @app.get(
        STREAM_PATH,
        tags=["gpus"],
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {}},
                "description": "one `snapshot` event per poll",
            }
        },
    )
    async def stream() -> StreamingResponse:
        return StreamingResponse(
            ctx.hub.subscribe(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/processes", response_model=schemas.ProcessesNow, tags=["gpus"])
    def processes() -> dict[str, Any]:
        snap = snapshot()
        items = []
        for g in snap.gpus if snap else ():
            for p in g.processes or ():
                items.append({"gpu_id": g.gpu_id, **process_view(p, snap.timestamp)})  # type: ignore[union-attr]
        return {"timestamp": to_rfc3339(snap.timestamp) if snap else None, "processes": items}

    @app.get(
        "/api/historical",
        response_model=schemas.Historical,
        tags=["history"],
        responses=BAD_PARAM_OR_GPU,
    )
    def historical(
        hours: Hours = 1.0,
        gpu_id: GpuId | None = None,
        points: Annotated[
            int | None,
            Query(ge=10, le=2000, description="per GPU; default 500, or 2000 shared when fewer"),
        ] = None,
    ) -> Any:
        if gpu_id is not None:
            known_gpu(gpu_id)
            gpus = 1
        else:
            snap = snapshot()
            gpus = len(snap.gpus) if snap and snap.gpus else len(ctx.queries.gpu_ids())
        if points is None:  # keeps 8 GPUs' day under 100 KB on the wire
            points = max(10, min(500, HISTORY_POINTS // max(gpus, 1)))
        now = ctx.clock()
        hist = ctx.queries.historical(now - hours * 3600, now, gpu_id=gpu_id, points=points)
        return _series_json(hist, (p for g in hist["gpus"] for p in g["points"]))

    @app.get(
        "/api/chart", response_model=schemas.Chart, tags=["history"], responses=BAD_PARAM_OR_GPU
    )
    def chart(
        gpu_id: GpuId,
        hours: Hours = 1.0,
        points: Annotated[int, Query(ge=10, le=2000)] = 500,
    ) -> Any:
        known_gpu(gpu_id)
        now = ctx.clock()
        series = ctx.queries.chart(gpu_id, now - hours * 3600, now, points=points)
        return _series_json(series, iter(series["points"]))

    @app.get(
        "/api/heatmap", response_model=schemas.Heatmap, tags=["history"], responses=BAD_PARAM_OR_GPU
    )
    def heatmap(gpu_id: GpuId, days: Annotated[int, Query(ge=1, le=366)] = 7) -> Any:
        known_gpu(gpu_id)
        now = ctx.clock()
        return ctx.queries.heatmap(gpu_id, now - days * DAY, now)

    @app.get(
        "/api/process-events",
        response_model=schemas.ProcessEvents,
        tags=["history"],
        responses=BAD_PARAM_OR_GPU,
    )
    def process_events(
        start_date: Date = None,
        end_date: Date = None,
        gpu_id: GpuId | None = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 500,
        cursor: PageCursor = None,
    ) -> dict[str, Any]:
        start, end = _time_range(start_date, end_date, ctx.clock(), wide=True)
        if gpu_id is not None:
            known_gpu(gpu_id)
        events, after = ctx.queries.process_events(
            start, end, gpu_id=gpu_id, limit=limit, cursor=_cursor(cursor)
        )
        return {
            "events": [process_event_view(e) for e in events],
            "next": None if after is None else after.encode(),
        }

    @app.get(
        "/api/llm-sessions", response_model=schemas.Sessions, tags=["llm"], responses=BAD_PARAM
    )
    def llm_sessions(
        start_date: Date = None,
        end_date: Date = None,
        model: Annotated[str | None, Query(max_length=256)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
        cursor: PageCursor = None,
    ) -> dict[str, Any]:
        start, end = _time_range(start_date, end_date, ctx.clock(), wide=True)
        total, sessions, after = ctx.queries.sessions(
            start, end, model=model, limit=limit, offset=offset, cursor=_cursor(cursor)
        )
        return {
            "total": total,
            "sessions": [session_view(s) for s in sessions],
            "next": None if after is None else after.encode(),
        }

    @app.get("/api/llm-stats", response_model=schemas.LlmStats, tags=["llm"], responses=BAD_PARAM)
    def llm_stats(hours: Hours = 24.0) -> dict[str, Any]:
        now = ctx.clock()
        return {"hours": hours, **ctx.queries.llm_stats(now - hours * 3600, now)}

    @app.get("/api/models", response_model=schemas.Models, tags=["llm"], responses=BAD_PARAM)
    def models(hours: Hours = 24.0) -> dict[str, Any]:
        st = ctx.state
        now = ctx.clock()
        events = ctx.queries.model_events(now - hours * 3600, now)
        return {
            "backend_up": st.backend_up if st else None,
            "backend_version": st.backend_version if st else None,
            "models": [model_view(m) for m in st.models] if st else [],
            "events": [model_event_view(e) for e in events],
        }

    @app.get("/api/alerts", response_model=schemas.Alerts, tags=["alerts"], responses=BAD_PARAM)
    def alerts(hours: Hours = 24.0) -> dict[str, Any]:
        now = ctx.clock()
        events = ctx.queries.alerts(now - hours * 3600, now)
        if ctx.state is not None:
            active = list(ctx.state.active_alerts)
        else:  # gpm-server: what fired and has not resolved since
            latest: dict[tuple[str, int | None], Any] = {}
            for a in reversed(events):
                latest[(a.rule, a.gpu_id)] = a
            active = [a for a in latest.values() if a.state == "firing"]
        return {
            "active": [alert_view(a) for a in active],
            "events": [alert_view(a) for a in events],
        }

    @app.get(
        "/api/weekly-summaries",
        response_model=schemas.WeeklySummaries,
        tags=["history"],
        responses=BAD_PARAM,
    )
    def weekly_summaries(weeks: Annotated[int, Query(ge=1, le=520)] = 4) -> dict[str, Any]:
        rows = ctx.queries.weekly_summaries(weeks, now=ctx.clock())
        gpus = [
            {k: getattr(r, k) for k in schemas.GpuWeek.model_fields}
            for r in rows
            if r.model is None
        ]
        models = [
            {k: getattr(r, k) for k in schemas.ModelWeek.model_fields}
            for r in rows
            if r.model is not None
        ]
        return {"gpus": gpus, "models": models}

    @app.get(
        "/api/export",
        tags=["history"],
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {
                    "text/csv": {},
                    "application/json": {},
                    PARQUET: {},
                }
            },
            **BAD_PARAM,
        },
    )
    def export(
        start_date: Date = None,
        end_date: Date = None,
        format: Literal["csv", "json", "parquet"] = "csv",
        table: Literal["gpu_metrics", "llm_sessions", "process_events", "alerts"] = "gpu_metrics",
    ) -> StreamingResponse:
        start, end = _time_range(start_date, end_date, ctx.clock())
        return StreamingResponse(
            _export_chunks(ctx.queries, table, start, end, format),
            media_type={
                "csv": "text/csv",
                "json": "application/json",
                "parquet": PARQUET,
            }[format],
            headers={"Content-Disposition": f'attachment; filename="gpm-{table}.{format}"'},
        )

    _mount_dashboard(app, ctx.static_dir)
    return app


def _export_chunks(
    queries: Queries, table: str, start: float, end: float, fmt: str
) -> Iterator[bytes]:
    """Run the export into a spooled buffer and stream it out in pieces."""
    import tempfile

    from gpm.storage.export import export

    with tempfile.SpooledTemporaryFile(max_size=8 * 2**20) as buf:
        export(queries, table=table, start=start, end=end, fmt=fmt, out=buf)  # type: ignore[arg-type]
        buf.seek(0)
        while chunk := buf.read(256 * 1024):
            yield chunk


class _HeadAsGet:
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


def _add_security(app: FastAPI, cfg: Config) -> None:
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


def _mount_dashboard(app: FastAPI, static_dir: Path) -> None:
    if (static_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static_dir, html=True), name="dashboard")
        return

    @app.get("/", include_in_schema=False)
    def not_built() -> HTMLResponse:
        return HTMLResponse(_NOT_BUILT)
