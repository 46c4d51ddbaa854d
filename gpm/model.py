"""Plain dataclasses that flow from sources to sinks.

Sources (GPU readers, the classifier, the LLM proxy) build these; sinks (storage, telemetry, the
API) only read them. A value the hardware or backend did not report is ``None``, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum

from gpm.catalog import STORED_NAMES


class Workload(StrEnum):
    """What a GPU process is doing."""

    GAMING = "gaming"
    LLM_INFERENCE = "llm_inference"
    ML_TRAINING = "ml_training"
    GENERAL_COMPUTE = "general_compute"


class Outcome(StrEnum):
    """How an LLM request ended."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ERROR = "error"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Classification:
    """The workload of a process and the evidence that decided it."""

    workload: Workload
    reason: str
    model: str | None = None  # LLM model name when the cmdline or backend tells it
    steam_app_id: int | None = None
    container: str | None = None  # e.g. "docker:3f2a..." or "k8s:pod-uid"


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """One process on one GPU, as the GPU source saw it."""

    pid: int
    name: str | None = None
    gpu_memory_bytes: int | None = None
    sm_utilization_percent: float | None = None
    # "compute", "graphics" or "compute+graphics": which NVML list(s) reported it.
    kind: str = "compute"
    user: str | None = None
    started_at: float | None = None  # epoch seconds, from the OS; detects pid reuse
    classification: Classification | None = None
    mig_index: int | None = None  # the MIG device it runs on (MigDevice.index); None: whole GPU
    # Its parent process, from /proc (None: not known, or init): groups a server's runners.
    parent_pid: int | None = None
    parent_name: str | None = None


@dataclass(frozen=True, slots=True)
class NvLink:
    """One NVLink link of a GPU: up or not, and its error counters (None: not read)."""

    link: int
    active: bool
    crc_errors: int | None = None
    replay_errors: int | None = None
    recovery_errors: int | None = None


@dataclass(frozen=True, slots=True)
class MigDevice:
    """One MIG device (a GPU instance with one compute instance) of a GPU in MIG mode.

    ``index`` is its place on the parent GPU (nvidia-smi's "MIG Dev"), which names it in the API
    and in Prometheus' ``mig_instance`` label; ``profile`` is e.g. "1g.10gb". Its readings are
    its own, never summed into the parent's.
    """

    index: int
    uuid: str | None = None
    profile: str | None = None
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    utilization_percent: float | None = None  # NVML gives none on most MIG devices


# The MIG device fields that are catalog readings of the same name and unit: exported like the
# GPU's, labelled with the MIG device.
MIG_READINGS: tuple[str, ...] = tuple(f.name for f in fields(MigDevice) if f.name in STORED_NAMES)


@dataclass(frozen=True, slots=True, init=False)
class GpuSample:
    """One reading of one GPU at one time.

    ``up`` is False when the GPU could not be read at all (lost, driver gone); then ``error``
    says why and every reading is None. ``processes`` is None when the process list is unknown
    (e.g. a binding/driver mismatch), and an empty tuple when there are none.

    The numeric readings are those of :mod:`gpm.catalog`: pass them as keywords, read them as
    attributes (``sample.temperature_celsius``); one that was not reported reads as None.
    ``readings`` holds the reported ones.
    """

    gpu_id: int
    timestamp: float  # epoch seconds
    uuid: str | None
    name: str | None
    simulated: bool
    up: bool
    error: str | None
    # Active clock-event (throttle) reasons by short name, e.g. ("sw_power_cap", "hw_slowdown").
    throttle_reasons: tuple[str, ...] | None
    processes: tuple[GpuProcess, ...] | None
    readings: Mapping[str, float]
    nvlinks: tuple[NvLink, ...] | None  # None on a GPU without NVLink (or unread)
    mig_devices: tuple[MigDevice, ...] | None
    # The verdict of gpm.health ("ok", "degraded", "failed") and why; None until assessed.
    health: str | None
    health_reasons: tuple[str, ...]

    def __init__(
        self,
        gpu_id: int,
        timestamp: float,
        uuid: str | None = None,
        name: str | None = None,
        simulated: bool = False,
        up: bool = True,
        error: str | None = None,
        throttle_reasons: tuple[str, ...] | None = None,
        processes: tuple[GpuProcess, ...] | None = (),
        readings: Mapping[str, float] | None = None,
        nvlinks: tuple[NvLink, ...] | None = None,
        mig_devices: tuple[MigDevice, ...] | None = None,
        health: str | None = None,
        health_reasons: tuple[str, ...] = (),
        **values: float | None,
    ) -> None:
        unknown = values.keys() - STORED_NAMES
        if unknown:
            raise TypeError(
                f"GpuSample: not a reading in gpm.catalog: {', '.join(sorted(unknown))}"
            )
        merged = dict(readings or {})
        for key, value in values.items():  # a keyword wins over ``readings``; None unsets
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        init = object.__setattr__
        init(self, "gpu_id", gpu_id)
        init(self, "timestamp", timestamp)
        init(self, "uuid", uuid)
        init(self, "name", name)
        init(self, "simulated", simulated)
        init(self, "up", up)
        init(self, "error", error)
        init(self, "throttle_reasons", throttle_reasons)
        init(self, "processes", processes)
        init(self, "readings", merged)
        init(self, "nvlinks", nvlinks)
        init(self, "mig_devices", mig_devices)
        init(self, "health", health)
        init(self, "health_reasons", health_reasons)

    def __getattr__(self, name: str) -> float | None:
        """A catalog reading (None when not reported); anything else is an AttributeError."""
        if name in STORED_NAMES:
            return self.readings.get(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def memory_percent(self) -> float | None:
        used, total = (
            self.readings.get("memory_used_bytes"),
            self.readings.get("memory_total_bytes"),
        )
        if used is None or not total:
            return None
        return 100.0 * used / total


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every GPU at one poll, plus which source produced it."""

    timestamp: float
    source: str  # "nvml", "nvidia-smi", "simulated" or "none"
    gpus: tuple[GpuSample, ...] = ()
    message: str | None = None  # why there are no GPUs, when there are none
    poll_seconds: float | None = None  # how long the poll took


@dataclass(frozen=True, slots=True)
class HostInfo:
    """This machine as the fleet sees it: its name, GPM's and the driver's versions."""

    host: str
    version: str
    driver_version: str | None = None
    cuda_version: str | None = None  # "12.4"
    url: str | None = None  # its GPM dashboard


@dataclass(frozen=True, slots=True)
class GpuEvent:
    """Something the driver reported about a GPU: an Xid error (``kind`` "xid", ``code`` its
    number; what it means is in gpm.gpu.xid)."""

    timestamp: float
    gpu_id: int
    gpu_uuid: str | None
    kind: str
    code: int


@dataclass(frozen=True, slots=True)
class ProcessEvent:
    """A process appearing on (``start``) or leaving (``end``) a GPU."""

    timestamp: float
    event: str  # "start" | "end"
    gpu_id: int
    gpu_uuid: str | None
    pid: int
    name: str | None
    workload: Workload
    reason: str
    user: str | None = None
    container: str | None = None
    model: str | None = None
    steam_app_id: int | None = None
    process_started_at: float | None = None
    gpu_memory_peak_bytes: int | None = None
    duration_seconds: float | None = None  # on end events
    energy_joules: float | None = None  # on end events: its share of the GPU's energy


COLD_START_MS = 250.0  # a warm Ollama reports a load time of a few ms; loading takes far longer


@dataclass(slots=True)
class LlmSession:
    """One request through the LLM proxy, measured at the proxy.

    Counts and rates the backend did not report stay None.
    """

    id: str
    model: str | None
    endpoint: str  # request path, e.g. "/api/chat"
    started_at: float  # epoch seconds
    outcome: Outcome = Outcome.COMPLETED
    kind: str = "generation"  # "generation", "embedding", "load", "unload"
    backend: str = "ollama"  # "ollama" or "openai"
    status_code: int | None = None
    streamed: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Where completion_tokens came from: "backend" (the server's own count) or "stream" (one per
    # content chunk, counted by the proxy: an estimate of the server's token count).
    token_source: str | None = None
    prompt_cached_tokens: int | None = None
    tokens_per_second: float | None = None  # decode rate
    prefill_tokens_per_second: float | None = None
    ttft_ms: float | None = None  # proxy-measured, first chunk with content
    ttfb_ms: float | None = None
    mean_chunk_gap_ms: float | None = None
    chunk_gap_p50_ms: float | None = None  # inter-token latency between content chunks
    chunk_gap_p99_ms: float | None = None
    duration_ms: float | None = None
    load_duration_ms: float | None = None
    prompt_eval_duration_ms: float | None = None
    eval_duration_ms: float | None = None
    done_reason: str | None = None
    error: str | None = None
    client: str = "local"  # "local" or "remote", never the address
    prompt_text: str | None = None  # only with ollama.store_prompts
    response_text: str | None = None
    # Its share of its GPUs' energy (gpm.energy), and the rule that chose those GPUs.
    energy_joules: float | None = None
    energy_rule: str | None = None
    # Every gap between content chunks, for the per-chunk histograms; not stored.
    chunk_gaps_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    @property
    def tokens_per_joule(self) -> float | None:
        """Completion tokens per joule of the session's energy; None when either is unknown."""
        if self.completion_tokens is None or not self.energy_joules:
            return None
        return self.completion_tokens / self.energy_joules

    @property
    def joules_per_token(self) -> float | None:
        """The session's energy per completion token; None when either is unknown (or 0)."""
        if not self.completion_tokens or self.energy_joules is None:
            return None
        return self.energy_joules / self.completion_tokens

    @property
    def cold_start(self) -> bool | None:
        """Whether the model had to be loaded first: the server's load time was at least
        COLD_START_MS. None where the server does not report loading (llama.cpp, /v1 servers)."""
        if self.load_duration_ms is None:
            return None
        return self.load_duration_ms >= COLD_START_MS

    @property
    def ttft_other_ms(self) -> float | None:
        """The part of the proxy's TTFT that is neither loading nor prefill by the server's clock:
        queueing, the network and the first decode step (never below 0)."""
        if self.ttft_ms is None or self.prompt_eval_duration_ms is None:
            return None
        rest = self.ttft_ms - self.prompt_eval_duration_ms - (self.load_duration_ms or 0.0)
        return max(rest, 0.0)


@dataclass(frozen=True, slots=True)
class EnergyUse:
    """Energy one GPU used over a poll interval ending at ``timestamp``, for one workload (a
    workload class, "idle" for the idle floor, or "unattributed")."""

    timestamp: float
    gpu_id: int
    workload: str
    joules: float


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model resident in the LLM backend (Ollama ``/api/ps``)."""

    name: str
    size_bytes: int | None
    vram_bytes: int | None
    context_length: int | None = None
    expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class ModelEvent:
    """A model being loaded into, or unloaded from, the backend."""

    timestamp: float
    event: str  # "load" | "unload"
    model: str
    size_bytes: int | None = None
    vram_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert changing state: ``firing`` when it starts, ``resolved`` when it clears."""

    timestamp: float
    # "temperature", "memory", "gpu_down", "throttle", "ecc", "memory_health", "poll_stalled"
    rule: str
    state: str  # "firing" | "resolved"
    severity: str  # "warning" | "critical"
    message: str
    gpu_id: int | None = None
    value: float | None = None
    threshold: float | None = None


@dataclass(slots=True)
class WeeklySummary:
    """Per GPU (or per model, for LLM rows) and ISO week."""

    week: str  # "2026-W48"
    gpu_id: int | None
    model: str | None = None
    hours_active: float | None = None
    avg_utilization_percent: float | None = None
    peak_utilization_percent: float | None = None
    avg_memory_used_bytes: float | None = None
    peak_memory_used_bytes: int | None = None
    avg_temperature_celsius: float | None = None
    peak_temperature_celsius: float | None = None
    energy_wh: float | None = None
    workload_seconds: dict[str, float] = field(default_factory=dict)
    # From the energy table (gpm.energy): the idle part, and the rest by workload class.
    idle_energy_wh: float | None = None
    workload_energy_wh: dict[str, float] = field(default_factory=dict)
    llm_sessions: int | None = None
    llm_tokens: int | None = None
