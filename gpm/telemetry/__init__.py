"""Telemetry sinks: Prometheus ``/metrics`` and OpenTelemetry OTLP export.

Import the submodules directly; :mod:`gpm.telemetry.otlp` loads the OpenTelemetry SDK only when
an exporter starts. What both sinks share (which sessions count as inference, bounded model
labels) lives here.
"""

from __future__ import annotations

import threading

UNKNOWN_MODEL = "unknown"
OTHER_MODEL = "other"

# Sessions that measure inference; "load"/"unload" only move weights and would skew latency.
PERFORMANCE_KINDS = frozenset({"generation", "embedding"})

# Gaps between content chunks (inter-token latency): OpenTelemetry's recommended boundaries for
# gen_ai.client.operation.time_per_output_chunk, with finer ones below 10 ms for fast local models.
CHUNK_GAP_SECONDS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip

# Joules per completion token: a small model on an efficient GPU spends well under 1 J, a large
# one on a busy card tens of joules.
JOULES_PER_TOKEN_BUCKETS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


class ModelLabels:
    """Maps model names to a bounded set of label values (beyond ``limit`` -> ``"other"``).

    Model names come from client requests, so without a cap a client could create unbounded
    series (one per misspelt model name).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"model_label_limit must be at least 1, got {limit}")
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, model: str | None) -> str:
        name = model or UNKNOWN_MODEL
        with self._lock:
            if name in self._seen:
                return name
            if len(self._seen) < self._limit:
                self._seen.add(name)
                return name
        return OTHER_MODEL
