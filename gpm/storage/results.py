"""What the history queries return: plain typed results, turned into JSON only by gpm.views.

Times are epoch seconds; a figure the data does not hold is None, never 0. Metrics are keyed by
their names in ``gpm.storage.rollup.METRICS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class GpuRef:
    """A GPU the database knows, with its newest uuid and name."""

    gpu_id: int
    uuid: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class DataRange:
    """The oldest and newest GPU sample time held, archives included."""

    oldest: float
    newest: float


@dataclass(frozen=True, slots=True)
class Spread:
    """Lowest, mean and highest value of one metric over some samples."""

    min: float | None = None
    avg: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class RangeStats:
    """A metric over a chart's whole range; ``trend_percent`` compares its last tenth with the
    tenth before, in percent of the earlier value."""

    min: float | None
    avg: float | None
    max: float | None
    trend_percent: float | None


@dataclass(frozen=True, slots=True)
class ChartBucket:
    """One time bucket of a chart: its start and each metric's spread in it."""

    timestamp: float
    metrics: Mapping[str, Spread]


@dataclass(frozen=True, slots=True)
class Chart:
    gpu_id: int
    start: float
    end: float
    bucket_seconds: float
    metrics: tuple[str, ...]
    points: tuple[ChartBucket, ...]  # buckets holding samples, oldest first
    stats: Mapping[str, RangeStats]


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One time bucket of a GPU's history: each metric's average in it."""

    timestamp: float
    averages: Mapping[str, float | None]


@dataclass(frozen=True, slots=True)
class GpuHistory:
    gpu_id: int
    points: tuple[HistoryPoint, ...]


@dataclass(frozen=True, slots=True)
class History:
    start: float
    end: float
    gpus: tuple[GpuHistory, ...]


@dataclass(frozen=True, slots=True)
class HeatmapCell:
    day: date  # UTC
    hour: int  # 0..23, UTC
    utilization_percent: float | None


@dataclass(frozen=True, slots=True)
class Heatmap:
    gpu_id: int
    days: tuple[date, ...]  # every UTC day of the range
    cells: tuple[HeatmapCell, ...]  # hours holding samples


@dataclass(frozen=True, slots=True)
class Histogram:
    """Equal-width bins from 0: ``edges`` has one more entry than ``counts``."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelStats:
    model: str  # "(unknown)" for sessions without a model
    sessions: int
    tokens_per_second_p50: float | None
    tokens_per_second_p95: float | None
    ttft_ms_p50: float | None
    ttft_ms_p95: float | None
    total_tokens: int
    errors: int
    tokens_per_second_histogram: Histogram
    ttft_ms_histogram: Histogram


@dataclass(frozen=True, slots=True)
class LlmTotals:
    sessions: int
    avg_tokens_per_second: float | None
    avg_ttft_ms: float | None
    total_tokens: int
    avg_duration_ms: float | None
    best_model: str | None  # highest median decode tokens/s
    errors: int


@dataclass(frozen=True, slots=True)
class LlmStats:
    totals: LlmTotals
    models: tuple[ModelStats, ...]


@dataclass(frozen=True, slots=True)
class GpuEnergy:
    gpu_id: int
    joules: float
    idle_joules: float


@dataclass(frozen=True, slots=True)
class HourEnergy:
    hour: float  # the hour's start
    workload: str  # a workload class, "idle" or "unattributed"
    joules: float


@dataclass(frozen=True, slots=True)
class ModelEnergy:
    """One model's sessions and energy; J/token over the sessions that have both figures."""

    model: str
    sessions: int
    sessions_measured: int  # sessions whose energy is known
    joules: float | None
    completion_tokens: int | None
    joules_per_token: float | None
    tokens_per_second_p50: float | None


@dataclass(frozen=True, slots=True)
class EnergyHistory:
    """Energy over [start, end): per GPU, per workload (idle apart), per model, per hour."""

    start: float
    end: float
    gpus: tuple[GpuEnergy, ...]
    workloads: Mapping[str, float]
    models: tuple[ModelEnergy, ...]
    hours: tuple[HourEnergy, ...]

    @property
    def joules(self) -> float:
        return sum(g.joules for g in self.gpus)

    @property
    def idle_joules(self) -> float:
        return sum(g.idle_joules for g in self.gpus)
