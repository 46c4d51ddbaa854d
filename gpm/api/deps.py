"""What every route shares: the context it reads, its parameter types, the error answers.

Routes take the context as a FastAPI dependency (``ctx: Ctx``), so a router module is a set of
thin functions with no app of its own; ``create_app`` puts the context on the app.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Query, Request

from gpm.api import schemas
from gpm.api.stream import Broadcaster
from gpm.settings import Config

if TYPE_CHECKING:
    from gpm.fleet.view import FleetCache
from gpm.model import Snapshot
from gpm.state import LiveState
from gpm.storage.pages import Cursor, CursorError
from gpm.storage.queries import Queries
from gpm.timefmt import parse_rfc3339

STATIC_DIR = Path(__file__).parent / "static"
DAY = 86400.0
MAX_RANGE_SECONDS = 366 * DAY
MAX_HOURS = 8784.0
MIN_HOURS = 0.001  # 3.6 s: a shorter range has no room for a single poll


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
    fleet: FleetCache | None = None  # with fleet.prometheus_url set


def _context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(_context)]

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
PageCursor = Annotated[
    str | None,
    Query(max_length=200, description="the `next` of the previous page: continue after it"),
]

_ERROR_TEXT = {
    401: "missing or wrong bearer token (api.host is not loopback)",
    404: "no GPU with that gpu_id; `detail` says so",
    422: "a parameter is invalid; `detail` names it and says why",
    503: "the history database cannot be read right now",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route gives, all in the ``Error`` shape."""
    return {code: {"model": schemas.Error, "description": _ERROR_TEXT[code]} for code in codes}


BAD_PARAM = errors(422)
BAD_PARAM_OR_GPU = errors(404, 422)


def unprocessable(param: str, problem: str) -> HTTPException:
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


def time_range(
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
        raise unprocessable("end_date", str(exc)) from None
    try:
        start = parse_rfc3339(start_date) if start_date else end - default_seconds
    except ValueError as exc:
        raise unprocessable("start_date", str(exc)) from None
    if end <= start:
        raise unprocessable("end_date", "must be after start_date")
    if not wide and end - start > MAX_RANGE_SECONDS:
        raise unprocessable("start_date", "range longer than 366 days")
    return start, end


def page_cursor(text: str | None) -> Cursor | None:
    if text is None:
        return None
    try:
        return Cursor.decode(text)
    except CursorError as exc:
        raise unprocessable("cursor", str(exc)) from None


def next_cursor(cursor: Cursor | None) -> str | None:
    return None if cursor is None else cursor.encode()


def current_snapshot(ctx: ApiContext) -> Snapshot | None:
    """The live snapshot, or in ``gpm-server`` the newest one stored."""
    if ctx.state is not None:
        return ctx.state.snapshot
    return ctx.queries.latest_snapshot()


def known_gpu(ctx: ApiContext, gpu_id: int) -> None:
    """404 naming ``gpu_id`` unless a GPU with that id is live or in the history."""
    snap = current_snapshot(ctx)
    ids = {g.gpu_id for g in snap.gpus} if snap else set()
    if gpu_id not in ids:
        ids |= {row[0] for row in ctx.queries.gpu_ids()}
    if gpu_id not in ids:
        raise HTTPException(status_code=404, detail=f"gpu_id: no GPU with id {gpu_id}")


@dataclass(frozen=True, slots=True)
class GpuListing:
    """The parameters of a listing of GPU events: a range, maybe one GPU, a page."""

    start: float
    end: float
    gpu_id: int | None
    limit: int
    cursor: Cursor | None


def _gpu_listing(
    ctx: Ctx,
    start_date: Date = None,
    end_date: Date = None,
    gpu_id: GpuId | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 500,
    cursor: PageCursor = None,
) -> GpuListing:
    start, end = time_range(start_date, end_date, ctx.clock(), wide=True)
    if gpu_id is not None:
        known_gpu(ctx, gpu_id)
    return GpuListing(start, end, gpu_id, limit, page_cursor(cursor))


Listing = Annotated[GpuListing, Depends(_gpu_listing)]
