"""LLM session statistics: totals, per-model percentiles and histograms, from session rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gpm.model import Outcome
from gpm.stats import percentile
from gpm.storage.reader import Dict
from gpm.storage.results import Histogram, LlmStats, LlmTotals, ModelStats

HISTOGRAM_BINS = 10


def summarize(rows: list[Dict]) -> LlmStats:
    """Totals and per-model figures (``/api/llm-stats`` less ``hours``) of generation rows."""
    by_model: dict[str, list[Dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"] or "(unknown)", []).append(r)
    models = tuple(_model_stats(name, rs) for name, rs in sorted(by_model.items()))
    rated = [m for m in models if m.tokens_per_second_p50 is not None]
    best = max(rated, key=lambda m: m.tokens_per_second_p50 or 0.0).model if rated else None
    totals = LlmTotals(
        sessions=len(rows),
        avg_tokens_per_second=_mean(r["tokens_per_second"] for r in rows),
        avg_ttft_ms=_mean(r["ttft_ms"] for r in rows),
        total_tokens=sum(_tokens(r) for r in rows),
        avg_duration_ms=_mean(r["duration_ms"] for r in rows),
        best_model=best,
        errors=sum(_is_error(r) for r in rows),
    )
    return LlmStats(totals, models)


def _tokens(r: Dict) -> int:
    return int((r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0))


def _is_error(r: Dict) -> bool:
    return r["outcome"] in (Outcome.ERROR.value, Outcome.REJECTED.value)


def _mean(values: Iterator[Any] | Any) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def histogram(values: list[float], bins: int = HISTOGRAM_BINS) -> Histogram:
    """Equal-width bins from 0 to the maximum."""
    if not values:
        return Histogram((), ())
    top = max(max(values), 1e-9)
    width = top / bins
    counts = [0] * bins
    for v in values:
        counts[min(int(max(v, 0.0) / width), bins - 1)] += 1
    return Histogram(tuple(i * width for i in range(bins + 1)), tuple(counts))


def _model_stats(name: str, rows: list[Dict]) -> ModelStats:
    tps = [r["tokens_per_second"] for r in rows if r["tokens_per_second"] is not None]
    ttft = [r["ttft_ms"] for r in rows if r["ttft_ms"] is not None]
    return ModelStats(
        model=name,
        sessions=len(rows),
        tokens_per_second_p50=percentile(tps, 50),
        tokens_per_second_p95=percentile(tps, 95),
        ttft_ms_p50=percentile(ttft, 50),
        ttft_ms_p95=percentile(ttft, 95),
        total_tokens=sum(_tokens(r) for r in rows),
        errors=sum(_is_error(r) for r in rows),
        tokens_per_second_histogram=histogram(tps),
        ttft_ms_histogram=histogram(ttft),
    )
