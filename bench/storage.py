"""Storage benchmark: build a week of history for 8 GPUs and time the paths that matter.

Prints insert throughput, bytes per GPU per day in SQLite and in Parquet, chart, historical and
heatmap query times (ending on a minute edge and mid-minute, as a live ``now`` does), the weekly
summary refresh and retention times, and the writer thread's CPU while keeping up with 8 GPUs
polled every 0.5 s.

    .venv/bin/python bench/storage.py [--days 7] [--gpus 8] [--keep PATH]

``--keep PATH`` leaves the database (and its archive next to it) for the API benchmark.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil

from gpm.model import GpuSample, Snapshot
from gpm.storage.archive import run_retention
from gpm.storage.db import open_database
from gpm.storage.queries import Queries
from gpm.storage.summaries import refresh_weekly_summaries
from gpm.storage.writer import Writer, gpu_row, insert_rows

DAY = 86400.0
START = 1795392000.0  # Monday 2026-11-23 00:00 UTC


class Walk:
    """Plausible, slowly varying readings so that compression figures mean something.

    Memory moves in MiB pages and PCIe rates in KiB/s, as NVML reports them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.util = 50.0
        self.mem = 20e9
        self.pcie = 2**26

    def sample(self, gpu_id: int, ts: float) -> GpuSample:
        r = self.rng
        self.util = min(100.0, max(0.0, self.util + r.gauss(0, 5)))
        if r.random() < 0.1:  # allocations come and go in MiB pages, not every poll
            self.mem = min(80e9, max(1e9, self.mem + r.randint(-200, 200) * 2**20))
        self.pcie = min(2**30, max(0, self.pcie + r.randint(-64, 64) * 2**10))
        return GpuSample(
            gpu_id=gpu_id,
            timestamp=ts,
            uuid=f"GPU-{gpu_id:08x}",
            name="NVIDIA H100 80GB HBM3",
            utilization_percent=round(self.util),
            memory_utilization_percent=round(self.util / 2),
            memory_used_bytes=int(self.mem),
            memory_total_bytes=80 * 10**9,
            memory_free_bytes=80 * 10**9 - int(self.mem),
            temperature_celsius=float(round(40 + self.util / 3)),
            power_watts=round(80 + self.util * 6, 1),
            power_limit_watts=700.0,
            fan_percent=None,
            clock_graphics_mhz=1980,
            clock_sm_mhz=1980,
            clock_memory_mhz=2619,
            performance_state=0,
            encoder_utilization_percent=0.0,
            decoder_utilization_percent=0.0,
            pcie_tx_bytes_per_second=self.pcie,
            pcie_rx_bytes_per_second=self.pcie // 2,
            throttle_reasons=(),
            energy_joules=ts * 300.0,
            ecc_errors_corrected=0,
            ecc_errors_uncorrected=0,
        )


def build(path: Path, days: float, gpus: int, interval: float) -> tuple[int, float]:
    conn = open_database(path)
    walks = [Walk(g) for g in range(gpus)]
    steps = int(days * DAY / interval)
    rows = 0
    elapsed = 0.0
    batch: list[tuple[object, ...]] = []
    for i in range(steps):
        ts = START + i * interval
        batch.extend(gpu_row(walks[g].sample(g, ts)) for g in range(gpus))
        if len(batch) >= 50_000 or i == steps - 1:
            t0 = time.perf_counter()
            with conn:
                insert_rows(conn, "gpu_metrics", batch)
            elapsed += time.perf_counter() - t0
            rows += len(batch)
            batch = []
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return rows, elapsed


def timed(fn: object, *args: object, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def writer_cpu(tmp: Path, gpus: int, seconds: float) -> float:
    """CPU of the writer thread alone, in percent of one core, at 0.5 s polling."""
    w = Writer(tmp / "writer.db", flush_interval=1.0)
    w.start()
    walks = [Walk(100 + g) for g in range(gpus)]
    assert w._thread is not None
    tid = w._thread.native_id

    def cpu() -> float:
        t = next(t for t in psutil.Process().threads() if t.id == tid)
        return float(t.user_time + t.system_time)

    c0, t0 = cpu(), time.monotonic()
    tick = threading.Event()
    n = 0
    while time.monotonic() - t0 < seconds:
        now = time.time()
        w.add_snapshot(
            Snapshot(now, "simulated", tuple(walks[g].sample(g, now) for g in range(gpus)))
        )
        n += 1
        tick.wait(max(0.0, t0 + n * 0.5 - time.monotonic()))
    w.flush()
    used = cpu() - c0
    wall = time.monotonic() - t0
    w.close()
    return 100.0 * used / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--writer-seconds", type=float, default=20.0)
    ap.add_argument("--keep", type=Path, help="build the database here and leave it")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gpm-bench-"))
    db = args.keep or tmp / "gpm.db"
    archive = db.parent / "archive"
    try:
        rows, secs = build(db, args.days, args.gpus, args.interval)
        gpu_days = args.gpus * args.days
        print(f"rows: {rows:,} ({args.gpus} GPUs, {args.days:g} days, {args.interval:g} s poll)")
        print(f"insert throughput: {rows / secs:,.0f} rows/s ({secs:.1f} s)")
        print(f"sqlite: {db.stat().st_size / gpu_days / 1e6:.2f} MB per GPU per day")
        end = START + args.days * DAY
        q = Queries(db, archive)
        for label, stop in (("", end), (", mid-minute end", end - 17.3)):
            for span, name in ((DAY, "24 h"), (7 * DAY, "7 d")):
                ms = timed(q.chart, 0, stop - span, stop, 500)
                print(f"chart {name}, 500 points{label}: {ms:.1f} ms")
        for span, name in ((DAY, "24 h"), (7 * DAY, "7 d")):
            ms = timed(q.historical, end - span, end, None, 500, repeat=3)
            print(f"historical {name}, all GPUs: {ms:.1f} ms")
        print(f"heatmap 7 d: {timed(q.heatmap, 0, end - 7 * DAY, end):.1f} ms")
        conn = open_database(db)
        t0 = time.perf_counter()
        refresh_weekly_summaries(conn, now=end)
        print(f"weekly summary refresh alone: {time.perf_counter() - t0:.1f} s")
        conn.close()
        t0 = time.perf_counter()
        report = run_retention(db, archive, retention_days=args.days - 1, archive=True, now=end)
        secs = time.perf_counter() - t0
        files = [p for p in report.files if p.parent.name == "gpu_metrics"]
        size = sum(p.stat().st_size for p in files)
        print(
            f"archive one day: {report.archived['gpu_metrics']:,} rows in {secs:.1f} s "
            f"(summaries included)"
        )
        print(f"parquet: {size / args.gpus / len(files) / 1e6:.3f} MB per GPU per day")
        print(
            f"chart 7 d over SQLite + archive: "
            f"{timed(q.chart, 0, end - 7 * DAY, end, 500, repeat=2):.1f} ms"
        )
        q.close()
        print(
            f"writer CPU at 0.5 s polling, {args.gpus} GPUs: "
            f"{writer_cpu(tmp, args.gpus, args.writer_seconds):.2f} % of one core"
        )
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
