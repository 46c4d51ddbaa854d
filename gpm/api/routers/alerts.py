"""Alerts: the ones firing now and the recent transitions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gpm.api import schemas
from gpm.api.deps import BAD_PARAM, Ctx, Hours
from gpm.model import Alert
from gpm.views import alert_view

router = APIRouter(tags=["alerts"])


@router.get("/api/alerts", response_model=schemas.Alerts, responses=BAD_PARAM)
def alerts(ctx: Ctx, hours: Hours = 24.0) -> dict[str, Any]:
    now = ctx.clock()
    events = ctx.queries.alerts(now - hours * 3600, now)
    if ctx.state is not None:
        active = list(ctx.state.active_alerts)
    else:  # gpm-server: what fired and has not resolved since
        latest: dict[tuple[str, int | None], Alert] = {}
        for a in reversed(events):
            latest[(a.rule, a.gpu_id)] = a
        active = [a for a in latest.values() if a.state == "firing"]
    return {"active": [alert_view(a) for a in active], "events": [alert_view(a) for a in events]}
