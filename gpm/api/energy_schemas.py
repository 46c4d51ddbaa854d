"""Response shapes of /api/energy: energy, cost and idle waste (docs/energy.md)."""

from __future__ import annotations

from pydantic import Field

from gpm.api.schemas import ApiModel, EnergyMethod


class EnergyFigures(ApiModel):
    joules: float
    kwh: float
    cost: float | None = Field(description="null until energy.price_per_kwh is set")
    co2_grams: float | None = Field(description="null until energy.grams_co2_per_kwh is set")


class GpuEnergy(ApiModel):
    gpu_id: int
    joules: float
    idle_joules: float = Field(description="the idle floor's part, and intervals with no process")
    cost: float | None
    method: EnergyMethod | None = Field(
        description="counter: NVML's energy counter; power_integral: power integrated over "
        "time (an estimate); null in gpm-server or before the first reading"
    )


class WorkloadEnergy(ApiModel):
    workload: str = Field(description="a workload class, or unattributed (process list unknown)")
    joules: float
    cost: float | None


class ModelEnergy(ApiModel):
    model: str
    sessions: int
    sessions_measured: int = Field(description="sessions whose energy is known")
    joules: float | None
    completion_tokens: int | None = Field(description="of the sessions with energy and tokens")
    joules_per_token: float | None
    tokens_per_joule: float | None
    tokens_per_second_p50: float | None
    cost: float | None
    cost_per_million_tokens: float | None


class HourEnergy(ApiModel):
    hour: str | None
    workload: str
    joules: float


class IdleWaste(ApiModel):
    gpu_id: int
    since: str | None
    seconds: float
    memory_used_bytes: int | None
    holders: list[str] = Field(description="processes and resident models holding the memory")
    joules: float | None = Field(description="energy the GPU used while idle")


class Energy(ApiModel):
    hours: float
    start: str | None
    end: str | None
    currency: str
    price_per_kwh: float | None
    grams_co2_per_kwh: float | None
    total: EnergyFigures
    idle: EnergyFigures
    today: EnergyFigures = Field(description="since 00:00 UTC")
    this_week: EnergyFigures = Field(description="since Monday 00:00 UTC")
    gpus: list[GpuEnergy]
    workloads: list[WorkloadEnergy]
    models: list[ModelEnergy]
    series: list[HourEnergy] = Field(description="per hour and workload, idle included")
    waste: list[IdleWaste] = Field(description="GPUs idle with memory held; empty in gpm-server")
