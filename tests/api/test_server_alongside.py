"""``gpm-server`` beside a writing ``gpm run --demo`` on the same data directory.

Two real processes, one SQLite file in WAL mode: the server follows the writer's polls (realtime,
event stream, LLM sessions) and its reads never hold up the writer.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import GpmProcess, get_json, gpm_env, wait_for

SERVER = "from gpm.cli import server_main; raise SystemExit(server_main())"
DEMO_PID_BASE = 4_000_000  # the simulated GPUs' process ids start here
HAMMER_SECONDS = 4.0


def start_server(p: GpmProcess) -> GpmProcess:
    """Start ``gpm-server`` (its real entry point) with ``p``'s environment and ports."""
    p.log = p.log_path.open("ab")
    p.proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], env=p.env, stdout=p.log, stderr=subprocess.STDOUT
    )
    return p


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def stored_polls(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(DISTINCT ts) FROM gpu_metrics").fetchone()[0])


def make(tmp: Path, name: str) -> GpmProcess:
    """A GpmProcess with its own ports; every one made in ``tmp`` shares ``tmp/data``."""
    env, ports = gpm_env(tmp)
    return GpmProcess(data_dir=tmp / "data", env=env, ports=ports, log_path=tmp / f"{name}.log")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GpmProcess, GpmProcess]]:
    tmp = tmp_path_factory.mktemp("alongside")
    writer = make(tmp, "writer").start("run", "--demo")
    server = make(tmp, "server")
    try:
        writer.wait_ready()
        start_server(server).wait_ready()
        yield writer, server
        assert server.stop() == 0, server.output()
        assert writer.stop() == 0, writer.output()
    finally:
        for p in (server, writer):
            if p.proc is not None and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()


def test_server_follows_the_writer(pair: tuple[GpmProcess, GpmProcess]) -> None:
    writer, server = pair
    # realtime: the server reaches a poll the writer has made, then moves past it
    seen = ts(get_json(writer.api + "/api/realtime")["timestamp"])
    wait_for(
        lambda: ts(get_json(server.api + "/api/realtime")["timestamp"]) >= seen,
        timeout=10,
        what="gpm-server to show the writer's newest poll",
    )
    # the realtime view from the database carries the processes, classified
    snap = get_json(server.api + "/api/realtime")
    assert snap["source"] == "simulated" and len(snap["gpus"]) == 2
    procs = [p for g in snap["gpus"] for p in g["processes"]]
    assert procs and all(p["pid"] >= DEMO_PID_BASE for p in procs)
    assert {p["workload"] for p in procs} <= {
        "gaming",
        "llm_inference",
        "ml_training",
        "general_compute",
    }
    assert any(p["reason"] != "not classified" for p in procs)
    now_procs = get_json(server.api + "/api/processes")["processes"]
    assert now_procs and {p["gpu_id"] for p in now_procs} <= {0, 1}
    # LLM sessions recorded by the writer's proxy show through the server
    sessions = wait_for(
        lambda: get_json(server.api + "/api/llm-sessions")["sessions"],
        timeout=30,
        what="a demo LLM session through gpm-server",
    )
    assert "prompt_text" not in sessions[0] and "response_text" not in sessions[0]
    writer_ids = {
        s["id"] for s in get_json(writer.api + "/api/llm-sessions?limit=1000")["sessions"]
    }
    assert {s["id"] for s in sessions} <= writer_ids


def test_server_streams_new_snapshots(pair: tuple[GpmProcess, GpmProcess]) -> None:
    _, server = pair
    stamps: list[float] = []
    with httpx.stream("GET", server.api + "/api/stream", timeout=15) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.iter_lines()
        for line in lines:
            if line == "event: snapshot":
                data = next(lines)
                assert data.startswith("data: ")
                snap = json.loads(data[len("data: ") :])
                assert len(snap["gpus"]) == 2
                stamps.append(ts(snap["timestamp"]))
                if len(stamps) == 3:
                    break
    assert stamps == sorted(stamps) and len(set(stamps)) == 3, stamps


def test_reads_never_block_the_writer(pair: tuple[GpmProcess, GpmProcess]) -> None:
    writer, server = pair
    db = writer.data_dir / "gpm.db"
    reads = [
        "/api/realtime",
        "/api/chart?gpu_id=0&hours=1",
        "/api/historical?hours=1",
        "/api/llm-sessions?limit=1000",
        "/api/llm-stats",
        "/api/export?table=gpu_metrics&format=csv",
        "/api/info",
    ]

    def hammer(worker: int) -> int:
        done = 0
        with httpx.Client(base_url=server.api, timeout=30) as client:
            deadline = time.monotonic() + HAMMER_SECONDS
            while time.monotonic() < deadline:
                resp = client.get(reads[(worker + done) % len(reads)])
                assert resp.status_code == 200, resp.text
                done += 1
        return done

    polls_before = stored_polls(db)
    first = ts(get_json(writer.api + "/api/realtime")["timestamp"])
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        requests = sum(pool.map(hammer, range(4)))
    elapsed = time.monotonic() - started
    last = ts(get_json(writer.api + "/api/realtime")["timestamp"])
    # the writer is flushed about once a second; give it that long to land the last polls
    expected = (elapsed - 1.5) / 0.5  # polls at 0.5 s
    grown = wait_for(
        lambda: (stored_polls(db) - polls_before) >= expected / 2 or None,
        timeout=5,
        what=f"the writer to store polls while {requests} reads ran",
    )
    assert grown and requests >= 8
    assert last - first >= elapsed / 2, (first, last, elapsed)
    log: str = writer.output()
    assert "cannot write" not in log and "locked" not in log, log
    newest = get_json(server.api + "/api/info")["data_range"]["newest"]
    assert ts(newest) >= first  # the server sees what the writer stored meanwhile
