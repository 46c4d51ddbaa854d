"""JSON views of the model, shared by the API, the event stream and the CLI.

One place turns dataclasses into the shapes of docs/api.md, so ``gpm status --json`` and
``/api/realtime`` cannot drift apart.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from enum import Enum
from typing import Any

from gpm.catalog import READINGS
from gpm.energy.cost import JOULES_PER_KWH, Prices
from gpm.gpu.xid import describe as describe_xid
from gpm.model import (
    Alert,
    GpuEvent,
    GpuProcess,
    GpuSample,
    LlmSession,
    LoadedModel,
    ModelEvent,
    ProcessEvent,
    Snapshot,
)
from gpm.state import LiveState
from gpm.storage.results import Chart, EnergyHistory, Heatmap, History, LlmStats, Spread
from gpm.timefmt import to_rfc3339

_IDENTITY = ("gpu_id", "uuid", "name", "simulated", "up", "error")


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
        "mig_index": p.mig_index,
        "parent_pid": p.parent_pid,
        "parent_name": p.parent_name,
    }


def sample_view(s: GpuSample, now: float) -> dict[str, Any]:
    """One GPU: its identity, every catalog reading (null when not reported), its processes."""
    out: dict[str, Any] = {name: getattr(s, name) for name in _IDENTITY}
    for r in READINGS:
        value = getattr(s, r.name)
        out[r.name] = round(value, r.digits) if value is not None and r.digits else value
    out["nvlinks"] = None if s.nvlinks is None else [_plain(link, ()) for link in s.nvlinks]
    out["mig_devices"] = None if s.mig_devices is None else [_plain(m, ()) for m in s.mig_devices]
    out["health"] = s.health
    out["health_reasons"] = list(s.health_reasons)
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


def snapshot_json(snap: Snapshot | None) -> str:
    """The snapshot as compact JSON text, the one rendering that ``/api/realtime`` and
    ``/api/stream`` both send; a non-finite number (never valid JSON) becomes null."""
    view = snapshot_view(snap)
    try:
        return json.dumps(view, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(view), allow_nan=False, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _plain(obj: Any, times: tuple[str, ...], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dataclass as JSON-ready fields: the named epoch fields as RFC3339, enums as values."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        if f.name in exclude:
            continue
        value = getattr(obj, f.name)
        if f.name in times:
            value = to_rfc3339(value)
        elif isinstance(value, Enum):
            value = value.value
        out[f.name] = value
    return out


def session_view(s: LlmSession) -> dict[str, Any]:
    """One ``/api/llm-sessions`` item; prompt text never leaves through here."""
    out = _plain(s, ("started_at",), exclude=("prompt_text", "response_text", "chunk_gaps_ms"))
    out["total_tokens"] = s.total_tokens
    out["cold_start"] = s.cold_start
    out["ttft_other_ms"] = s.ttft_other_ms
    out["tokens_per_joule"] = s.tokens_per_joule
    return out


def gpu_event_view(e: GpuEvent) -> dict[str, Any]:
    """One ``/api/gpu-events`` item: the event, and what its code means (gpm.gpu.xid)."""
    xid = describe_xid(e.code)
    return {
        **_plain(e, ("timestamp",)),
        "meaning": xid.meaning,
        "action": xid.action,
        "health": xid.health,
    }


def process_event_view(e: ProcessEvent) -> dict[str, Any]:
    return _plain(e, ("timestamp", "process_started_at"))


def alert_view(a: Alert) -> dict[str, Any]:
    return _plain(a, ("timestamp",))


def model_event_view(e: ModelEvent) -> dict[str, Any]:
    return _plain(e, ("timestamp",))


def model_view(m: LoadedModel) -> dict[str, Any]:
    return _plain(m, ())


def _rounded(metric: str, value: float | None) -> float | None:
    """Sensor precision, not float noise: bytes whole, the rest to 0.01 (the tail of a float is
    what gzip cannot compress: it halves a chart on the wire)."""
    if value is None:
        return None
    return round(value) if metric.endswith("_bytes") else round(value, 2)


def _spread(metric: str, s: Spread) -> dict[str, float | None]:
    return {
        "min": _rounded(metric, s.min),
        "avg": _rounded(metric, s.avg),
        "max": _rounded(metric, s.max),
    }


def chart_view(c: Chart) -> dict[str, Any]:
    """One ``/api/chart`` answer: RFC3339 times, values at sensor precision."""
    return {
        "gpu_id": c.gpu_id,
        "start": to_rfc3339(c.start),
        "end": to_rfc3339(c.end),
        "bucket_seconds": c.bucket_seconds,
        "metrics": list(c.metrics),
        "points": [
            {
                "timestamp": to_rfc3339(p.timestamp),
                **{m: _spread(m, s) for m, s in p.metrics.items()},
            }
            for p in c.points
        ],
        "stats": {m: _plain(s, ()) for m, s in c.stats.items()},
    }


def history_view(h: History) -> dict[str, Any]:
    """One ``/api/historical`` answer."""
    return {
        "start": to_rfc3339(h.start),
        "end": to_rfc3339(h.end),
        "gpus": [
            {
                "gpu_id": g.gpu_id,
                "points": [
                    {
                        "timestamp": to_rfc3339(p.timestamp),
                        **{m: _rounded(m, v) for m, v in p.averages.items()},
                    }
                    for p in g.points
                ],
            }
            for g in h.gpus
        ],
    }


def heatmap_view(h: Heatmap) -> dict[str, Any]:
    return {
        "gpu_id": h.gpu_id,
        "days": [str(d) for d in h.days],
        "cells": [
            {"day": str(c.day), "hour": c.hour, "utilization_percent": c.utilization_percent}
            for c in h.cells
        ],
    }


def llm_stats_view(s: LlmStats) -> dict[str, Any]:
    return {
        "totals": _plain(s.totals, ()),
        "models": [
            {
                **_plain(m, (), exclude=("tokens_per_second_histogram", "ttft_ms_histogram")),
                "tokens_per_second_histogram": _plain(m.tokens_per_second_histogram, ()),
                "ttft_ms_histogram": _plain(m.ttft_ms_histogram, ()),
            }
            for m in s.models
        ],
    }


def energy_view(
    h: EnergyHistory,
    *,
    today: float,
    this_week: float,
    hours: float,
    prices: Prices,
    live: LiveState | None,
) -> dict[str, Any]:
    """The ``/api/energy`` object: the history's figures priced, with the live ledger's method
    per GPU and the idle waste now (both absent in gpm-server, which has no live state)."""

    def figures(joules: float) -> dict[str, Any]:
        return {
            "joules": joules,
            "kwh": joules / JOULES_PER_KWH,
            "cost": prices.cost(joules),
            "co2_grams": prices.co2_grams(joules),
        }

    methods = live.energy.methods if live else {}
    models = []
    for m in h.models:
        per_token = m.joules_per_token
        models.append(
            {
                **_plain(m, ()),
                "tokens_per_joule": 1 / per_token if per_token else None,
                "cost": prices.cost(m.joules),
                "cost_per_million_tokens": prices.cost(per_token * 1e6) if per_token else None,
            }
        )
    return {
        "hours": hours,
        "start": to_rfc3339(h.start),
        "end": to_rfc3339(h.end),
        "currency": prices.currency,
        "price_per_kwh": prices.price_per_kwh,
        "grams_co2_per_kwh": prices.grams_co2_per_kwh,
        "total": figures(h.joules),
        "idle": figures(h.idle_joules),
        "today": figures(today),
        "this_week": figures(this_week),
        "gpus": [
            {**_plain(g, ()), "cost": prices.cost(g.joules), "method": methods.get(g.gpu_id)}
            for g in h.gpus
        ],
        "workloads": [
            {"workload": w, "joules": j, "cost": prices.cost(j)} for w, j in h.workloads.items()
        ],
        "models": models,
        "series": [_plain(x, ("hour",)) for x in h.hours],
        "waste": [_plain(w, ("since",)) for w in (live.idle_waste if live else ())],
    }
