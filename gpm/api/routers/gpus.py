"""The GPUs now: identity and parts (info), the latest poll, its event stream, the processes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from gpm import __version__
from gpm.api import schemas
from gpm.api.deps import Ctx, current_snapshot
from gpm.timefmt import to_rfc3339
from gpm.views import process_view

STREAM_PATH = "/api/stream"

router = APIRouter(tags=["gpus"])


@router.get("/api/info", response_model=schemas.Info)
def info(ctx: Ctx) -> dict[str, Any]:
    cfg = ctx.config
    snap = current_snapshot(ctx)
    gpus = [{"gpu_id": g.gpu_id, "uuid": g.uuid, "name": g.name} for g in snap.gpus] if snap else []
    held = ctx.queries.data_range()
    host = ctx.state.host if ctx.state else None
    return {
        "version": __version__,
        "hostname": cfg.host_name,
        "driver_version": host.driver_version if host else None,
        "cuda_version": host.cuda_version if host else None,
        "url": cfg.url,
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
        "poll_phase_seconds": dict(ctx.state.health.phase_seconds) if ctx.state else {},
        "thresholds": {
            "temp_threshold_celsius": cfg.alerts.temp_threshold_celsius,
            "memory_threshold_percent": cfg.alerts.memory_threshold_percent,
        },
        "message": snap.message if snap else "no reading yet",
    }


@router.get("/api/realtime", response_model=schemas.Realtime)
def realtime(ctx: Ctx) -> Response:
    """Rendered once per poll, the same text the event stream sends: the dashboard and scripts
    ask far more often than GPM polls. Serialized without pydantic's pass like the charts (same
    published, tested schema)."""
    return Response(ctx.hub.json(current_snapshot(ctx)), media_type="application/json")


@router.get(
    STREAM_PATH,
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "one `snapshot` event per poll"}
    },
)
async def stream(ctx: Ctx) -> StreamingResponse:
    return StreamingResponse(
        ctx.hub.subscribe(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/api/processes", response_model=schemas.ProcessesNow)
def processes(ctx: Ctx) -> dict[str, Any]:
    snap = current_snapshot(ctx)
    if snap is None:
        return {"timestamp": None, "processes": []}
    items = [
        {"gpu_id": g.gpu_id, **process_view(p, snap.timestamp)}
        for g in snap.gpus
        for p in g.processes or ()
    ]
    return {"timestamp": to_rfc3339(snap.timestamp), "processes": items}
