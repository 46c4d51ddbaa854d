"""History: charts, per-GPU history, the heatmap, weekly summaries, process and GPU events."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from gpm.api import schemas
from gpm.api.deps import (
    BAD_PARAM,
    BAD_PARAM_OR_GPU,
    DAY,
    Ctx,
    GpuId,
    Hours,
    Listing,
    current_snapshot,
    known_gpu,
    next_cursor,
)
from gpm.views import (
    chart_view,
    gpu_event_view,
    heatmap_view,
    history_view,
    process_event_view,
)

HISTORY_POINTS = 2000  # /api/historical's default budget, shared by the GPUs

router = APIRouter(tags=["history"])


def _json(body: dict[str, Any]) -> Response:
    """A chart or history answer, serialized once.

    These answers hold thousands of numbers: pydantic's validate-and-dump pass would cost more
    than the query, so they skip it. Their shape is still published (``response_model``) and
    checked against the schema by the schemathesis run in the tests.
    """
    return Response(
        json.dumps(body, allow_nan=False, separators=(",", ":")).encode(),
        media_type="application/json",
    )


@router.get("/api/historical", response_model=schemas.Historical, responses=BAD_PARAM_OR_GPU)
def historical(
    ctx: Ctx,
    hours: Hours = 1.0,
    gpu_id: GpuId | None = None,
    points: Annotated[
        int | None,
        Query(ge=10, le=2000, description="per GPU; default 500, or 2000 shared when fewer"),
    ] = None,
) -> Any:
    if gpu_id is not None:
        known_gpu(ctx, gpu_id)
        gpus = 1
    else:
        snap = current_snapshot(ctx)
        gpus = len(snap.gpus) if snap and snap.gpus else len(ctx.queries.gpu_ids())
    if points is None:  # keeps 8 GPUs' day under 100 KB on the wire
        points = max(10, min(500, HISTORY_POINTS // max(gpus, 1)))
    now = ctx.clock()
    hist = ctx.queries.historical(now - hours * 3600, now, gpu_id=gpu_id, points=points)
    return _json(history_view(hist))


@router.get("/api/chart", response_model=schemas.Chart, responses=BAD_PARAM_OR_GPU)
def chart(
    ctx: Ctx,
    gpu_id: GpuId,
    hours: Hours = 1.0,
    points: Annotated[int, Query(ge=10, le=2000)] = 500,
) -> Any:
    known_gpu(ctx, gpu_id)
    now = ctx.clock()
    series = ctx.queries.chart(gpu_id, now - hours * 3600, now, points=points)
    return _json(chart_view(series))


@router.get("/api/heatmap", response_model=schemas.Heatmap, responses=BAD_PARAM_OR_GPU)
def heatmap(ctx: Ctx, gpu_id: GpuId, days: Annotated[int, Query(ge=1, le=366)] = 7) -> Any:
    known_gpu(ctx, gpu_id)
    now = ctx.clock()
    return heatmap_view(ctx.queries.heatmap(gpu_id, now - days * DAY, now))


@router.get("/api/process-events", response_model=schemas.ProcessEvents, responses=BAD_PARAM_OR_GPU)
def process_events(ctx: Ctx, q: Listing) -> dict[str, Any]:
    events, after = ctx.queries.process_events(
        q.start, q.end, gpu_id=q.gpu_id, limit=q.limit, cursor=q.cursor
    )
    return {"events": [process_event_view(e) for e in events], "next": next_cursor(after)}


@router.get("/api/gpu-events", response_model=schemas.GpuEvents, responses=BAD_PARAM_OR_GPU)
def gpu_events(ctx: Ctx, q: Listing) -> dict[str, Any]:
    """Xid errors the driver reported, newest first, with what each means and what to do."""
    events, after = ctx.queries.gpu_events(
        q.start, q.end, gpu_id=q.gpu_id, limit=q.limit, cursor=q.cursor
    )
    return {"events": [gpu_event_view(e) for e in events], "next": next_cursor(after)}


@router.get("/api/weekly-summaries", response_model=schemas.WeeklySummaries, responses=BAD_PARAM)
def weekly_summaries(ctx: Ctx, weeks: Annotated[int, Query(ge=1, le=520)] = 4) -> dict[str, Any]:
    rows = ctx.queries.weekly_summaries(weeks, now=ctx.clock())
    gpus = [
        {k: getattr(r, k) for k in schemas.GpuWeek.model_fields} for r in rows if r.model is None
    ]
    models = [
        {k: getattr(r, k) for k in schemas.ModelWeek.model_fields}
        for r in rows
        if r.model is not None
    ]
    return {"gpus": gpus, "models": models}
