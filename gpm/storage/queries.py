"""History queries for the API and the CLI, over SQLite and the Parquet archives together.

Time series are downsampled where the data lives (SQL ``GROUP BY`` bucket, Arrow ``group_by``
for archived days) so a query never pulls every row into Python. In SQLite, whole minutes come
from the per-minute rollup and only minutes cut by a bucket boundary from raw rows (see
:mod:`gpm.storage.rollup`). Archives are read only for the part of a range older than what
retention has archived (``meta.archived_before``).

Each thread gets its own read-only connection, so one Queries can serve a thread pool.
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

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
    WeeklySummary,
    Workload,
)
from gpm.storage import archive as arch
from gpm.storage import rollup
from gpm.storage.db import GPU_NUMERIC_COLUMNS, HISTORY_TABLES, open_database
from gpm.storage.pages import Cursor, Page, newest_first
from gpm.storage.rollup import METRICS
from gpm.storage.summaries import DAY, WEEK, summary_from_row, week_day

_NON_GENERATION = ("load", "unload")
_HISTOGRAM_BINS = 10

Dict = dict[str, Any]


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

    def as_dict(self) -> Dict:
        return {"min": self.lo, "avg": self.avg, "max": self.hi}


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


class Queries:
    """Read-only history queries; see the module docstring."""

    def __init__(self, db_path: Path, archive_dir: Path | None) -> None:
        self.db_path = Path(db_path)
        self.archive_dir = archive_dir
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_database(self.db_path, readonly=True)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    # -- archives ---------------------------------------------------------------------------

    def _archived_part(self, start: float, end: float) -> tuple[float, float] | None:
        """The part of [start, end) to read from the archives, if any."""
        if self.archive_dir is None:
            return None
        row = (
            self._conn()
            .execute("SELECT value FROM meta WHERE key = ?", (arch.ARCHIVED_BEFORE,))
            .fetchone()
        )
        if row is None or start >= float(row[0]):
            return None
        return start, min(end, float(row[0]))

    def _archived_dicts(self, table: str, start: float, end: float) -> list[Dict]:
        part = self._archived_part(start, end)
        if part is None or self.archive_dir is None:
            return []
        return arrow_to_dicts(arch.read_archive(self.archive_dir, table, *part), table)

    def iter_rows(
        self, table: str, start: float, end: float, chunk: int = 5000
    ) -> Iterator[list[Dict]]:
        """Every row of a history table in [start, end), oldest first, in chunks (for export)."""
        spec = HISTORY_TABLES[table]
        part = self._archived_part(start, end)
        if part is not None and self.archive_dir is not None:
            for tbl in arch.iter_archive(self.archive_dir, table, *part):
                for batch in tbl.to_batches(chunk):
                    import pyarrow as pa

                    yield arrow_to_dicts(pa.Table.from_batches([batch]), table)
        cols = ", ".join(f'"{c}"' for c in spec.column_names)
        cur = self._conn().execute(
            f"SELECT {cols} FROM {table} WHERE {spec.time_column} >= ? AND "
            f"{spec.time_column} < ? ORDER BY {spec.time_column}",
            (start, end),
        )
        while rows := cur.fetchmany(chunk):
            yield [dict(r) for r in rows]

    # -- now --------------------------------------------------------------------------------

    def latest_snapshot(self) -> Snapshot | None:
        """The newest poll as stored (for gpm-server, which has no live state)."""
        conn = self._conn()
        poll = conn.execute("SELECT * FROM latest_poll WHERE id = 1").fetchone()
        if poll is None:
            return None
        rows = conn.execute(
            "SELECT * FROM gpu_metrics ORDER BY rowid DESC LIMIT ?", (poll["gpu_count"],)
        ).fetchall()
        unknown = {int(x) for x in poll["unknown_processes"].split(",") if x}
        procs: dict[int, list[GpuProcess]] = {}
        for p in conn.execute("SELECT * FROM latest_processes ORDER BY gpu_id, pid"):
            cls = None
            if p["workload"] is not None:
                cls = Classification(
                    workload=Workload(p["workload"]),
                    reason=p["reason"] or "",
                    model=p["model"],
                    steam_app_id=p["steam_app_id"],
                    container=p["container"],
                )
            procs.setdefault(p["gpu_id"], []).append(
                GpuProcess(
                    pid=p["pid"],
                    name=p["name"],
                    gpu_memory_bytes=p["gpu_memory_bytes"],
                    sm_utilization_percent=p["sm_utilization_percent"],
                    kind=p["kind"],
                    user=p["user"],
                    started_at=p["started_at"],
                    classification=cls,
                )
            )
        gpus = tuple(
            _sample(dict(r), None if r["gpu_id"] in unknown else tuple(procs.get(r["gpu_id"], ())))
            for r in sorted(rows, key=lambda r: r["gpu_id"])
        )
        return Snapshot(
            timestamp=poll["ts"],
            source=poll["source"],
            gpus=gpus,
            message=poll["message"],
            poll_seconds=poll["poll_seconds"],
        )

    def data_range(self) -> tuple[float, float] | None:
        """Oldest and newest GPU sample time, archives included."""
        lo, hi = self._conn().execute("SELECT MIN(ts), MAX(ts) FROM gpu_metrics").fetchone()
        if self.archive_dir is not None:
            days = arch.archive_days(self.archive_dir, "gpu_metrics")
            for day in days[:1]:
                first = arch.read_archive(
                    self.archive_dir, "gpu_metrics", day * DAY, (day + 1) * DAY, ["ts"]
                )
                if first.num_rows:
                    oldest = min(t for t in arch.epoch_seconds(first.column("ts")) if t is not None)
                    lo = oldest if lo is None else min(lo, oldest)
            if hi is None and days:
                last = arch.read_archive(
                    self.archive_dir, "gpu_metrics", days[-1] * DAY, (days[-1] + 1) * DAY, ["ts"]
                )
                stamps = [t for t in arch.epoch_seconds(last.column("ts")) if t is not None]
                hi = max(stamps) if stamps else None
        if lo is None or hi is None:
            return None
        return float(lo), float(hi)

    def gpu_ids(self) -> list[tuple[int, str | None, str | None]]:
        """Every GPU id in the database with its newest uuid and name."""
        conn = self._conn()
        out = []
        for gid in self._ids():
            r = conn.execute(
                "SELECT uuid, name FROM gpu_metrics WHERE gpu_id = ? ORDER BY ts DESC LIMIT 1",
                (gid,),
            ).fetchone()
            out.append((int(gid), r[0], r[1]))
        return out

    def _ids(self) -> list[int]:
        """GPU ids in SQLite: a skip-scan of the (gpu_id, ts) index, one seek per GPU."""
        return [
            int(r[0])
            for r in self._conn().execute(
                "WITH RECURSIVE g(id) AS (SELECT MIN(gpu_id) FROM gpu_metrics UNION ALL "
                "SELECT (SELECT MIN(gpu_id) FROM gpu_metrics WHERE gpu_id > g.id) FROM g "
                "WHERE g.id IS NOT NULL) SELECT id FROM g WHERE id IS NOT NULL"
            )
        ]

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

    def chart(self, gpu_id: int, start: float, end: float, points: int = 500) -> Dict:
        """Bucketed min/avg/max per metric plus range stats (``/api/chart``, epoch seconds)."""
        grid = Grid.of(start, end, points)
        buckets = self._buckets(gpu_id, grid).get(gpu_id, {})
        series = [
            {
                "timestamp": grid.origin + b * grid.width,
                **{m: aggs.get(m, _Agg()).as_dict() for m in METRICS},
            }
            for b, aggs in sorted(buckets.items())
        ]
        points = grid.count
        tenth = max(points // 10, 1)
        stats: Dict = {}
        for m in METRICS:
            filled = [(b, a) for b, aggs in buckets.items() if (a := aggs.get(m)) and a.n]
            whole = _Agg.merged([a for _, a in filled])
            last = _Agg.merged([a for b, a in filled if b >= points - tenth])
            prior = _Agg.merged([a for b, a in filled if points - 2 * tenth <= b < points - tenth])
            trend = None
            if last.avg is not None and prior.avg:
                trend = 100.0 * (last.avg - prior.avg) / prior.avg
            stats[m] = {**whole.as_dict(), "trend_percent": trend}
        return {
            "gpu_id": gpu_id,
            "start": start,
            "end": end,
            "bucket_seconds": grid.width,
            "metrics": list(METRICS),
            "points": series,
            "stats": stats,
        }

    def historical(
        self, start: float, end: float, gpu_id: int | None = None, points: int = 500
    ) -> Dict:
        """Bucket averages per GPU (``/api/historical``, epoch seconds)."""
        grid = Grid.of(start, end, points)
        gpus = [
            {
                "gpu_id": g,
                "points": [
                    {
                        "timestamp": grid.origin + b * grid.width,
                        **{m: aggs[m].avg if m in aggs else None for m in METRICS},
                    }
                    for b, aggs in sorted(buckets.items())
                ],
            }
            for g, buckets in sorted(self._buckets(gpu_id, grid).items())
        ]
        return {"start": start, "end": end, "gpus": gpus}

    def heatmap(self, gpu_id: int, start: float, end: float) -> Dict:
        """Average utilization per UTC day and hour (``/api/heatmap``)."""
        metric = "utilization_percent"
        hours = self._aggregate(gpu_id, start, end, 0.0, _HOUR, None, (metric,)).get(gpu_id, {})
        first = datetime.fromtimestamp(max(start, 0.0), UTC).date()
        last = datetime.fromtimestamp(max(end - 1e-3, start), UTC).date()
        days = [str(first + timedelta(days=i)) for i in range((last - first).days + 1)]
        cells = [
            {
                "day": str(date(1970, 1, 1) + timedelta(days=h // 24)),
                "hour": h % 24,
                "utilization_percent": a[metric].avg,
            }
            for h, a in sorted(hours.items())
            if a[metric].n
        ]
        return {"gpu_id": gpu_id, "days": days, "cells": cells}

    # -- events -----------------------------------------------------------------------------

    def _page(
        self,
        table: str,
        start: float,
        end: float,
        equals: dict[str, Any],
        limit: int,
        cursor: Cursor | None,
    ) -> Page:
        """One newest-first page of an event table, SQLite then the archive (see pages.py)."""
        part = self._archived_part(start, end)
        archive = None if part is None or self.archive_dir is None else (self.archive_dir, part[1])
        return newest_first(
            self._conn(), table, (start, end), equals=equals, limit=limit, cursor=cursor,
            archive=archive, to_dicts=arrow_to_dicts,
        )  # fmt: skip

    def sessions(
        self,
        start: float,
        end: float,
        *,
        model: str | None = None,
        limit: int = 100,
        offset: int = 0,
        cursor: Cursor | None = None,
    ) -> tuple[int, list[LlmSession], Cursor | None]:
        """(total in range, one page newest first, the cursor of the next page or None).

        ``offset`` skips rows before the page (for clients that page by offset); ``cursor``
        continues where a page ended, at the cost of one page however far it is.
        """
        equals = {} if model is None else {"model": model}
        page = self._page("llm_sessions", start, end, equals, offset + limit, cursor)
        rows = page.rows[offset:]
        return (
            self._count("llm_sessions", start, end, equals),
            [_session(r) for r in rows],
            page.next,
        )

    def _count(self, table: str, start: float, end: float, equals: dict[str, Any]) -> int:
        """Rows of ``table`` in range (archived ones included) whose columns equal ``equals``."""
        t = HISTORY_TABLES[table].time_column
        where = "".join(f' AND "{c}" = ?' for c in equals)
        (n,) = (
            self._conn()
            .execute(
                f"SELECT COUNT(*) FROM {table} WHERE {t} >= ? AND {t} < ?{where}",
                (start, end, *equals.values()),
            )
            .fetchone()
        )
        part = self._archived_part(start, end)
        if part is None or self.archive_dir is None:
            return int(n)
        columns = [t, *equals]
        archived = arch.read_archive(self.archive_dir, table, *part, columns=columns)
        rows = arrow_to_dicts(archived, table)
        return int(n) + sum(1 for r in rows if all(r[c] == v for c, v in equals.items()))

    def llm_stats(self, start: float, end: float) -> Dict:
        """Totals and per-model percentiles and histograms (``/api/llm-stats`` less ``hours``)."""
        cols = (
            "model",
            "tokens_per_second",
            "ttft_ms",
            "prompt_tokens",
            "completion_tokens",
            "duration_ms",
            "outcome",
            "kind",
        )
        rows = [
            dict(r)
            for r in self._conn().execute(
                f"SELECT {', '.join(cols)} FROM llm_sessions WHERE started_at >= ? AND "
                "started_at < ? AND kind NOT IN (?, ?)",
                (start, end, *_NON_GENERATION),
            )
        ]
        rows += [
            r
            for r in self._archived_dicts("llm_sessions", start, end)
            if r["kind"] not in _NON_GENERATION
        ]
        by_model: dict[str, list[Dict]] = {}
        for r in rows:
            by_model.setdefault(r["model"] or "(unknown)", []).append(r)
        models = [_model_stats(name, rs) for name, rs in sorted(by_model.items())]
        rated = [m for m in models if m["tokens_per_second_p50"] is not None]
        best = max(rated, key=lambda m: m["tokens_per_second_p50"])["model"] if rated else None
        totals = {
            "sessions": len(rows),
            "avg_tokens_per_second": _mean(r["tokens_per_second"] for r in rows),
            "avg_ttft_ms": _mean(r["ttft_ms"] for r in rows),
            "total_tokens": sum(_tokens(r) for r in rows),
            "avg_duration_ms": _mean(r["duration_ms"] for r in rows),
            "best_model": best,
            "errors": sum(_is_error(r) for r in rows),
        }
        return {"totals": totals, "models": models}

    def process_events(
        self,
        start: float,
        end: float,
        *,
        gpu_id: int | None = None,
        limit: int = 500,
        cursor: Cursor | None = None,
    ) -> tuple[list[ProcessEvent], Cursor | None]:
        """One page newest first, and the cursor of the next page or None."""
        equals = {} if gpu_id is None else {"gpu_id": gpu_id}
        page = self._page("process_events", start, end, equals, limit, cursor)
        return [_process_event(r) for r in page.rows], page.next

    def alerts(self, start: float, end: float, limit: int = 500) -> list[Alert]:
        return [
            Alert(
                timestamp=r["ts"],
                rule=r["rule"],
                state=r["state"],
                severity=r["severity"],
                message=r["message"],
                gpu_id=r["gpu_id"],
                value=r["value"],
                threshold=r["threshold"],
            )
            for r in self._page("alerts", start, end, {}, limit, None).rows
        ]

    def model_events(self, start: float, end: float) -> list[ModelEvent]:
        """Model loads and unloads in the range, newest first."""
        return [
            ModelEvent(
                timestamp=r["ts"],
                event=r["event"],
                model=r["model"],
                size_bytes=r["size_bytes"],
                vram_bytes=r["vram_bytes"],
            )
            for r in self._page("model_events", start, end, {}, 10_000, None).rows
        ]

    def weekly_summaries(self, weeks: int, *, now: float | None = None) -> list[WeeklySummary]:
        """Summaries of the last ``weeks`` ISO weeks (this one included), newest week first."""
        ref = now if now is not None else datetime.now(UTC).timestamp()
        since = week_day(ref) * DAY - (weeks - 1) * WEEK
        return [
            summary_from_row(r)
            for r in self._conn().execute(
                "SELECT * FROM weekly_summaries WHERE week_start >= ? "
                "ORDER BY week_start DESC, gpu_id IS NULL, gpu_id, model",
                (since,),
            )
        ]


# -- helpers --------------------------------------------------------------------------------------


def arrow_to_dicts(tbl: Any, table: str) -> list[Dict]:
    """Archived rows as dicts with epoch-second times, like the SQLite rows."""
    spec = HISTORY_TABLES[table]
    cols: dict[str, list[Any]] = {}
    for name in tbl.column_names:
        col = tbl.column(name)
        cols[name] = arch.epoch_seconds(col) if name in spec.timestamps else col.to_pylist()
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


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


def _sample(r: Dict, processes: tuple[GpuProcess, ...] | None) -> GpuSample:
    throttle = r["throttle_reasons"]
    return GpuSample(
        gpu_id=r["gpu_id"],
        timestamp=r["ts"],
        uuid=r["uuid"],
        name=r["name"],
        simulated=bool(r["simulated"]),
        up=bool(r["up"]),
        error=r["error"],
        throttle_reasons=None if throttle is None else tuple(x for x in throttle.split(",") if x),
        processes=processes,
        **{name: r[name] for name, _ in GPU_NUMERIC_COLUMNS},
    )


def _session(r: Dict) -> LlmSession:
    fields = {k: v for k, v in r.items() if k in HISTORY_TABLES["llm_sessions"].column_names}
    fields["outcome"] = Outcome(r["outcome"])
    fields["streamed"] = bool(r["streamed"])
    return LlmSession(**fields)


def _process_event(r: Dict) -> ProcessEvent:
    fields = {k: v for k, v in r.items() if k not in ("ts", "event", "workload")}
    return ProcessEvent(
        timestamp=r["ts"], event=r["event"], workload=Workload(r["workload"]), **fields
    )


def _tokens(r: Dict) -> int:
    return int((r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0))


def _is_error(r: Dict) -> bool:
    return r["outcome"] in (Outcome.ERROR.value, Outcome.REJECTED.value)


def _mean(values: Iterator[Any] | Any) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of values; None when empty."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def histogram(values: list[float], bins: int = _HISTOGRAM_BINS) -> Dict:
    """Equal-width bins from 0 to the maximum: ``{"edges": [...], "counts": [...]}``."""
    if not values:
        return {"edges": [], "counts": []}
    top = max(max(values), 1e-9)
    width = top / bins
    counts = [0] * bins
    for v in values:
        counts[min(int(max(v, 0.0) / width), bins - 1)] += 1
    return {"edges": [i * width for i in range(bins + 1)], "counts": counts}


def _model_stats(name: str, rows: list[Dict]) -> Dict:
    tps = [r["tokens_per_second"] for r in rows if r["tokens_per_second"] is not None]
    ttft = [r["ttft_ms"] for r in rows if r["ttft_ms"] is not None]
    return {
        "model": name,
        "sessions": len(rows),
        "tokens_per_second_p50": percentile(tps, 50),
        "tokens_per_second_p95": percentile(tps, 95),
        "ttft_ms_p50": percentile(ttft, 50),
        "ttft_ms_p95": percentile(ttft, 95),
        "total_tokens": sum(_tokens(r) for r in rows),
        "errors": sum(_is_error(r) for r in rows),
        "tokens_per_second_histogram": histogram(tps),
        "ttft_ms_histogram": histogram(ttft),
    }
