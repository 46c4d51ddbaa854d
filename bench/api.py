"""API benchmark: latency and size of the dashboard's reads through the real app over HTTP.

    .venv/bin/python bench/storage.py --keep /tmp/gpm-bench/gpm.db   # 7 days, 8 GPUs
    .venv/bin/python bench/api.py /tmp/gpm-bench/gpm.db

Adds the newest poll (8 GPUs with processes) and 10,000 LLM sessions over the last day with the
real Writer, serves the app the way ``gpm-server`` does (uvicorn on a loopback socket in a child
process, everything read from the database and its archive) and times each route with an httpx
client: p50, p99 and response size (JSON, and gzip on the wire). "query ms" is the storage query
alone in this process, so the rest of p50 is what the API adds (HTTP, serialization, gzip).
Without a path it builds a smaller history itself (``--days``, ``--gpus``) and prints that scale.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storage import DAY, Walk, build

from gpm.model import Classification, GpuProcess, LlmSession, Outcome, Snapshot, Workload
from gpm.storage.queries import Queries
from gpm.storage.writer import Writer

SESSIONS = 10_000
MODELS = ("qwen2:0.5b", "llama3.2:3b", "mistral:7b", "gemma2:9b")
TARGETS_MS = {"realtime": 5.0, "chart 24 h": 50.0, "chart 7 d": 200.0}
MAX_BYTES = 100_000


def prepare(db: Path) -> tuple[float, int]:
    """Add the newest poll and the day's sessions; returns (the clock for the app, GPU count)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        sql = "SELECT MAX(ts), COUNT(DISTINCT gpu_id) FROM gpu_metrics"
        newest, gpus = conn.execute(sql).fetchone()
    now = float(newest) + 2.0
    proc = GpuProcess(
        pid=4242,
        name="ollama",
        gpu_memory_bytes=6 * 2**30,
        user="bench",
        started_at=now - 3600,
        classification=Classification(Workload.LLM_INFERENCE, "cmdline: ollama runner"),
    )
    samples = tuple(replace(Walk(g).sample(g, now), processes=(proc,)) for g in range(gpus))
    rng = random.Random(7)
    writer = Writer(db)
    writer.start()
    writer.add_snapshot(Snapshot(now, "nvml", samples, poll_seconds=0.004))
    for i in range(SESSIONS):
        writer.add_session(
            LlmSession(
                id=f"bench-{i}",  # fixed ids: running the bench again replaces them
                model=MODELS[i % len(MODELS)],
                endpoint="/api/chat",
                started_at=now - DAY + i * DAY / SESSIONS,
                outcome=Outcome.COMPLETED if i % 20 else Outcome.ERROR,
                streamed=True,
                status_code=200,
                prompt_tokens=rng.randint(10, 2000),
                completion_tokens=rng.randint(10, 1000),
                tokens_per_second=rng.uniform(20, 120),
                ttft_ms=rng.uniform(40, 900),
                duration_ms=rng.uniform(500, 20_000),
            )
        )
    assert writer.flush(120), writer.last_error
    writer.close()
    return now, int(gpus)


def serve(db: Path, now: float, port: int) -> None:
    """Child process: the app as gpm-server builds it, clock fixed at the data's end."""
    import uvicorn

    from gpm.api.app import ApiContext, create_app
    from gpm.api.stream import Broadcaster
    from gpm.settings import Config, ServiceConfig, StorageConfig
    from gpm.storage.queries import Queries

    cfg = Config(
        service=ServiceConfig(data_dir=db.parent),
        storage=StorageConfig(archive_dir=db.parent / "archive"),
    )
    ctx = ApiContext(
        config=cfg,
        queries=Queries(db, cfg.storage.archive_dir),
        hub=Broadcaster(),
        clock=lambda: now,
    )
    uvicorn.run(create_app(ctx), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/api/info").is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the API at {base} did not answer within {timeout:g} s")


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]


def measure(
    client: httpx.Client, path: str, n: int, budget: float
) -> tuple[float, float, int, int, int]:
    """(p50 ms, p99 ms, JSON bytes, bytes on the wire, requests) after one warm-up request.

    Up to ``n`` requests, fewer when they exceed ``budget`` seconds in all. The client asks for
    gzip, as browsers do; each time includes reading the whole body."""
    client.get(path).raise_for_status()
    times: list[float] = []
    deadline = time.monotonic() + budget
    while len(times) < n and (len(times) < 2 or time.monotonic() < deadline):
        t0 = time.perf_counter()
        resp = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
    p50, p99 = percentiles(times)
    return p50, p99, len(resp.content), resp.num_bytes_downloaded, len(times)


def query_ms(fn: Callable[[], object], budget: float) -> float:
    """Median time of the storage query alone, in this process: what the API adds is the rest."""
    times: list[float] = []  # the HTTP requests before warmed the page cache
    deadline = time.monotonic() + budget
    while len(times) < 2 or (len(times) < 20 and time.monotonic() < deadline):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", type=Path, nargs="?", help="database made by bench/storage.py --keep")
    ap.add_argument("--days", type=float, default=2.0, help="scale to build without a database")
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=1, help="multiplies the request counts")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per route, at most")
    args = ap.parse_args()

    db = args.db
    if db is None:
        db = Path(tempfile.mkdtemp(prefix="gpm-bench-api-")) / "gpm.db"
        build(db, args.days, args.gpus, 2.0)
        print(f"built {args.days:g} days x {args.gpus} GPUs at 2 s into {db}")
    now, gpus = prepare(db)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM gpu_metrics").fetchone()[0]
        archived = (db.parent / "archive" / "gpu_metrics").is_dir()
    print(
        f"database: {rows:,} GPU rows in SQLite for {gpus} GPUs"
        f"{' plus Parquet archive' if archived else ''}, {SESSIONS:,} sessions in the last day"
    )

    port = free_port()
    child = multiprocessing.get_context("spawn").Process(
        target=serve, args=(db, now, port), daemon=True
    )
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, timeout=60)
        q = Queries(db, db.parent / "archive")
        h = 3600.0
        cases: list[tuple[str, str, int, Callable[[], object] | None]] = [
            ("realtime", "/api/realtime", 200, q.latest_snapshot),
            ("chart 1 h", "/api/chart?gpu_id=0&hours=1", 100, lambda: q.chart(0, now - h, now)),
            ("chart 24 h", "/api/chart?gpu_id=0&hours=24", 50, lambda: q.chart(0, now - DAY, now)),
            (
                "chart 24 h, 300 points",
                "/api/chart?gpu_id=0&hours=24&points=300",
                50,
                lambda: q.chart(0, now - DAY, now, 300),
            ),
            (
                "chart 7 d",
                "/api/chart?gpu_id=0&hours=168",
                20,
                lambda: q.chart(0, now - 7 * DAY, now),
            ),
            (
                "historical 24 h, all GPUs",
                "/api/historical?hours=24",
                20,
                lambda: q.historical(now - DAY, now),
            ),
            (
                "llm-sessions, day of 10,000",
                "/api/llm-sessions",
                100,
                lambda: q.sessions(now - DAY, now),
            ),
            (
                "llm-stats, day of 10,000",
                "/api/llm-stats?hours=24",
                20,
                lambda: q.llm_stats(now - DAY, now),
            ),
        ]
        print(
            f"{'route':28} {'p50 ms':>8} {'p99 ms':>8} {'n':>4} {'query ms':>9} "
            f"{'JSON B':>9} {'gzip B':>8}  target"
        )
        with httpx.Client(base_url=base, timeout=300) as client:
            for name, path, n, fn in cases:
                p50, p99, size, wire, done = measure(client, path, n * args.repeat, args.budget)
                alone = query_ms(fn, args.budget / 2) if fn else float("nan")
                target = TARGETS_MS.get(name)
                verdict = "" if target is None else f"< {target:g} ms: "
                verdict += "" if target is None else ("met" if p50 < target else "MISSED")
                if wire >= MAX_BYTES:
                    verdict += f" over {MAX_BYTES // 1000} KB"
                print(
                    f"{name:28} {p50:8.1f} {p99:8.1f} {done:4} {alone:9.1f} "
                    f"{size:9,} {wire:8,}  {verdict}",
                    flush=True,
                )
        q.close()
    finally:
        child.terminate()
        child.join(10)


if __name__ == "__main__":
    main()
