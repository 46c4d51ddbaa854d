"""JSON views of the model, shared by the API, the event stream and the CLI.

One place turns dataclasses into the shapes of docs/api.md, so ``gpm status --json`` and
``/api/realtime`` cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from gpm.model import Alert, GpuProcess, GpuSample, LlmSession, LoadedModel, ProcessEvent, Snapshot
from gpm.timefmt import to_rfc3339

_SAMPLE_FIELDS = (
    "gpu_id",
    "uuid",
    "name",
    "simulated",
    "up",
    "error",
    "utilization_percent",
    "memory_utilization_percent",
    "memory_used_bytes",
    "memory_total_bytes",
    "memory_free_bytes",
    "temperature_celsius",
    "power_watts",
    "power_limit_watts",
    "fan_percent",
    "clock_graphics_mhz",
    "clock_sm_mhz",
    "clock_memory_mhz",
    "performance_state",
    "encoder_utilization_percent",
    "decoder_utilization_percent",
    "pcie_tx_bytes_per_second",
    "pcie_rx_bytes_per_second",
    "energy_joules",
    "ecc_errors_corrected",
    "ecc_errors_uncorrected",
)


def process_view(p: GpuProcess, now: float) -> dict[str, Any]:
    c = p.classification
    return {
        "pid": p.pid,
        "name": p.name,
        "workload": c.workload.value if c else "general_compute",
        "reason": c.reason if c else "not classified",
        "gpu_memory_bytes": p.gpu_memory_bytes,
        "sm_utilization_percent": p.sm_utilization_percent,
        "kind": p.kind,
        "user": p.user,
        "started_at": to_rfc3339(p.started_at),
        "run_seconds": round(now - p.started_at, 1) if p.started_at else None,
        "model": c.model if c else None,
        "container": c.container if c else None,
        "steam_app_id": c.steam_app_id if c else None,
    }


def sample_view(s: GpuSample, now: float) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(s, name) for name in _SAMPLE_FIELDS}
    pct = s.memory_percent
    out["memory_percent"] = round(pct, 2) if pct is not None else None
    out["throttle_reasons"] = list(s.throttle_reasons) if s.throttle_reasons is not None else None
    out["processes"] = None if s.processes is None else [process_view(p, now) for p in s.processes]
    return out


def snapshot_view(snap: Snapshot | None) -> dict[str, Any]:
    """The ``/api/realtime`` and ``gpm status --json`` object."""
    if snap is None:
        return {"timestamp": None, "source": "none", "message": "no reading yet", "gpus": []}
    return {
        "timestamp": to_rfc3339(snap.timestamp),
        "source": snap.source,
        "message": snap.message,
        "gpus": [sample_view(g, snap.timestamp) for g in snap.gpus],
    }


def session_view(s: LlmSession) -> dict[str, Any]:
    """One ``/api/llm-sessions`` item; prompt text never leaves through here."""
    return {
        "id": s.id,
        "model": s.model,
        "endpoint": s.endpoint,
        "started_at": to_rfc3339(s.started_at),
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.total_tokens,
        "tokens_per_second": s.tokens_per_second,
        "prefill_tokens_per_second": s.prefill_tokens_per_second,
        "ttft_ms": s.ttft_ms,
        "ttfb_ms": s.ttfb_ms,
        "mean_chunk_gap_ms": s.mean_chunk_gap_ms,
        "duration_ms": s.duration_ms,
        "load_duration_ms": s.load_duration_ms,
        "prompt_eval_duration_ms": s.prompt_eval_duration_ms,
        "eval_duration_ms": s.eval_duration_ms,
        "outcome": s.outcome.value,
        "done_reason": s.done_reason,
        "kind": s.kind,
        "backend": s.backend,
        "streamed": s.streamed,
        "status_code": s.status_code,
        "error": s.error,
        "client": s.client,
    }


def process_event_view(e: ProcessEvent) -> dict[str, Any]:
    return {
        "timestamp": to_rfc3339(e.timestamp),
        "event": e.event,
        "gpu_id": e.gpu_id,
        "gpu_uuid": e.gpu_uuid,
        "pid": e.pid,
        "name": e.name,
        "workload": e.workload.value,
        "reason": e.reason,
        "user": e.user,
        "container": e.container,
        "model": e.model,
        "steam_app_id": e.steam_app_id,
        "gpu_memory_peak_bytes": e.gpu_memory_peak_bytes,
        "duration_seconds": e.duration_seconds,
    }


def alert_view(a: Alert) -> dict[str, Any]:
    return {
        "timestamp": to_rfc3339(a.timestamp),
        "rule": a.rule,
        "state": a.state,
        "severity": a.severity,
        "message": a.message,
        "gpu_id": a.gpu_id,
        "value": a.value,
        "threshold": a.threshold,
    }


def model_view(m: LoadedModel) -> dict[str, Any]:
    return {
        "name": m.name,
        "size_bytes": m.size_bytes,
        "vram_bytes": m.vram_bytes,
        "context_length": m.context_length,
        "expires_at": m.expires_at,
    }
