"""The per-minute rollup: charts read through it give exactly what the raw rows give."""

from __future__ import annotations

import math
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gpm.model import GpuSample
from gpm.storage import rollup
from gpm.storage.archive import run_retention
from gpm.storage.db import SCHEMA_VERSION, open_database
from gpm.storage.queries import Queries
from gpm.storage.rollup import METRICS
from gpm.storage.series import Grid
from gpm.storage.writer import Writer, gpu_row

from .helpers import DAY, HOUR, MONDAY, fill, sample

GPUS = (0, 1, 3)


def _samples(rng: random.Random, start: float, seconds: float) -> list[GpuSample]:
    """Polls about every 2 s with gaps, on whole or half seconds (exact in Parquet's ms)."""
    out = []
    ts = start
    while ts < start + seconds:
        for g in GPUS:
            if rng.random() < 0.05:
                continue  # a missed poll
            out.append(
                sample(
                    g,
                    ts,
                    util=None if rng.random() < 0.1 else float(rng.randint(0, 100)),
                    memory_used_bytes=rng.randint(0, 80 * 2**30),
                    memory_total_bytes=0 if rng.random() < 0.02 else 80 * 2**30,
                    temperature_celsius=rng.uniform(30, 90),
                    power_watts=None if rng.random() < 0.1 else rng.uniform(50, 700),
                )
            )
        ts += rng.choice((1.5, 2.0, 2.0, 2.5, 30.0))
    return out


def _value(s: GpuSample, metric: str) -> Any:
    if metric == "memory_percent":
        used, total = s.memory_used_bytes, s.memory_total_bytes
        return None if used is None or not total else 100.0 * used / total
    return getattr(s, metric)


def _reference(
    samples: list[GpuSample], gpu_id: int, start: float, end: float, points: int
) -> dict[int, dict[str, tuple[int, Any, float, Any]]]:
    """(count, min, sum, max) per bucket of the chart's grid and metric, straight from the
    samples in Python."""
    grid = Grid.of(start, end, points)
    out: dict[int, dict[str, list[Any]]] = {}
    for s in samples:
        if s.gpu_id != gpu_id or not start <= s.timestamp < end:
            continue
        b = min(max(int((s.timestamp - grid.origin) / grid.width), 0), grid.count - 1)
        per = out.setdefault(b, {m: [0, None, 0.0, None] for m in METRICS})
        for m in METRICS:
            v = _value(s, m)
            if v is None:
                continue
            a = per[m]
            a[0] += 1
            a[1] = v if a[1] is None else min(a[1], v)
            a[2] += v
            a[3] = v if a[3] is None else max(a[3], v)
    return {b: {m: (a[0], a[1], a[2], a[3]) for m, a in per.items()} for b, per in out.items()}


def _assert_chart_matches(
    q: Queries, samples: list[GpuSample], gpu_id: int, start: float, end: float, points: int
) -> None:
    chart = q.chart(gpu_id, start, end, points)
    ref = _reference(samples, gpu_id, start, end, points)
    grid = Grid.of(start, end, points)
    assert grid.count <= points
    assert chart.bucket_seconds == grid.width
    want_times = [grid.origin + b * grid.width for b in sorted(ref)]
    assert [p.timestamp for p in chart.points] == want_times
    for p in chart.points:
        want = ref[round((p.timestamp - grid.origin) / grid.width)]
        for m in METRICS:
            n, lo, total, hi = want[m]
            got = p.metrics[m]
            assert (got.min, got.max) == (lo, hi), (m, p.timestamp)
            assert got.avg == (pytest.approx(total / n, rel=1e-12) if n else None)


def _rollup_rows(path: Path, level: rollup.Level) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT * FROM {level.table} ORDER BY 1, 2").fetchall()
    finally:
        conn.close()


def _rebuilt(path: Path, level: rollup.Level) -> list[tuple[Any, ...]]:
    """What a rollup should hold: the raw rows aggregated from scratch."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"CREATE TEMP TABLE fresh AS SELECT * FROM {level.table} WHERE false")
        conn.execute(
            f"INSERT INTO fresh SELECT gpu_id, {level.period_sql} AS period, "
            f"{rollup.raw_aggregates()} FROM gpu_metrics GROUP BY gpu_id, period"
        )
        return conn.execute("SELECT * FROM fresh ORDER BY 1, 2").fetchall()
    finally:
        conn.close()


def _same_rollup(path: Path) -> None:
    for level in rollup.LEVELS:
        have, want = _rollup_rows(path, level), _rebuilt(path, level)
        assert have and [r[:2] for r in have] == [r[:2] for r in want]
        for a, b in zip(have, want, strict=True):
            for x, y in zip(a, b, strict=True):  # sums may differ in the last bit (order)
                assert x == (y if y is None else pytest.approx(y, rel=1e-12)), (a, b)


def _ranges(rng: random.Random, lo: float, hi: float) -> list[tuple[float, float, int]]:
    """Chart ranges with unaligned edges and buckets from one minute up to about an hour."""
    out = [(lo, hi, 500), (lo + 0.25, hi - 17.5, 37)]
    for _ in range(6):
        a = rng.uniform(lo - 600, hi - 3600)
        b = rng.uniform(a + 3600, hi + 600)
        out.append((a, b, rng.choice((3, 7, 60, 100, 500))))
    return out


def test_rollup_chart_equals_raw_rows_on_random_data(tmp_path: Path) -> None:
    rng = random.Random(7)
    db = tmp_path / "gpm.db"
    samples = _samples(rng, MONDAY + 13.5, 6 * HOUR)
    for i in range(0, len(samples), 997):  # batches that end mid-minute: upserts must merge
        fill(db, samples=samples[i : i + 997])
    _same_rollup(db)
    q = Queries(db, None)
    planned = 0
    for start, end, points in _ranges(rng, MONDAY, MONDAY + 6 * HOUR):
        planned += rollup.plan(start, end, start, (end - start) / points) is not None
        for g in GPUS:
            _assert_chart_matches(q, samples, g, start, end, points)
    assert planned >= 5  # most ranges went through the rollup
    # Buckets narrower than a minute take the raw path and agree as well.
    _assert_chart_matches(q, samples, 1, MONDAY + 100.5, MONDAY + 1300, 500)
    q.close()


def test_heatmap_and_historical_through_the_rollup(tmp_path: Path) -> None:
    rng = random.Random(11)
    db = tmp_path / "gpm.db"
    samples = _samples(rng, MONDAY - 600, 5 * HOUR)
    fill(db, samples=samples)
    q = Queries(db, None)
    start, end = MONDAY + 7.5, MONDAY + 4 * HOUR + 1234.5
    cells = q.heatmap(1, start, end).cells
    hours: dict[int, list[float]] = {}
    for s in samples:
        if s.gpu_id == 1 and start <= s.timestamp < end and s.utilization_percent is not None:
            hours.setdefault(int(s.timestamp // HOUR), []).append(s.utilization_percent)
    assert [(str(c.day), c.hour) for c in cells] == [("2026-11-23", h % 24) for h in sorted(hours)]
    for c, h in zip(cells, sorted(hours), strict=True):
        assert c.utilization_percent == pytest.approx(sum(hours[h]) / len(hours[h]))
    hist = q.historical(start, end, points=50)
    assert [g.gpu_id for g in hist.gpus] == list(GPUS)
    ref = _reference(samples, 3, start, end, 50)
    got = hist.gpus[2].points
    assert len(got) == len(ref)
    for p, (_, per) in zip(got, sorted(ref.items()), strict=True):
        n, _, total, _ = per["power_watts"]
        assert p.averages["power_watts"] == (pytest.approx(total / n) if n else None)
    q.close()


def test_writer_keeps_the_rollup_in_step(tmp_path: Path) -> None:
    from gpm.model import Snapshot

    db = tmp_path / "gpm.db"
    w = Writer(db, flush_interval=0.05)
    w.start()
    try:
        for i in range(200):
            ts = MONDAY + i * 0.7
            w.add_snapshot(Snapshot(ts, "simulated", (sample(0, ts, util=float(i % 97)),)))
            if i % 50 == 0:
                assert w.flush()
        assert w.flush()
    finally:
        w.close()
    rows = _rollup_rows(db, rollup.MINUTES)
    assert sum(r[2] for r in rows) == 200  # utilization_percent_n over every minute
    _same_rollup(db)


def test_migration_builds_the_rollup_from_existing_rows(tmp_path: Path) -> None:
    rng = random.Random(3)
    db = tmp_path / "gpm.db"
    samples = _samples(rng, MONDAY, 2 * HOUR)
    # A version 2 database: raw rows, the old index, no rollup.
    open_database(db).close()
    conn = sqlite3.connect(db)
    conn.executescript(
        "DROP TABLE gpu_metrics_1m; DROP TABLE gpu_metrics_10s;"
        "DROP INDEX gpu_metrics_gpu_ts_values;"
        "CREATE INDEX gpu_metrics_gpu_ts ON gpu_metrics (gpu_id, ts); PRAGMA user_version = 2;"
    )
    marks = ", ".join("?" * len(gpu_row(samples[0])))
    with conn:
        conn.executemany(f"INSERT INTO gpu_metrics VALUES ({marks})", map(gpu_row, samples))
    conn.close()
    with pytest.raises(Exception, match="gpm run"):
        Queries(db, None).chart(0, MONDAY, MONDAY + HOUR)  # gpm-server cannot read it yet
    conn = open_database(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "gpu_metrics_gpu_ts" not in indexes and "gpu_metrics_gpu_ts_values" in indexes
    conn.close()
    _same_rollup(db)
    q = Queries(db, None)
    _assert_chart_matches(q, samples, 0, MONDAY + 33.5, MONDAY + 2 * HOUR - 1, 77)
    q.close()


def test_rollup_chart_across_the_archive_boundary(tmp_path: Path) -> None:
    rng = random.Random(5)
    db, arch = tmp_path / "gpm.db", tmp_path / "archive"
    samples = _samples(rng, MONDAY + DAY - 3 * HOUR, 6 * HOUR)
    fill(db, samples=samples)
    # A cutoff in the middle of a minute: half of that minute is archived, half stays.
    cutoff = MONDAY + DAY + 1234.5
    report = run_retention(db, arch, retention_days=1, archive=True, now=cutoff + DAY)
    assert report.archived["gpu_metrics"] > 0 and (arch / "gpu_metrics").is_dir()
    _same_rollup(db)
    for level in rollup.LEVELS:  # nothing older than the cut period is left
        assert _rollup_rows(db, level)[0][1] >= math.floor(cutoff / level.seconds)
    q = Queries(db, arch)
    for start, end, points in _ranges(rng, MONDAY + DAY - 3 * HOUR, MONDAY + DAY + 3 * HOUR):
        _assert_chart_matches(q, samples, 1, start, end, points)
    q.close()


def test_plan_reads_raw_rows_only_where_a_boundary_cuts_a_minute() -> None:
    # 24 h in 500 buckets of 172.8 s: one cut minute per boundary, the edges are whole minutes.
    start = MONDAY
    p = rollup.plan(start, start + DAY, start, DAY / 500)
    assert p is not None and (p.lo, p.hi) == (start / 60, (start + DAY) / 60)
    assert 0 < len(p.cut) <= 499 and len(p.raw) == len(p.cut)  # one cut slot per cut minute
    assert len(p.slots) == 5 * len(p.cut)
    # Hourly heatmap buckets fall on minute edges: nothing to read raw.
    p = rollup.plan(start + 7.5, start + 5 * HOUR, 0.0, HOUR)
    assert p is not None and p.cut == (start / 60,)
    assert p.raw == (start / 10,) and len(p.slots) == 5
    # Buckets under a minute wide: raw rows only.
    assert rollup.plan(start, start + 600, start, 10.0) is None


@pytest.mark.parametrize(
    ("hours", "points", "width", "snapped"),
    [(24, 500, 180.0, True), (168, 500, 1260.0, True), (1, 500, 7.2, False), (1, 60, 60.0, False)],
)
def test_chart_grid_snaps_wide_buckets_to_whole_minutes(
    hours: int, points: int, width: float, snapped: bool
) -> None:
    start = MONDAY + 17.25  # not on a minute
    grid = Grid.of(start, start + hours * HOUR, points)
    assert grid.width == pytest.approx(width)
    assert grid.count <= points
    assert grid.origin + grid.count * grid.width >= grid.end
    if snapped:
        assert grid.origin % 60 == 0 and grid.origin <= start < grid.origin + 60
    else:
        assert grid.origin == start and grid.count == points
