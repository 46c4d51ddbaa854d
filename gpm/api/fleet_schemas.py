"""Response shapes of /api/fleet: the GPM hosts a Prometheus scrapes (docs/fleet.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gpm.api.schemas import ApiModel


class FleetGpu(ApiModel):
    gpu_id: int
    name: str | None
    uuid: str | None
    utilization_percent: float | None
    memory_used_bytes: float | None
    memory_total_bytes: float | None
    temperature_celsius: float | None
    power_watts: float | None
    power_limit_watts: float | None
    health: Literal["ok", "degraded", "failed"] | None
    throttle_reasons: list[str]
    processes: int | None
    idle: bool | None = Field(description="utilization at or below 5 %")
    idle_memory_held: bool | None = Field(description="idle while a process holds memory")
    hot: bool | None = Field(description="at or above alerts.temp_threshold_celsius")
    throttled: bool = Field(description="a thermal or power slowdown is active")


class FleetModel(ApiModel):
    model: str
    vram_bytes: float | None
    tokens_per_second_p50: float | None = Field(description="over the last 5 minutes")
    ttft_ms_p50: float | None = Field(description="over the last 5 minutes")


class FleetHost(ApiModel):
    instance: str = Field(description="Prometheus' instance label: the host's /metrics address")
    host: str = Field(description="its service.host_name")
    up: bool = Field(description="Prometheus' last scrape of it worked")
    last_seen: str | None = Field(description="its last successful GPU poll")
    version: str | None
    driver_version: str | None
    cuda_version: str | None
    url: str | None = Field(description="its own GPM dashboard")
    gpus: list[FleetGpu]
    models: list[FleetModel] = Field(description="resident models and their LLM figures")
    power_watts: float | None
    energy_joules_24h: float | None
    cost_24h: float | None


class Fleet(ApiModel):
    configured: bool
    prometheus_url: str | None
    fetched_at: str | None = Field(description="when Prometheus last answered")
    age_seconds: float | None
    error: str | None = Field(description="why the newest query failed; the hosts are older")
    currency: str | None = None
    hosts: list[FleetHost]
