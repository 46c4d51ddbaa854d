"""API test support: a real uvicorn on a free port, and a realistic history database.

``fill`` writes two days for 2 GPUs at 60 s, LLM sessions, process events, alerts and model
events with the real Writer, then archives the older day to Parquet with real retention, so the
routes read SQLite and archives together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from gpm.api.app import ApiContext
from gpm.api.stream import Broadcaster
from gpm.model import (
    Alert,
    Classification,
    EnergyUse,
    GpuProcess,
    GpuSample,
    LlmSession,
    ModelEvent,
    Outcome,
    ProcessEvent,
    Snapshot,
    Workload,
)
from gpm.settings import ApiConfig, Config, ServiceConfig, StorageConfig
from gpm.storage.archive import run_retention
from gpm.storage.queries import Queries
from gpm.storage.writer import Writer
from tests.conftest import free_port, wait_for

DAY = 86400.0
NOW = 1_800_000_000.0  # the fixed clock of the filled database: 2027-01-15T08:00:00Z
MODELS = ("qwen2:0.5b", "llama3.2:3b", "mistral:7b")
OUTCOMES = (Outcome.COMPLETED,) * 7 + (Outcome.CANCELLED, Outcome.ERROR, Outcome.REJECTED)


def _sample(gpu_id: int, ts: float, step: int) -> GpuSample:
    util = float((step * (3 + gpu_id)) % 101)
    return GpuSample(
        gpu_id=gpu_id,
        timestamp=ts,
        uuid=f"GPU-fill-{gpu_id}",
        name=f"Fill GPU {gpu_id}",
        utilization_percent=util,
        memory_used_bytes=(2 + step % 10) * 2**30,
        memory_total_bytes=24 * 2**30,
        memory_free_bytes=(22 - step % 10) * 2**30,
        temperature_celsius=35.0 + util / 2,
        power_watts=60.0 + util * 3,
        power_limit_watts=450.0,
        fan_percent=None if gpu_id else 40.0,
        throttle_reasons=("sw_power_cap",) if util > 95 else (),
    )


def _processes(ts: float) -> tuple[GpuProcess, ...]:
    return (
        GpuProcess(
            pid=4242,
            name="ollama",
            gpu_memory_bytes=3 * 2**30,
            user="alice",
            started_at=ts - 900,
            classification=Classification(
                Workload.LLM_INFERENCE, "cmdline: ollama runner", model="qwen2:0.5b"
            ),
        ),
        GpuProcess(pid=777, name="python3", gpu_memory_bytes=2**30, kind="compute+graphics"),
    )


def fill(db: Path, archive_dir: Path, now: float, *, interval: float = 60.0) -> Snapshot:
    """Write two days up to ``now`` into ``db``; archive the older day. Returns the last poll."""
    writer = Writer(db)
    writer.start()
    steps = int(2 * DAY / interval)
    last: Snapshot | None = None
    for i in range(steps):
        ts = now - 2 * DAY + (i + 1) * interval
        gpus = (_sample(0, ts, i), _sample(1, ts, i))
        if i == steps - 1:  # the newest poll knows its processes (GPU 1: unknown)
            gpus = (replace(gpus[0], processes=_processes(ts)), replace(gpus[1], processes=None))
        last = Snapshot(timestamp=ts, source="nvml", gpus=gpus, poll_seconds=0.01)
        writer.add_snapshot(last)
    for i in range(400):
        writer.add_session(
            LlmSession(
                id=f"fill-{i}",
                model=MODELS[i % 3] if i % 50 else None,
                endpoint="/api/chat" if i % 4 else "/v1/chat/completions",
                started_at=now - 2 * DAY + (i + 0.5) * (2 * DAY / 400),
                outcome=OUTCOMES[i % len(OUTCOMES)],
                kind="embedding" if i % 13 == 0 else "generation",
                backend="openai" if i % 4 == 0 else "ollama",
                status_code=200 if OUTCOMES[i % len(OUTCOMES)] is Outcome.COMPLETED else 500,
                streamed=bool(i % 2),
                prompt_tokens=20 + i % 30,
                completion_tokens=None if i % 11 == 0 else 100 + i,
                tokens_per_second=None if i % 11 == 0 else 30.0 + i % 40,
                ttft_ms=80.0 + i % 200,
                duration_ms=1500.0 + i,
                prompt_text="never shown",
                energy_joules=None if i % 3 else 50.0 + i,  # every third measured
                energy_rule=None if i % 3 else "backend_process",
            )
        )
    # An hour's energy per GPU: 3600 J of inference and 360 J idle on GPU 0, 720 J idle on 1.
    for h in range(48):
        hour = (now - 2 * DAY) // 3600 * 3600 + h * 3600
        writer.add_energy(
            [
                EnergyUse(hour + 1, 0, "llm_inference", 3600.0),
                EnergyUse(hour + 1, 0, "idle", 360.0),
                EnergyUse(hour + 1, 1, "idle", 720.0),
            ]
        )
    for i in range(40):
        ts = now - 2 * DAY + i * 3600
        writer.add_process_events(
            [
                ProcessEvent(
                    timestamp=ts + 60 * j,
                    event=event,
                    gpu_id=i % 2,
                    gpu_uuid=f"GPU-fill-{i % 2}",
                    pid=1000 + i,
                    name="python3",
                    workload=Workload.ML_TRAINING,
                    reason="cmdline: torch",
                    duration_seconds=60.0 if event == "end" else None,
                )
                for j, event in enumerate(("start", "end"))
            ]
        )
        writer.add_alert(
            Alert(
                timestamp=ts,
                rule="temperature",
                state="firing" if i % 2 == 0 else "resolved",
                severity="critical",
                message=f"GPU {i % 2} hot",
                gpu_id=i % 2,
                value=88.0,
                threshold=85.0,
            )
        )
        writer.add_model_events([ModelEvent(ts, "load" if i % 2 else "unload", MODELS[i % 3])])
    assert writer.flush(30), writer.last_error
    writer.close()
    run_retention(db, archive_dir, retention_days=1.0, archive=True, now=now)
    assert last is not None
    return last


def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL, stops it afterwards."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def server_context(data_dir: Path, clock: Callable[[], float]) -> ApiContext:
    """The app as ``gpm-server`` builds it: no live state, everything read from the database."""
    cfg = Config(
        service=ServiceConfig(data_dir=data_dir),
        storage=StorageConfig(archive_dir=data_dir / "archive"),
        api=ApiConfig(),
    )
    return ApiContext(
        config=cfg,
        queries=Queries(cfg.database_path, cfg.storage.archive_dir),
        hub=Broadcaster(),
        clock=clock,
    )
