"""The fleet: every GPM host that the configured Prometheus scrapes (docs/fleet.md)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from gpm.api import fleet_schemas
from gpm.api.deps import Ctx
from gpm.energy.cost import Prices
from gpm.timefmt import to_rfc3339

router = APIRouter(tags=["fleet"])

NOT_CONFIGURED = (
    "no fleet: set fleet.prometheus_url (GPM_FLEET_PROMETHEUS_URL) to the Prometheus that "
    "scrapes your GPM hosts"
)


@router.get("/api/fleet", response_model=fleet_schemas.Fleet)
async def fleet(ctx: Ctx) -> dict[str, Any]:
    cache = ctx.fleet
    if cache is None:
        return {"configured": False, "prometheus_url": None, "fetched_at": None,
                "age_seconds": None, "error": NOT_CONFIGURED, "hosts": []}  # fmt: skip
    view = await cache.view()
    e = ctx.config.energy
    prices = Prices(e.price_per_kwh, e.currency, e.grams_co2_per_kwh)
    hosts = []
    for h in view.hosts:
        host = asdict(h)
        host["last_seen"] = to_rfc3339(h.last_seen)
        host["cost_24h"] = prices.cost(h.energy_joules_24h)
        hosts.append(host)
    now = ctx.clock()
    return {
        "configured": True,
        "prometheus_url": cache.prometheus.url,
        "fetched_at": to_rfc3339(view.fetched_at),
        "age_seconds": None if view.fetched_at is None else round(now - view.fetched_at, 1),
        "error": view.error,
        "currency": e.currency,
        "hosts": hosts,
    }
