"""The API on a real socket over a real database filled by the real writer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpm.api.app import ApiContext, create_app
from gpm.api.stream import Broadcaster
from gpm.model import (
    Alert,
    Classification,
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
from gpm.state import LiveState
from gpm.storage.queries import Queries
from gpm.storage.writer import Writer
from gpm.timefmt import to_rfc3339
from gpm.views import snapshot_json
from tests.api.support import serve

NOW = 1_800_000_000.0  # fixed clock: 2027-01-15T08:00:00Z
HOUR = 3600.0


def sample(gpu_id: int, ts: float, util: float, temp: float) -> GpuSample:
    return GpuSample(
        gpu_id=gpu_id,
        timestamp=ts,
        uuid=f"GPU-test-{gpu_id}",
        name=f"Test GPU {gpu_id}",
        utilization_percent=util,
        memory_used_bytes=4 * 2**30,
        memory_total_bytes=16 * 2**30,
        memory_free_bytes=12 * 2**30,
        temperature_celsius=temp,
        power_watts=100.0 + util,
        power_limit_watts=300.0,
        fan_percent=None,
    )


def build_db(path: Path) -> LiveState:
    """Two GPUs, one hour at 10 s: GPU 0 ramps 0..100 % util, GPU 1 flat at 50 %."""
    writer = Writer(path)
    writer.start()
    snap: Snapshot | None = None
    for i in range(360):
        ts = NOW - HOUR + i * 10
        snap = Snapshot(
            timestamp=ts,
            source="nvml",
            gpus=(
                sample(0, ts, util=i / 359 * 100, temp=40 + i / 359 * 40),
                sample(1, ts, util=50.0, temp=60.0),
            ),
        )
        writer.add_snapshot(snap)
    for i in range(20):
        writer.add_session(
            LlmSession(
                id=f"s{i}",
                model="qwen2:0.5b" if i % 2 else "llama3.2:3b",
                endpoint="/api/chat",
                started_at=NOW - 600 + i * 10,
                prompt_tokens=20,
                completion_tokens=100 + i,
                token_source="stream" if i % 2 else "backend",
                tokens_per_second=50.0 + i,
                ttft_ms=1600.0 if i == 17 else 100.0 + i,
                load_duration_ms=1500.0 if i == 17 else 5.0,
                prompt_eval_duration_ms=30.0,
                chunk_gap_p50_ms=20.0,
                chunk_gap_p99_ms=35.0,
                chunk_gaps_ms=(20.0, 35.0),  # for exporters only: never stored or served
                duration_ms=2000.0,
                outcome=Outcome.ERROR if i == 19 else Outcome.COMPLETED,
                streamed=True,
                status_code=200,
            )
        )
    writer.add_process_events(
        [
            ProcessEvent(
                timestamp=NOW - 300,
                event="start",
                gpu_id=0,
                gpu_uuid="GPU-test-0",
                pid=4242,
                name="ollama",
                workload=Workload.LLM_INFERENCE,
                reason="cmdline: ollama runner",
            )
        ]
    )
    writer.add_model_events([ModelEvent(NOW - 60, "load", "qwen2:0.5b", 2**30, 2**30)])
    writer.add_alert(
        Alert(
            timestamp=NOW - 120,
            rule="temperature",
            state="firing",
            severity="critical",
            message="GPU 0 at 80 °C",
            gpu_id=0,
            value=80.0,
            threshold=85.0,
        )
    )
    assert writer.flush(10)
    writer.close()
    assert snap is not None
    proc = GpuProcess(
        pid=4242,
        name="ollama",
        gpu_memory_bytes=2**30,
        started_at=NOW - 300,
        classification=Classification(Workload.LLM_INFERENCE, "cmdline: ollama runner"),
    )
    live = replace(snap, gpus=(replace(snap.gpus[0], processes=(proc,)), snap.gpus[1]))
    return LiveState(snapshot=live)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LiveState]:
    path = tmp_path_factory.mktemp("api") / "gpm.db"
    return path, build_db(path)


def make_context(db: tuple[Path, LiveState], **api: Any) -> ApiContext:
    path, state = db
    cfg = Config(
        service=ServiceConfig(data_dir=path.parent),
        storage=StorageConfig(archive_dir=path.parent / "archive"),
        api=ApiConfig(**api),
    )
    return ApiContext(
        config=cfg,
        queries=Queries(path, path.parent / "archive"),
        hub=Broadcaster(),
        state=state,
        clock=lambda: NOW,
    )


@pytest.fixture(scope="module")
def base(db: tuple[Path, LiveState]) -> Iterator[str]:
    yield from serve(create_app(make_context(db)))


def test_info(base: str) -> None:
    info = httpx.get(f"{base}/api/info").json()
    assert info["gpu_count"] == 2
    assert [g["name"] for g in info["gpus"]] == ["Test GPU 0", "Test GPU 1"]
    assert info["data_range"]["oldest"] == to_rfc3339(NOW - HOUR)
    assert info["thresholds"] == {"temp_threshold_celsius": 85.0, "memory_threshold_percent": 90.0}


def test_realtime_shape_and_nulls(base: str) -> None:
    snap = httpx.get(f"{base}/api/realtime").json()
    g0 = snap["gpus"][0]
    assert g0["fan_percent"] is None  # not reported: null, never 0
    assert g0["memory_percent"] == 25.0
    assert g0["processes"][0] == {
        **g0["processes"][0],
        "pid": 4242,
        "workload": "llm_inference",
        "run_seconds": 290.0,
    }


def test_chart_downsamples_with_min_avg_max_and_trend(base: str) -> None:
    chart = httpx.get(f"{base}/api/chart", params={"gpu_id": 0, "hours": 1, "points": 60}).json()
    points = chart["points"]
    assert 50 <= len(points) <= 60
    first = points[0]["utilization_percent"]
    assert first["min"] <= first["avg"] <= first["max"]
    stats = chart["stats"]["utilization_percent"]
    assert stats["min"] == pytest.approx(0.0, abs=0.5)
    assert stats["max"] == pytest.approx(100.0, abs=0.5)
    assert stats["trend_percent"] > 0  # GPU 0 ramps up
    flat = httpx.get(f"{base}/api/chart", params={"gpu_id": 1, "hours": 1}).json()
    assert flat["stats"]["utilization_percent"]["trend_percent"] == pytest.approx(0.0)


def test_historical(base: str) -> None:
    hist = httpx.get(f"{base}/api/historical", params={"hours": 2}).json()
    assert {g["gpu_id"] for g in hist["gpus"]} == {0, 1}
    assert 0 < len(hist["gpus"][0]["points"]) <= 500
    few = httpx.get(f"{base}/api/historical", params={"hours": 1, "points": 10}).json()
    assert [len(g["points"]) for g in few["gpus"]] == [10, 10]
    avg = few["gpus"][1]["points"][0]
    assert avg["utilization_percent"] == 50.0 and avg["memory_used_bytes"] == 4 * 2**30


def test_sessions_paging_and_model_filter(base: str) -> None:
    start = to_rfc3339(NOW - HOUR)
    body = httpx.get(f"{base}/api/llm-sessions", params={"start_date": start, "limit": 5}).json()
    assert body["total"] == 20 and len(body["sessions"]) == 5
    assert body["sessions"][0]["id"] == "s19"  # newest first
    assert body["sessions"][0]["outcome"] == "error"
    page2 = httpx.get(
        f"{base}/api/llm-sessions", params={"start_date": start, "limit": 5, "offset": 5}
    ).json()
    assert page2["sessions"][0]["id"] == "s14"
    qwen = httpx.get(
        f"{base}/api/llm-sessions", params={"start_date": start, "model": "qwen2:0.5b"}
    ).json()
    assert qwen["total"] == 10 and {s["model"] for s in qwen["sessions"]} == {"qwen2:0.5b"}
    s = qwen["sessions"][0]
    assert s["total_tokens"] == s["prompt_tokens"] + s["completion_tokens"]


def test_session_token_source_latency_and_ttft_split(base: str) -> None:
    start = to_rfc3339(NOW - HOUR)
    body = httpx.get(f"{base}/api/llm-sessions", params={"start_date": start}).json()
    by_id = {s["id"]: s for s in body["sessions"]}
    cold, warm, counted = by_id["s17"], by_id["s16"], by_id["s15"]
    assert (counted["token_source"], warm["token_source"]) == ("stream", "backend")
    assert (cold["chunk_gap_p50_ms"], cold["chunk_gap_p99_ms"]) == (20.0, 35.0)
    # TTFT = load + prefill + the rest (queue, network, first decode step).
    assert cold["cold_start"] is True and cold["ttft_other_ms"] == 1600.0 - 1500.0 - 30.0
    assert warm["cold_start"] is False and warm["ttft_other_ms"] == 116.0 - 5.0 - 30.0
    assert "chunk_gaps_ms" not in cold


def test_llm_stats(base: str) -> None:
    stats = httpx.get(f"{base}/api/llm-stats", params={"hours": 1}).json()
    assert stats["totals"]["sessions"] == 20
    assert stats["totals"]["errors"] == 1
    assert stats["totals"]["best_model"] == "qwen2:0.5b"  # odd i: higher tokens/s
    assert {m["model"] for m in stats["models"]} == {"qwen2:0.5b", "llama3.2:3b"}


def test_models_with_load_events(base: str) -> None:
    body = httpx.get(f"{base}/api/models").json()
    assert body["events"] == [
        {
            "timestamp": to_rfc3339(NOW - 60),
            "event": "load",
            "model": "qwen2:0.5b",
            "size_bytes": 2**30,
            "vram_bytes": 2**30,
        }
    ]
    assert httpx.get(f"{base}/api/models", params={"hours": "0.001"}).json()["events"] == []


def test_process_events_alerts(base: str) -> None:
    events = httpx.get(f"{base}/api/process-events").json()["events"]
    assert events[0]["pid"] == 4242 and events[0]["workload"] == "llm_inference"
    alerts = httpx.get(f"{base}/api/alerts").json()
    assert alerts["events"][0]["rule"] == "temperature"


@pytest.mark.parametrize(
    ("path", "params", "status", "names"),
    [
        ("/api/historical", {"hours": "-1"}, 422, "hours"),
        ("/api/historical", {"hours": "abc"}, 422, "hours"),
        ("/api/historical", {"hours": "100000"}, 422, "hours"),
        ("/api/chart", {}, 422, "gpu_id"),
        ("/api/chart", {"gpu_id": "7"}, 404, "gpu_id"),
        ("/api/chart", {"gpu_id": "0", "points": "1"}, 422, "points"),
        ("/api/llm-sessions", {"start_date": "yesterday"}, 422, "start_date"),
        ("/api/llm-sessions", {"end_date": "2026-13-45"}, 422, "end_date"),
        (
            "/api/llm-sessions",
            {"start_date": "2027-01-15T09:00:00Z", "end_date": "2027-01-15T08:00:00Z"},
            422,
            "end_date",
        ),
        ("/api/export", {"start_date": "2000-01-01T00:00:00Z"}, 422, "start_date"),
        ("/api/llm-sessions", {"cursor": "bm90IGpzb24"}, 422, "cursor"),
        ("/api/llm-sessions", {"limit": "0"}, 422, "limit"),
        ("/api/export", {"format": "xls"}, 422, "format"),
    ],
)
def test_bad_parameters_are_named(
    base: str, path: str, params: dict[str, str], status: int, names: str
) -> None:
    resp = httpx.get(base + path, params=params)
    assert resp.status_code == status, resp.text
    assert names in resp.text


def test_export_csv(base: str) -> None:
    resp = httpx.get(
        f"{base}/api/export",
        params={
            "start_date": to_rfc3339(NOW - HOUR),
            "end_date": to_rfc3339(NOW),
            "table": "llm_sessions",
            "format": "csv",
        },
    )
    assert resp.status_code == 200
    lines = resp.text.strip().splitlines()
    assert len(lines) == 21 and "model" in lines[0]


def test_stream_sends_snapshots(db: tuple[Path, LiveState]) -> None:
    ctx = make_context(db)
    assert db[1].snapshot is not None
    ctx.hub.publish(db[1].snapshot)  # no subscriber yet: kept as the first message for one
    for base_url in serve(create_app(ctx)):
        with httpx.stream("GET", f"{base_url}/api/stream", timeout=10) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in resp.headers  # events are never held back
            lines = resp.iter_lines()
            assert next(lines) == "retry: 2000"
            event = next(line for line in lines if line.startswith("event: "))
            data = next(lines)
            assert event == "event: snapshot"
            assert data.startswith("data: ") and '"gpu_id":0' in data
        # One rendering per poll: the stream's event is the realtime answer, byte for byte.
        assert httpx.get(f"{base_url}/api/realtime").text == data.removeprefix("data: ")


def test_large_answers_are_gzipped(base: str) -> None:
    resp = httpx.get(f"{base}/api/chart", params={"gpu_id": 0, "points": 360})
    assert resp.headers["content-encoding"] == "gzip"
    assert int(resp.headers["content-length"]) * 4 < len(resp.content)
    plain = httpx.get(f"{base}/api/chart", params={"gpu_id": 0}, headers={"Accept-Encoding": ""})
    assert "content-encoding" not in plain.headers and plain.json()["points"]


def test_token_required_off_loopback(db: tuple[Path, LiveState]) -> None:
    ctx = make_context(db, host="0.0.0.0", token="t0ken")
    for base_url in serve(create_app(ctx)):
        assert httpx.get(f"{base_url}/api/info").status_code == 401
        assert (
            httpx.get(f"{base_url}/api/info", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        ok = httpx.get(f"{base_url}/api/info", headers={"Authorization": "Bearer t0ken"})
        assert ok.status_code == 200
        # ?token= only where a header cannot be sent: the browser's event stream.
        assert httpx.get(f"{base_url}/api/info", params={"token": "t0ken"}).status_code == 401
        with httpx.stream("GET", f"{base_url}/api/stream", params={"token": "t0ken"}) as resp:
            assert resp.status_code == 200
        assert httpx.get(f"{base_url}/api/stream", params={"token": "wrong"}).status_code == 401


def test_every_get_route_answers_head(base: str) -> None:
    spec = httpx.get(f"{base}/openapi.json").json()
    params = {"gpu_id": 0}
    for path, ops in spec["paths"].items():
        if "get" not in ops:
            continue
        get = httpx.get(f"{base}{path}", params=params) if path != "/api/stream" else None
        head = httpx.head(f"{base}{path}", params=params, timeout=5)
        assert head.content == b"", path
        if get is None:  # the event stream: headers, then the HEAD is over
            assert head.status_code == 200
            assert head.headers["content-type"].startswith("text/event-stream")
            continue
        assert head.status_code == get.status_code, path
        assert head.headers["content-type"] == get.headers["content-type"], path
    assert httpx.head(f"{base}/api/nope").status_code == 404


def test_openapi_describes_every_route(base: str) -> None:
    spec = httpx.get(f"{base}/openapi.json").json()
    for route in (
        "/api/info",
        "/api/realtime",
        "/api/chart",
        "/api/historical",
        "/api/llm-sessions",
        "/api/llm-stats",
        "/api/alerts",
        "/api/stream",
        "/api/export",
        "/api/heatmap",
        "/api/weekly-summaries",
        "/api/models",
        "/api/processes",
        "/api/process-events",
    ):
        assert route in spec["paths"], route
    assert "Realtime" in spec["components"]["schemas"]


def test_time_is_not_wall_clock(base: str) -> None:
    # the app's clock is injected: an hour of history is found although NOW is in the future
    assert time.time() < NOW
    assert httpx.get(f"{base}/api/chart", params={"gpu_id": 0}).json()["points"]


def test_a_non_finite_reading_is_served_as_null() -> None:
    gpu = GpuSample(gpu_id=0, timestamp=NOW, power_watts=float("nan"), temperature_celsius=50.0)
    body = json.loads(snapshot_json(Snapshot(timestamp=NOW, source="nvml", gpus=(gpu,))))
    assert body["gpus"][0]["power_watts"] is None
    assert body["gpus"][0]["temperature_celsius"] == 50.0


def test_wide_ranges_are_paged_not_refused(base: str) -> None:
    # Everything since 2000: the first page and a cursor; walking the cursors gives every
    # session once, newest first, whatever the page size.
    params: dict[str, Any] = {"start_date": "2000-01-01T00:00:00Z", "limit": 3}
    first = httpx.get(f"{base}/api/llm-sessions", params=params)
    assert first.status_code == 200
    body = first.json()
    assert body["total"] == 20 and len(body["sessions"]) == 3 and body["next"]
    seen = [s["id"] for s in body["sessions"]]
    while body["next"]:
        body = httpx.get(
            f"{base}/api/llm-sessions", params={**params, "cursor": body["next"]}
        ).json()
        seen += [s["id"] for s in body["sessions"]]
    assert seen == [f"s{i}" for i in range(19, -1, -1)]
    events = httpx.get(
        f"{base}/api/process-events", params={"start_date": "2000-01-01T00:00:00Z", "limit": 1}
    ).json()
    assert len(events["events"]) == 1
