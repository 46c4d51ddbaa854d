"""The fleet view: every GPM host Prometheus scrapes, its GPUs, models and energy, assembled
from a handful of instant PromQL queries and cached for a few seconds.

PromQL runs on the Prometheus side; hosts are told apart by Prometheus' ``instance`` label and
named by ``gpm_host_info{host}``. When Prometheus is unreachable or slow the last answer stays,
with its age and the error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from gpm.energy.attribution import IDLE_UTILIZATION_PERCENT
from gpm.fleet.promql import Prometheus, PromQLError, Series
from gpm.gpu import clock_events

# The GPU readings the fleet shows, by their metric names.
GPU_READINGS = {
    "gpm_gpu_utilization_percent": "utilization_percent",
    "gpm_gpu_memory_used_bytes": "memory_used_bytes",
    "gpm_gpu_memory_total_bytes": "memory_total_bytes",
    "gpm_gpu_temperature_celsius": "temperature_celsius",
    "gpm_gpu_power_watts": "power_watts",
    "gpm_gpu_power_limit_watts": "power_limit_watts",
}
QUERIES = {
    # Hosts seen in the last hour, so a host that stopped still shows (as down).
    "hosts": "last_over_time(gpm_host_info[1h])",
    "up": "up",
    "last_seen": "last_over_time(gpm_last_successful_poll_timestamp_seconds[1h])",
    "gpu": '{__name__=~"' + "|".join(GPU_READINGS) + '"}',
    "gpu_info": "gpm_gpu_info",
    "health": "gpm_gpu_health == 1",
    "throttle": "gpm_gpu_throttle_reason == 1",
    "processes": "sum by (instance, gpu_id) (gpm_gpu_processes)",
    "models": "gpm_llm_model_vram_bytes",
    "tokens_per_second": "histogram_quantile(0.5, sum by (instance, model, le) "
    "(rate(gpm_llm_tokens_per_second_bucket[5m])))",
    "ttft": "histogram_quantile(0.5, sum by (instance, model, le) "
    "(rate(gpm_llm_time_to_first_token_seconds_bucket[5m])))",
    "energy_24h": "sum by (instance) (increase(gpm_gpu_energy_joules_total[24h]))",
}
_SLOWDOWNS = frozenset(clock_events.THERMAL + clock_events.POWER)


@dataclass(slots=True)
class FleetGpu:
    gpu_id: int
    name: str | None = None
    uuid: str | None = None
    utilization_percent: float | None = None
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    health: str | None = None
    throttle_reasons: list[str] = field(default_factory=list)
    processes: int | None = None
    idle: bool | None = None  # utilization at or below 5 %
    idle_memory_held: bool | None = None  # idle while a process holds memory
    hot: bool | None = None  # at or above the temperature threshold
    throttled: bool = False  # a thermal or power slowdown is active


@dataclass(slots=True)
class FleetModel:
    model: str
    vram_bytes: float | None = None
    tokens_per_second_p50: float | None = None
    ttft_ms_p50: float | None = None


@dataclass(slots=True)
class FleetHost:
    instance: str
    host: str
    up: bool
    last_seen: float | None = None
    version: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    url: str | None = None
    gpus: list[FleetGpu] = field(default_factory=list)
    models: list[FleetModel] = field(default_factory=list)
    power_watts: float | None = None
    energy_joules_24h: float | None = None


@dataclass(frozen=True, slots=True)
class FleetView:
    fetched_at: float | None  # when Prometheus last answered; None: never
    hosts: tuple[FleetHost, ...]
    error: str | None = None  # why the newest attempt failed; the hosts are then older


def assemble(results: dict[str, list[Series]], hot_celsius: float, now: float) -> FleetView:
    """The fleet from the QUERIES' answers."""
    hosts: dict[str, FleetHost] = {}
    for s in results["hosts"]:
        inst = s.labels.get("instance", "")
        hosts[inst] = FleetHost(
            instance=inst,
            host=s.labels.get("host") or inst,
            up=False,
            version=s.labels.get("version") or None,
            driver_version=s.labels.get("driver_version") or None,
            cuda_version=s.labels.get("cuda_version") or None,
            url=s.labels.get("url") or None,
        )
    for s in results["up"]:
        host = hosts.get(s.labels.get("instance", ""))
        if host is not None:
            host.up = s.value == 1.0
    for s in results["last_seen"]:
        host = hosts.get(s.labels.get("instance", ""))
        if host is not None:
            host.last_seen = s.value
    gpus: dict[tuple[str, int], FleetGpu] = {}

    def gpu(s: Series) -> FleetGpu | None:
        inst, gid = s.labels.get("instance", ""), s.labels.get("gpu_id")
        if inst not in hosts or gid is None or not gid.isdigit():
            return None
        key = (inst, int(gid))
        if key not in gpus:
            gpus[key] = FleetGpu(int(gid))
            hosts[inst].gpus.append(gpus[key])
        return gpus[key]

    for s in results["gpu_info"]:
        if (g := gpu(s)) is not None:
            g.name, g.uuid = s.labels.get("name") or None, s.labels.get("uuid") or None
    for s in results["gpu"]:
        if (g := gpu(s)) is not None:
            setattr(g, GPU_READINGS[s.labels["__name__"]], s.value)
    for s in results["health"]:
        if (g := gpu(s)) is not None:
            g.health = s.labels.get("state")
    for s in results["throttle"]:
        if (g := gpu(s)) is not None:
            g.throttle_reasons.append(s.labels.get("reason", ""))
    for s in results["processes"]:
        if (g := gpu(s)) is not None and s.value is not None:
            g.processes = int(s.value)
    for g in gpus.values():
        _judge(g, hot_celsius)
    _add_models(hosts, results)
    for s in results["energy_24h"]:
        host = hosts.get(s.labels.get("instance", ""))
        if host is not None:
            host.energy_joules_24h = s.value
    for host in hosts.values():
        host.gpus.sort(key=lambda g: g.gpu_id)
        watts = [g.power_watts for g in host.gpus if g.power_watts is not None]
        host.power_watts = sum(watts) if host.up and watts else None
    ordered = sorted(hosts.values(), key=lambda h: (h.host, h.instance))
    return FleetView(fetched_at=now, hosts=tuple(ordered))


def _judge(g: FleetGpu, hot_celsius: float) -> None:
    util, temp = g.utilization_percent, g.temperature_celsius
    g.idle = None if util is None else util <= IDLE_UTILIZATION_PERCENT
    g.idle_memory_held = (
        None if g.idle is None or g.processes is None else (g.idle and g.processes > 0)
    )
    g.hot = None if temp is None else temp >= hot_celsius
    g.throttled = bool(_SLOWDOWNS.intersection(g.throttle_reasons))
    g.throttle_reasons.sort()


def _add_models(hosts: dict[str, FleetHost], results: dict[str, list[Series]]) -> None:
    models: dict[tuple[str, str], FleetModel] = {}

    def model(s: Series) -> FleetModel | None:
        inst, name = s.labels.get("instance", ""), s.labels.get("model")
        if inst not in hosts or not name:
            return None
        if (inst, name) not in models:
            models[(inst, name)] = FleetModel(name)
            hosts[inst].models.append(models[(inst, name)])
        return models[(inst, name)]

    for s in results["models"]:
        if (m := model(s)) is not None:
            m.vram_bytes = s.value
    for s in results["tokens_per_second"]:
        if s.value is not None and (m := model(s)) is not None:
            m.tokens_per_second_p50 = s.value
    for s in results["ttft"]:
        if s.value is not None and (m := model(s)) is not None:
            m.ttft_ms_p50 = s.value * 1000
    for host in hosts.values():
        host.models.sort(key=lambda m: m.model)


class FleetCache:
    """Answers from Prometheus, reused for ``ttl`` seconds; one refresh at a time."""

    def __init__(
        self,
        prometheus: Prometheus,
        hot_celsius: float,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prometheus = prometheus
        self._hot = hot_celsius
        self._ttl = ttl
        self._clock = clock
        self._view = FleetView(fetched_at=None, hosts=())
        self._tried_at = float("-inf")
        self._lock = asyncio.Lock()

    async def view(self) -> FleetView:
        async with self._lock:
            if self._clock() - self._tried_at >= self._ttl:
                self._tried_at = self._clock()
                self._view = await self._refresh()
            return self._view

    async def _refresh(self) -> FleetView:
        try:
            async with aiohttp.ClientSession() as session:
                answers = await asyncio.gather(
                    *(self.prometheus.query(session, q) for q in QUERIES.values())
                )
        except PromQLError as exc:
            old = self._view
            return FleetView(fetched_at=old.fetched_at, hosts=old.hosts, error=str(exc))
        return assemble(dict(zip(QUERIES, answers, strict=True)), self._hot, self._clock())
