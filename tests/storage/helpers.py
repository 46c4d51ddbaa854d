"""Builders of synthetic history shared by the storage tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from gpm.model import (
    Alert,
    Classification,
    GpuProcess,
    GpuSample,
    LlmSession,
    ProcessEvent,
    Snapshot,
    Workload,
)
from gpm.storage.db import open_database
from gpm.storage.writer import alert_row, gpu_row, insert_rows, process_event_row, session_row

# Monday 2026-11-23 00:00:00 UTC: the start of ISO week 2026-W48.
MONDAY = 1795392000.0
HOUR = 3600.0
DAY = 86400.0


def sample(gpu_id: int, ts: float, util: float | None = 50.0, **kw: object) -> GpuSample:
    values: dict[str, object] = {
        "uuid": f"GPU-{gpu_id}",
        "name": "Fake GPU",
        "utilization_percent": util,
        "memory_used_bytes": 4_000,
        "memory_total_bytes": 8_000,
        "temperature_celsius": 60.0,
        "power_watts": 100.0,
    }
    values.update(kw)
    return GpuSample(gpu_id=gpu_id, timestamp=ts, **values)  # type: ignore[arg-type]


def snapshot(ts: float, gpus: int = 2) -> Snapshot:
    proc = GpuProcess(
        pid=4242,
        name="ollama",
        gpu_memory_bytes=1000,
        user="alice",
        classification=Classification(
            Workload.LLM_INFERENCE, "cmdline: ollama", model="qwen2:0.5b"
        ),
    )
    return Snapshot(
        timestamp=ts,
        source="simulated",
        gpus=tuple(
            sample(g, ts, util=float(g * 10), processes=(proc,) if g == 0 else None)
            for g in range(gpus)
        ),
    )


def session(i: int, ts: float, model: str = "qwen2:0.5b", **kw: object) -> LlmSession:
    values: dict[str, object] = {
        "prompt_tokens": 10,
        "completion_tokens": 90,
        "tokens_per_second": 50.0 + i,
        "ttft_ms": 100.0 + i,
        "duration_ms": 2000.0,
        "status_code": 200,
        "streamed": True,
    }
    values.update(kw)
    return LlmSession(id=f"s{i}", model=model, endpoint="/api/chat", started_at=ts, **values)  # type: ignore[arg-type]


def process_event(
    ts: float,
    event: str,
    pid: int = 7,
    gpu_id: int = 0,
    workload: Workload = Workload.ML_TRAINING,
    duration: float | None = None,
) -> ProcessEvent:
    return ProcessEvent(
        timestamp=ts,
        event=event,
        gpu_id=gpu_id,
        gpu_uuid=f"GPU-{gpu_id}",
        pid=pid,
        name="python",
        workload=workload,
        reason="test",
        duration_seconds=duration,
    )


def alert(ts: float, state: str = "firing") -> Alert:
    return Alert(
        timestamp=ts,
        rule="temperature",
        state=state,
        severity="warning",
        message="GPU 0 at 90 C",
        gpu_id=0,
        value=90.0,
        threshold=85.0,
    )


def fill(
    path: Path,
    *,
    samples: Sequence[GpuSample] = (),
    sessions: Sequence[LlmSession] = (),
    events: Sequence[ProcessEvent] = (),
    alerts: Sequence[Alert] = (),
) -> None:
    """Write rows through the writer's insert path, in one transaction."""
    conn = open_database(path)
    with conn:
        insert_rows(conn, "gpu_metrics", [gpu_row(s) for s in samples])
        insert_rows(conn, "llm_sessions", [session_row(s) for s in sessions])
        insert_rows(conn, "process_events", [process_event_row(e) for e in events])
        insert_rows(conn, "alerts", [alert_row(a) for a in alerts])
    conn.close()


def count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()
