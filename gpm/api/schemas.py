"""Response models: the HTTP edge's contract, published in ``/openapi.json``.

Inside GPM data is plain dataclasses; these pydantic models exist only to describe and check
what leaves through the API (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from gpm import catalog
from gpm.catalog import Reading

WorkloadName = Literal["gaming", "llm_inference", "ml_training", "general_compute"]
OutcomeName = Literal["completed", "cancelled", "error", "rejected"]
TokenSource = Literal["backend", "stream"]


class ApiModel(BaseModel):
    """Every response shape: a field the view does not declare is an error, not a leak."""

    model_config = ConfigDict(extra="forbid")


class Error(ApiModel):
    """Every error answer: ``detail`` starts with the parameter at fault, e.g. ``hours: ...``."""

    detail: str


class GpuRef(ApiModel):
    gpu_id: int
    uuid: str | None
    name: str | None


class DataRange(ApiModel):
    oldest: str | None
    newest: str | None


class Parts(ApiModel):
    proxy: bool
    prometheus: bool
    opentelemetry: bool
    archival: bool
    alerts: bool


class Thresholds(ApiModel):
    temp_threshold_celsius: float
    memory_threshold_percent: float


class Info(ApiModel):
    version: str
    hostname: str = Field(description="service.host_name, else the machine's hostname")
    driver_version: str | None = Field(description="the NVIDIA driver's; null in gpm-server")
    cuda_version: str | None = Field(description="the CUDA version the driver supports")
    url: str = Field(description="this GPM's dashboard, as the fleet page links to it")
    simulated: bool
    gpu_source: str
    gpu_count: int
    gpus: list[GpuRef]
    database_path: str
    data_range: DataRange
    parts: Parts
    poll_interval_secs: float
    poll_phase_seconds: dict[str, float] = Field(
        description="the last poll by phase: gpus, classify, record (empty in gpm-server)"
    )
    thresholds: Thresholds
    message: str | None


class Process(ApiModel):
    pid: int
    name: str | None
    workload: WorkloadName
    reason: str
    gpu_memory_bytes: int | None
    sm_utilization_percent: float | None
    kind: str
    user: str | None
    started_at: str | None
    run_seconds: float | None
    model: str | None
    container: str | None
    steam_app_id: int | None
    mig_index: int | None = Field(
        description="the MIG device it runs on (its index in mig_devices); null: the whole GPU"
    )
    parent_pid: int | None = Field(
        description="its parent process (from /proc); null when not known or init"
    )
    parent_name: str | None = Field(description="the parent's name (comm); null when not known")


class NvLink(ApiModel):
    link: int
    active: bool
    crc_errors: int | None
    replay_errors: int | None
    recovery_errors: int | None


class MigDevice(ApiModel):
    index: int = Field(description="the MIG device's place on its GPU (nvidia-smi's MIG Dev)")
    uuid: str | None
    profile: str | None = Field(description='the MIG profile, e.g. "1g.10gb"')
    gpu_instance_id: int | None
    compute_instance_id: int | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    utilization_percent: float | None = Field(description="null where NVML gives none")


class _GpuIdentity(ApiModel):
    gpu_id: int
    uuid: str | None
    name: str | None
    simulated: bool
    up: bool
    error: str | None
    health: Literal["ok", "degraded", "failed"] | None = Field(
        description="the health verdict (docs/nvml.md); null before the first assessment"
    )
    health_reasons: list[str]
    nvlinks: list[NvLink] | None = Field(
        description="each NVLink link's state and error counters; null on a GPU without NVLink"
    )
    mig_devices: list[MigDevice] | None = Field(
        description="each MIG device of a GPU in MIG mode; null when MIG is off or unsupported"
    )
    throttle_reasons: list[str] | None
    processes: list[Process] | None


def _reading_fields(value: Callable[[Reading], Any]) -> dict[str, Any]:
    """One field per catalog reading (``value`` gives its type), described from the catalog."""
    return {r.name: (value(r), Field(description=f"{r.help} [{r.unit}]")) for r in catalog.READINGS}


def _number(r: Reading) -> Any:
    return (int if r.integer else float) | None


if TYPE_CHECKING:  # built from the catalog below; type checkers see the common base
    GpuNow = _GpuIdentity
else:
    GpuNow = create_model("GpuNow", __base__=_GpuIdentity, **_reading_fields(_number))


class Realtime(ApiModel):
    timestamp: str | None
    source: str
    message: str | None
    gpus: list[GpuNow]


class ProcessNow(Process):
    gpu_id: int


class ProcessesNow(ApiModel):
    timestamp: str | None
    processes: list[ProcessNow]


class MinAvgMax(ApiModel):
    min: float | None
    avg: float | None
    max: float | None


class MetricStats(MinAvgMax):
    trend_percent: float | None


class _TimePoint(ApiModel):
    timestamp: str


def _charted(value: Any) -> dict[str, Any]:
    return {
        r.name: (value, Field(description=f"{r.help} [{r.unit}]"))
        for r in catalog.READINGS
        if r.charted
    }


if TYPE_CHECKING:
    ChartPoint = _TimePoint
    HistoryPoint = _TimePoint
else:
    # Chart buckets give each charted reading's min/avg/max; history points its average.
    ChartPoint = create_model("ChartPoint", __base__=_TimePoint, **_charted(MinAvgMax))
    HistoryPoint = create_model("HistoryPoint", __base__=_TimePoint, **_charted(float | None))


class Chart(ApiModel):
    gpu_id: int
    start: str
    end: str
    bucket_seconds: float
    metrics: list[str]
    points: list[ChartPoint]
    stats: dict[str, MetricStats]


class GpuHistory(ApiModel):
    gpu_id: int
    points: list[HistoryPoint]


class Historical(ApiModel):
    start: str
    end: str
    gpus: list[GpuHistory]


EnergyRule = Literal["backend_process", "llm_processes", "all_gpus"]
EnergyMethod = Literal["counter", "power_integral"]


class Session(ApiModel):
    id: str
    model: str | None
    endpoint: str
    started_at: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    token_source: TokenSource | None = Field(
        description="backend: the server's own count; stream: counted by the proxy, one per "
        "chunk that carried generated content (an estimate of the server's count)"
    )
    prompt_cached_tokens: int | None
    total_tokens: int | None
    tokens_per_second: float | None
    prefill_tokens_per_second: float | None
    ttft_ms: float | None
    ttfb_ms: float | None
    mean_chunk_gap_ms: float | None
    chunk_gap_p50_ms: float | None = Field(description="inter-token latency, median")
    chunk_gap_p99_ms: float | None
    duration_ms: float | None
    load_duration_ms: float | None
    prompt_eval_duration_ms: float | None
    eval_duration_ms: float | None
    cold_start: bool | None = Field(
        description="the model had to be loaded first (server load time >= 250 ms); null where "
        "the server does not report loading"
    )
    ttft_other_ms: float | None = Field(
        description="TTFT less the server's load and prefill time: queueing, network, first "
        "decode step"
    )
    outcome: OutcomeName
    done_reason: str | None
    kind: str
    backend: str
    streamed: bool
    status_code: int | None
    error: str | None
    client: str
    energy_joules: float | None = Field(
        description="the session's share of its GPUs' energy (docs/energy.md); null when unknown"
    )
    energy_rule: EnergyRule | None = Field(description="how the session's GPUs were chosen")
    tokens_per_joule: float | None = Field(description="completion tokens per joule")


class Sessions(ApiModel):
    total: int
    sessions: list[Session]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class Histogram(ApiModel):
    edges: list[float]
    counts: list[int]


class ModelStats(ApiModel):
    model_config = ConfigDict(extra="allow")

    model: str | None
    sessions: int
    tokens_per_second_p50: float | None
    tokens_per_second_p95: float | None
    ttft_ms_p50: float | None
    ttft_ms_p95: float | None
    total_tokens: int | None
    errors: int
    tokens_per_second_histogram: Histogram | None = None
    ttft_ms_histogram: Histogram | None = None


class StatsTotals(ApiModel):
    model_config = ConfigDict(extra="allow")

    sessions: int
    avg_tokens_per_second: float | None
    avg_ttft_ms: float | None
    total_tokens: int | None
    avg_duration_ms: float | None
    best_model: str | None
    errors: int


class LlmStats(ApiModel):
    hours: float
    totals: StatsTotals
    models: list[ModelStats]


class LoadedModel(ApiModel):
    name: str
    size_bytes: int | None
    vram_bytes: int | None
    context_length: int | None
    expires_at: str | None


class ModelEventItem(ApiModel):
    timestamp: str | None
    event: Literal["load", "unload"]
    model: str
    size_bytes: int | None
    vram_bytes: int | None


class Models(ApiModel):
    backend_up: bool | None
    backend_version: str | None
    models: list[LoadedModel]
    events: list[ModelEventItem]


class AlertItem(ApiModel):
    timestamp: str | None
    rule: str
    state: Literal["firing", "resolved"]
    severity: str
    message: str
    gpu_id: int | None
    value: float | None
    threshold: float | None


class Alerts(ApiModel):
    active: list[AlertItem]
    events: list[AlertItem]


class ProcessEventItem(ApiModel):
    timestamp: str | None
    event: Literal["start", "end"]
    gpu_id: int
    gpu_uuid: str | None
    pid: int
    name: str | None
    workload: WorkloadName
    reason: str
    user: str | None
    container: str | None
    model: str | None
    steam_app_id: int | None
    process_started_at: str | None
    gpu_memory_peak_bytes: int | None
    duration_seconds: float | None
    energy_joules: float | None = Field(
        description="on end events: the process's share of its GPU's energy while GPM saw it"
    )


class ProcessEvents(ApiModel):
    events: list[ProcessEventItem]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class GpuEventItem(ApiModel):
    timestamp: str | None
    gpu_id: int
    gpu_uuid: str | None
    kind: Literal["xid"]
    code: int
    meaning: str = Field(description="what the code means (NVIDIA's Xid catalog)")
    action: str = Field(description="what to do about it")
    health: Literal["degraded", "failed"] | None = Field(
        description="what it says of the GPU; null for an application's fault"
    )


class GpuEvents(ApiModel):
    events: list[GpuEventItem]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class GpuWeek(ApiModel):
    week: str
    gpu_id: int | None
    hours_active: float | None
    avg_utilization_percent: float | None
    peak_utilization_percent: float | None
    avg_memory_used_bytes: float | None
    peak_memory_used_bytes: int | None
    avg_temperature_celsius: float | None
    peak_temperature_celsius: float | None
    energy_wh: float | None
    workload_seconds: dict[str, float]
    idle_energy_wh: float | None = Field(
        description="energy at the idle floor or with no process (docs/energy.md)"
    )
    workload_energy_wh: dict[str, float] = Field(
        description="the rest of the energy by workload class (unattributed: list unknown)"
    )


class ModelWeek(ApiModel):
    week: str
    model: str | None
    llm_sessions: int | None
    llm_tokens: int | None


class WeeklySummaries(ApiModel):
    gpus: list[GpuWeek]
    models: list[ModelWeek]


class HeatmapCell(ApiModel):
    day: str
    hour: int
    utilization_percent: float | None


class Heatmap(ApiModel):
    gpu_id: int
    days: list[str]
    cells: list[HeatmapCell]
