"""The FastAPI app: the routers (``gpm/api/routers/``) and what wraps them, assembled.

Routes are plain ``def`` functions where they read SQLite, so FastAPI runs them in its thread
pool and the event loop never waits on the database.
"""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES

from gpm import __version__
from gpm.api.deps import ApiContext, describe_invalid, errors
from gpm.api.http import HeadAsGet, add_security, mount_dashboard
from gpm.api.routers import alerts, energy, export, fleet, gpus, history, llm
from gpm.net import is_loopback
from gpm.storage.db import DatabaseError

__all__ = ["ApiContext", "create_app"]

log = logging.getLogger("gpm.api")


def create_app(ctx: ApiContext) -> FastAPI:
    cfg = ctx.config
    app = FastAPI(
        title="GPM",
        version=__version__,
        description="GPU and LLM monitor: live readings, history, LLM sessions and alerts.",
        responses=errors(503) | ({} if is_loopback(cfg.api.host) else errors(401)),
    )
    app.state.ctx = ctx
    add_security(app, cfg)
    app.add_middleware(HeadAsGet)  # a HEAD is a GET from here in
    # A 500-point chart is ~190 KB of JSON, ~31 KB gzipped; big bodies compress off the loop.
    app.add_middleware(
        GZipMiddleware,
        minimum_size=1024,
        compresslevel=1,  # 5x faster than 6 for a 500-point chart: 31 KB instead of 23 KB
        thread_minimum_size=32 * 1024,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, export.PARQUET),
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

    routers = (gpus, history, llm, energy, fleet, alerts, export)
    for router in (r.router for r in routers):
        app.include_router(router)
    mount_dashboard(app, ctx.static_dir)
    return app
