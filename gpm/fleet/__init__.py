"""The fleet: many GPM hosts in one view, read from Prometheus (GPM never fans out itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpm.fleet.view import FleetCache
    from gpm.settings import Config


def fleet_cache(cfg: Config) -> FleetCache | None:
    """The fleet view the config asks for; None without fleet.prometheus_url (and then the
    HTTP client it needs is not even imported)."""
    f = cfg.fleet
    if not f.prometheus_url:
        return None
    from gpm.fleet.promql import Prometheus
    from gpm.fleet.view import FleetCache

    prometheus = Prometheus(
        f.prometheus_url,
        bearer_token=f.bearer_token,
        username=f.username,
        password=f.password,
        timeout=f.timeout_secs,
    )
    return FleetCache(prometheus, cfg.alerts.temp_threshold_celsius, ttl=f.cache_secs)
