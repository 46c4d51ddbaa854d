"""LLM traffic: the sessions the proxy recorded, their statistics, the resident models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gpm.api import schemas
from gpm.api.deps import (
    BAD_PARAM,
    Ctx,
    Date,
    Hours,
    PageCursor,
    next_cursor,
    page_cursor,
    time_range,
)
from gpm.views import llm_stats_view, model_event_view, model_view, session_view

router = APIRouter(tags=["llm"])


@router.get("/api/llm-sessions", response_model=schemas.Sessions, responses=BAD_PARAM)
def llm_sessions(
    ctx: Ctx,
    start_date: Date = None,
    end_date: Date = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    cursor: PageCursor = None,
) -> dict[str, Any]:
    start, end = time_range(start_date, end_date, ctx.clock(), wide=True)
    total, sessions, after = ctx.queries.sessions(
        start, end, model=model, limit=limit, offset=offset, cursor=page_cursor(cursor)
    )
    return {
        "total": total,
        "sessions": [session_view(s) for s in sessions],
        "next": next_cursor(after),
    }


@router.get("/api/llm-stats", response_model=schemas.LlmStats, responses=BAD_PARAM)
def llm_stats(ctx: Ctx, hours: Hours = 24.0) -> dict[str, Any]:
    now = ctx.clock()
    return {"hours": hours, **llm_stats_view(ctx.queries.llm_stats(now - hours * 3600, now))}


@router.get("/api/models", response_model=schemas.Models, responses=BAD_PARAM)
def models(ctx: Ctx, hours: Hours = 24.0) -> dict[str, Any]:
    st = ctx.state
    now = ctx.clock()
    events = ctx.queries.model_events(now - hours * 3600, now)
    return {
        "backend_up": st.backend_up if st else None,
        "backend_version": st.backend_version if st else None,
        "models": [model_view(m) for m in st.models] if st else [],
        "events": [model_event_view(e) for e in events],
    }
