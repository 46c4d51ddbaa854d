"""Time series: charts, per-GPU history and the hourly heatmap, downsampled where the data lives.

SQL ``GROUP BY`` bucket in SQLite, Arrow ``group_by`` for archived days, so a query never pulls
every row into Python. In SQLite, whole minutes come from the per-minute rollup and only minutes
cut by a bucket boundary from raw rows (see :mod:`gpm.storage.rollup`).
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gpm.storage import archive as arch
from gpm.storage import rollup
from gpm.storage.reader import Reader
from gpm.storage.results import (
    Chart,
    ChartBucket,
    GpuHistory,
    Heatmap,
    HeatmapCell,
    History,
    HistoryPoint,
    RangeStats,
    Spread,
)
from gpm.storage.rollup import METRICS


@dataclass(slots=True)
class _Agg:
    """Count, min, sum and max of one metric in one bucket; merges across sources."""

    n: int = 0
    lo: float | None = None
    total: float = 0.0
    hi: float | None = None

    def add(self, n: int, lo: Any, total: Any, hi: Any) -> None:
        if not n:
            return
        self.n += n
        self.total += total
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)

    @classmethod
    def merged(cls, aggs: list[_Agg]) -> _Agg:
        """One aggregate of non-empty ones (a whole range's stats from its buckets)."""
        if not aggs:
            return cls()
        return cls(
            sum(a.n for a in aggs),
            min(a.lo for a in aggs if a.lo is not None),
            sum(a.total for a in aggs),
            max(a.hi for a in aggs if a.hi is not None),
        )

    @property
    def avg(self) -> float | None:
        return self.total / self.n if self.n else None

    def spread(self) -> Spread:
        return Spread(self.lo, self.avg, self.hi)


Buckets = dict[int, dict[int, dict[str, _Agg]]]  # gpu_id -> bucket -> metric -> aggregate
_HOUR = 3600.0


_MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Grid:
    """The buckets of a chart: ``count`` buckets of ``width`` seconds from ``origin``."""

    start: float
    end: float
    origin: float
    width: float
    count: int

    @classmethod
    def of(cls, start: float, end: float, points: int) -> Grid:
        """At most ``points`` buckets over [start, end). Buckets of a minute or more are widened
        to whole minutes on minute boundaries (as a Grafana step would be), so that they are
        read from the minute rollup alone instead of being cut mid-minute; when that would need
        more than ``points`` buckets, the plain grid from ``start`` is kept."""
        width = (end - start) / points
        if width > _MINUTE:
            snapped = math.ceil(width / _MINUTE) * _MINUTE
            origin = math.floor(start / _MINUTE) * _MINUTE
            count = math.ceil((end - origin) / snapped)
            if count <= points:
                return cls(start, end, origin, snapped, count)
        return cls(start, end, start, width, points)


class SeriesQueries(Reader):
    """The time-series queries."""

    # -- time series ------------------------------------------------------------------------

    def _buckets(self, gpu_id: int | None, grid: Grid) -> Buckets:
        return self._aggregate(
            gpu_id, grid.start, grid.end, grid.origin, grid.width, grid.count, METRICS
        )

    def _aggregate(
        self,
        gpu_id: int | None,
        start: float,
        end: float,
        origin: float,
        width: float,
        points: int | None,
        metrics: tuple[str, ...],
    ) -> Buckets:
        """Count, min, sum and max per GPU, bucket ``int((ts - origin) / width)`` (clamped to
        ``points`` when given) and metric, over rows in [start, end) of SQLite and archives."""
        out: Buckets = {}
        last = None if points is None else points - 1
        rows: Iterable[Sequence[Any]] = self._sqlite_buckets(
            gpu_id, start, end, origin, width, points, metrics
        )
        part = self._archived_part(start, end)
        if part is not None and self.archive_dir is not None:
            older = _archive_buckets(self.archive_dir, gpu_id, part, origin, width, metrics)
            rows = itertools.chain(rows, older)
        for r in rows:
            b = int(r[1]) if last is None else min(max(int(r[1]), 0), last)
            per = out.setdefault(int(r[0]), {})
            aggs = per.get(b)
            if aggs is None:  # the common case: one row per bucket, built without merging
                per[b] = {
                    m: _Agg(r[k], r[k + 1], r[k + 2] or 0.0, r[k + 3])
                    for m, k in zip(metrics, range(2, 2 + 4 * len(metrics), 4), strict=True)
                }
            else:
                for i, m in enumerate(metrics):
                    aggs[m].add(*r[2 + 4 * i : 6 + 4 * i])
        return out

    def _sqlite_buckets(
        self,
        gpu_id: int | None,
        start: float,
        end: float,
        origin: float,
        width: float,
        points: int | None,
        metrics: tuple[str, ...],
    ) -> list[sqlite3.Row]:
        """Rows (gpu_id, bucket, then count, min, sum, max per metric) from SQLite."""
        if gpu_id is None:  # one indexed pass per GPU: the rollups' keys lead with gpu_id
            return [
                row
                for g in self._ids()
                for row in self._sqlite_buckets(g, start, end, origin, width, points, metrics)
            ]
        gpu = (" AND gpu_id = ?", (gpu_id,))
        raw = f"gpu_id, CAST((ts - ?) / ? AS INTEGER) AS b, {rollup.raw_aggregates(metrics)}"
        plan = rollup.plan(start, end, origin, width)
        if plan is None:
            sql = (
                f"SELECT {raw} FROM gpu_metrics WHERE ts >= ? AND ts < ?{gpu[0]} GROUP BY gpu_id, b"
            )
            return self._conn().execute(sql, (origin, width, start, end, *gpu[1])).fetchall()
        minutes, slots = rollup.MINUTES, rollup.SLOTS

        def period(level: rollup.Level) -> str:
            return (
                f"SELECT gpu_id, CAST(({level.key} * {level.seconds} - ?) / ? AS INTEGER) AS b, "
                f"{rollup.rollup_aggregates(metrics)} FROM {level.table} "
            )

        whole = (
            f"{period(minutes)} WHERE minute >= ? AND minute < ?{gpu[0]} "
            "AND minute NOT IN (SELECT value FROM json_each(?)) GROUP BY gpu_id, b"
        )
        part = (
            f"{period(slots)} WHERE slot IN (SELECT value FROM json_each(?)){gpu[0]} "
            "GROUP BY gpu_id, b"
        )
        # CROSS JOIN keeps the cut slots as the outer loop, and the range bounds sit inside
        # each slot's bounds, so the index is searched once per slot, never over the range.
        cut = (
            f"SELECT {raw} FROM json_each(?) AS j CROSS JOIN gpu_metrics "
            f"ON ts >= MAX(j.value * {slots.seconds}, ?) "
            f"AND ts < MIN((j.value + 1) * {slots.seconds}, ?){gpu[0]} GROUP BY gpu_id, b"
        )
        conn = self._conn()
        # Three queries, merged in Python: a UNION ALL with an outer GROUP BY costs more in SQLite.
        rows = conn.execute(
            whole, (origin, width, plan.lo, plan.hi, *gpu[1], json.dumps(plan.cut))
        ).fetchall()
        rows += conn.execute(part, (origin, width, json.dumps(plan.slots), *gpu[1])).fetchall()
        rows += conn.execute(
            cut, (origin, width, json.dumps(plan.raw), start, end, *gpu[1])
        ).fetchall()
        return rows

    def chart(self, gpu_id: int, start: float, end: float, points: int = 500) -> Chart:
        """Bucketed min/avg/max per metric plus range stats (``/api/chart``)."""
        grid = Grid.of(start, end, points)
        buckets = self._buckets(gpu_id, grid).get(gpu_id, {})
        series = tuple(
            ChartBucket(
                grid.origin + b * grid.width, {m: aggs.get(m, _Agg()).spread() for m in METRICS}
            )
            for b, aggs in sorted(buckets.items())
        )
        count = grid.count
        tenth = max(count // 10, 1)
        stats: dict[str, RangeStats] = {}
        for m in METRICS:
            filled = [(b, a) for b, aggs in buckets.items() if (a := aggs.get(m)) and a.n]
            whole = _Agg.merged([a for _, a in filled])
            last = _Agg.merged([a for b, a in filled if b >= count - tenth])
            prior = _Agg.merged([a for b, a in filled if count - 2 * tenth <= b < count - tenth])
            trend = None
            if last.avg is not None and prior.avg:
                trend = 100.0 * (last.avg - prior.avg) / prior.avg
            stats[m] = RangeStats(whole.lo, whole.avg, whole.hi, trend)
        return Chart(gpu_id, start, end, grid.width, tuple(METRICS), series, stats)

    def historical(
        self, start: float, end: float, gpu_id: int | None = None, points: int = 500
    ) -> History:
        """Bucket averages per GPU (``/api/historical``)."""
        grid = Grid.of(start, end, points)
        gpus = tuple(
            GpuHistory(
                g,
                tuple(
                    HistoryPoint(
                        grid.origin + b * grid.width,
                        {m: aggs[m].avg if m in aggs else None for m in METRICS},
                    )
                    for b, aggs in sorted(buckets.items())
                ),
            )
            for g, buckets in sorted(self._buckets(gpu_id, grid).items())
        )
        return History(start, end, gpus)

    def heatmap(self, gpu_id: int, start: float, end: float) -> Heatmap:
        """Average utilization per UTC day and hour (``/api/heatmap``)."""
        metric = "utilization_percent"
        hours = self._aggregate(gpu_id, start, end, 0.0, _HOUR, None, (metric,)).get(gpu_id, {})
        first = datetime.fromtimestamp(max(start, 0.0), UTC).date()
        last = datetime.fromtimestamp(max(end - 1e-3, start), UTC).date()
        days = tuple(first + timedelta(days=i) for i in range((last - first).days + 1))
        cells = tuple(
            HeatmapCell(date(1970, 1, 1) + timedelta(days=h // 24), h % 24, a[metric].avg)
            for h, a in sorted(hours.items())
            if a[metric].n
        )
        return Heatmap(gpu_id, days, cells)


def _archive_buckets(
    archive_dir: Path,
    gpu_id: int | None,
    part: tuple[float, float],
    origin: float,
    width: float,
    metrics: tuple[str, ...] = METRICS,
) -> Iterator[tuple[Any, ...]]:
    """(gpu_id, bucket, then count, min, sum, max per metric) of archived rows, grouped by
    Arrow: the shape of the SQLite rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # The charted stored readings, and what memory_percent (derived) is computed from.
    stored = [m for m in metrics if m != "memory_percent"]
    cols = list(dict.fromkeys(["ts", "gpu_id", "memory_used_bytes", "memory_total_bytes", *stored]))
    for tbl in arch.iter_archive(archive_dir, "gpu_metrics", *part, columns=cols):
        if gpu_id is not None:
            tbl = tbl.filter(pc.equal(tbl.column("gpu_id"), gpu_id))
        seconds = pc.divide(pc.cast(tbl.column("ts"), pa.int64()).cast(pa.float64()), 1000.0)
        bucket = pc.cast(pc.floor(pc.divide(pc.subtract(seconds, origin), width)), pa.int64())
        total = pc.cast(tbl.column("memory_total_bytes"), pa.float64())
        mem_pct = pc.divide(
            pc.multiply(pc.cast(tbl.column("memory_used_bytes"), pa.float64()), 100.0),
            pc.if_else(pc.equal(total, 0.0), None, total),
        )
        t = pa.table(
            {
                "gpu_id": tbl.column("gpu_id"),
                "b": bucket,
                "memory_percent": mem_pct,
                **{m: tbl.column(m) for m in metrics if m != "memory_percent"},
            }
        )
        grouped = (
            t.group_by(["gpu_id", "b"])
            .aggregate([(m, f) for m in metrics for f in ("count", "min", "sum", "max")])
            .to_pylist()
        )
        for g in grouped:
            yield (
                g["gpu_id"],
                g["b"],
                *(g[f"{m}_{f}"] for m in metrics for f in ("count", "min", "sum", "max")),
            )
