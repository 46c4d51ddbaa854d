"""``gpm run`` end to end: a real process, real ports, a real database."""

from __future__ import annotations

import signal
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.conftest import GpmProcess, get_json, wait_for


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_demo_runs_serves_and_stops_cleanly(gpm_process: Callable[..., GpmProcess]) -> None:
    gpm = gpm_process().start("run", "--demo")
    snap = gpm.wait_ready()
    assert snap["source"] == "simulated"
    assert len(snap["gpus"]) == 2
    assert all(g["simulated"] for g in snap["gpus"])
    info = get_json(gpm.api + "/api/info")
    assert info["simulated"] is True and info["gpu_count"] == 2
    # the same app on the dashboard port
    assert get_json(f"http://127.0.0.1:{gpm.ports['dashboard']}/api/info")["gpu_count"] == 2
    # Prometheus exposition with the contract names
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{gpm.ports['metrics']}/metrics").read()
    assert b"gpm_gpu_utilization_percent{" in metrics
    # polls keep coming on schedule (0.5 s)
    first = snap["timestamp"]
    wait_for(
        lambda: get_json(gpm.api + "/api/realtime")["timestamp"] != first,
        timeout=5,
        what="a newer snapshot",
    )
    # demo LLM traffic goes through the real proxy and is recorded
    sessions = wait_for(
        lambda: get_json(gpm.api + "/api/llm-sessions")["sessions"],
        timeout=20,
        what="a demo LLM session",
    )
    assert sessions[0]["outcome"] in ("completed", "error")
    started = time.monotonic()
    assert gpm.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 8
    assert "GPM stopped" in gpm.output()
    db = gpm.data_dir / "gpm.db"
    assert _count(db, "gpu_metrics") >= 4  # flushed on shutdown
    assert _count(db, "llm_sessions") >= 1


def test_second_instance_refuses_and_stale_lock_does_not_block(
    gpm_process: Callable[..., GpmProcess],
) -> None:
    first = gpm_process().start("run", "--demo")
    first.wait_ready()
    second = gpm_process()
    second.env["GPM_SERVICE_DATA_DIR"] = first.env["GPM_SERVICE_DATA_DIR"]
    result = second.run("run", "--demo", timeout=30)
    assert result.returncode == 1
    assert "already running" in result.stderr
    assert str(first.proc.pid if first.proc else "") in result.stderr
    # kill -9 leaves the lock file behind; the next start must not be blocked by it
    first.stop(signal.SIGKILL)
    assert (first.data_dir / "gpm.lock").exists()
    again = gpm_process()
    again.env["GPM_SERVICE_DATA_DIR"] = first.env["GPM_SERVICE_DATA_DIR"]
    again.start("run", "--demo").wait_ready()
    assert again.stop() == 0


def test_no_gpu_keeps_running_and_says_so(
    gpm_process: Callable[..., GpmProcess], tmp_path: Path
) -> None:
    gpm = gpm_process(
        GPM_GPU_NVML_LIBRARY=str(tmp_path / "missing" / "libnvidia-ml.so.1"),
        GPM_OLLAMA_BACKEND_URL="http://127.0.0.1:9",
    )
    gpm.start("run")
    snap = gpm.wait_ready()
    assert snap["gpus"] == [] and snap["source"] == "none"
    assert "No NVIDIA GPU found" in gpm.output()
    assert gpm.output().count("No NVIDIA GPU found") == 1
    info = get_json(gpm.api + "/api/info")
    assert info["gpu_count"] == 0 and info["message"]
    # the proxy still answers: the backend is down, so a clear 502 naming it
    req = urllib.request.Request(f"http://127.0.0.1:{gpm.ports['proxy']}/api/tags")
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("expected 502")
    except urllib.error.HTTPError as exc:
        assert exc.code == 502
        assert b"127.0.0.1:9" in exc.read()
    assert gpm.stop() == 0


def test_bad_config_exits_2_naming_key_value_source(gpm_process: Callable[..., GpmProcess]) -> None:
    gpm = gpm_process(GPM_SERVICE_POLL_INTERVAL_SECS="soon")
    result = gpm.run("run")
    assert result.returncode == 2
    assert "service.poll_interval_secs" in result.stderr
    assert "'soon'" in result.stderr and "GPM_SERVICE_POLL_INTERVAL_SECS" in result.stderr


def test_history_commands_after_a_demo_run(gpm_process: Callable[..., GpmProcess]) -> None:
    """Run the demo, stop it with Ctrl-C, then sessions, export and archive over its data."""
    import csv
    import json

    import duckdb

    gpm = gpm_process().start("run", "--demo")
    gpm.wait_ready()
    wait_for(
        lambda: get_json(gpm.api + "/api/llm-sessions")["sessions"],
        timeout=20,
        what="a demo LLM session",
    )
    assert gpm.stop(signal.SIGINT) == 0
    db = gpm.data_dir / "gpm.db"
    samples = _count(db, "gpu_metrics")
    assert samples >= 4

    sessions = gpm.run("sessions", "--json")
    assert sessions.returncode == 0, sessions.stderr
    body = json.loads(sessions.stdout)
    assert body["total"] >= 1 and body["sessions"][0]["model"]
    table = gpm.run("sessions")
    assert "MODEL" in table.stdout and body["sessions"][0]["model"] in table.stdout

    out = gpm.data_dir.parent / "metrics.csv"
    exported = gpm.run(
        "export", "--from", "2h", "--format", "csv", "--table", "gpu_metrics", "--out", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    with out.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == samples
    assert rows[0]["ts"].endswith("Z") and float(rows[0]["utilization_percent"]) >= 0
    needs_dir = gpm.run("export", "--from", "2h", "--format", "csv")
    assert needs_dir.returncode == 2 and "--out DIR" in needs_dir.stderr

    gpm.env["GPM_STORAGE_RETENTION_DAYS"] = "0"
    archived = gpm.run("archive")
    assert archived.returncode == 0, archived.stderr
    assert "gpu_metrics" in archived.stdout
    assert _count(db, "gpu_metrics") == 0
    files = sorted((gpm.data_dir / "archive" / "gpu_metrics").glob("*.parquet"))
    assert files
    glob = str(gpm.data_dir / "archive" / "gpu_metrics" / "*.parquet")
    assert duckdb.sql(f"SELECT count(*) FROM '{glob}'").fetchall() == [(samples,)]
    # history still reaches the archived rows
    again = gpm.run("export", "--from", "2h", "--format", "json", "--table", "gpu_metrics")
    assert again.returncode == 0, again.stderr
    assert len(json.loads(again.stdout)["gpu_metrics"]) == samples


def test_demo_starts_with_an_hour_of_simulated_history(
    gpm_process: Callable[..., GpmProcess],
) -> None:
    gpm = gpm_process().start("run", "--demo")
    gpm.wait_ready()
    chart = get_json(gpm.api + "/api/chart?gpu_id=0&hours=1")
    assert len(chart["points"]) > 300  # backfilled at 10 s steps, not just the live polls
    info = get_json(gpm.api + "/api/info")
    assert info["simulated"] is True
    assert gpm.stop() == 0
