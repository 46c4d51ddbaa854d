"""Energy, efficiency and cost: per GPU, workload and model, idle, and idle waste now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter

from gpm.api import energy_schemas
from gpm.api.deps import BAD_PARAM, Ctx, Hours
from gpm.energy.cost import Prices
from gpm.views import energy_view

router = APIRouter(tags=["energy"])


@router.get("/api/energy", response_model=energy_schemas.Energy, responses=BAD_PARAM)
def energy(ctx: Ctx, hours: Hours = 24.0) -> dict[str, Any]:
    now = ctx.clock()
    e = ctx.config.energy
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = (day - timedelta(days=day.weekday())).timestamp()
    q = ctx.queries
    # Hourly rows count from their hour's start: the current hour belongs to today and the week.
    end = now + 3600
    return energy_view(
        q.energy(now - hours * 3600, end),
        today=q.energy(day.timestamp(), end).joules,
        this_week=q.energy(monday, end).joules,
        hours=hours,
        prices=Prices(e.price_per_kwh, e.currency, e.grams_co2_per_kwh),
        live=ctx.state,
    )
