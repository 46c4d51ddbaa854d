"""Per-minute rollup of GPU metrics, so charts over hours or days read minutes, not polls.

``gpu_metrics_1m`` holds, per GPU and UTC minute, the count, min, sum and max of each charted
metric over the ``gpu_metrics`` rows of that minute still in SQLite. The writer upserts it in the
transaction that inserts the raw rows and retention trims it with them, so it always equals an
aggregate of the raw rows. A chart bucket reads whole minutes from the rollup and only the minutes
that a bucket boundary cuts in two from raw rows, so every bucket is exactly what raw rows give.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

TABLE = "gpu_metrics_1m"
MINUTE = 60
METRICS = (
    "utilization_percent",
    "memory_percent",
    "memory_used_bytes",
    "temperature_celsius",
    "power_watts",
)
# SQL over a gpu_metrics row for each metric.
EXPR = {m: m for m in METRICS} | {
    "memory_percent": "100.0 * memory_used_bytes / NULLIF(memory_total_bytes, 0)",
}
PARTS = ("n", "min", "sum", "max")
# The minute of a row, exact: truncating to whole seconds first avoids rounding ts / 60 up.
MINUTE_SQL = "CAST(ts AS INTEGER) / 60"


def column(metric: str, part: str) -> str:
    return f"{metric}_{part}"


def create_sql() -> str:
    # Aggregate columns have no declared type, so integer metrics keep integer min/sum/max.
    cols = ", ".join(column(m, p) for m in METRICS for p in PARTS)
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (gpu_id INTEGER NOT NULL, minute INTEGER NOT NULL,"
        f" {cols}, PRIMARY KEY (gpu_id, minute)) WITHOUT ROWID"
    )


def raw_aggregates(metrics: tuple[str, ...] = METRICS) -> str:
    """COUNT, MIN, SUM, MAX of each metric over gpu_metrics rows (a SELECT list), named like
    the rollup's columns."""
    return ", ".join(
        f"{f}({EXPR[m]}) AS {column(m, p)}"
        for m in metrics
        for f, p in zip(("COUNT", "MIN", "SUM", "MAX"), PARTS, strict=True)
    )


def rollup_aggregates(metrics: tuple[str, ...] = METRICS) -> str:
    """The same four aggregates over rows shaped like the rollup's (a SELECT list)."""
    return ", ".join(
        f"{f}({column(m, p)}) AS {column(m, p)}"
        for m in metrics
        for f, p in zip(("SUM", "MIN", "SUM", "MAX"), PARTS, strict=True)
    )


def _merge(metric: str) -> str:
    n, lo, total, hi = (column(metric, p) for p in PARTS)
    # Scalar MIN/MAX and + give NULL when either side is NULL (a minute without that metric).
    return (
        f"{n} = {n} + excluded.{n}, "
        f"{lo} = COALESCE(MIN({lo}, excluded.{lo}), {lo}, excluded.{lo}), "
        f"{total} = COALESCE({total} + excluded.{total}, {total}, excluded.{total}), "
        f"{hi} = COALESCE(MAX({hi}, excluded.{hi}), {hi}, excluded.{hi})"
    )


_UPSERT = (
    f"INSERT INTO {TABLE} SELECT gpu_id, {MINUTE_SQL} AS minute, {raw_aggregates()}"
    " FROM gpu_metrics WHERE {where} GROUP BY gpu_id, minute"
    " ON CONFLICT (gpu_id, minute) DO UPDATE SET " + ", ".join(_merge(m) for m in METRICS)
)


def last_rowid(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM gpu_metrics").fetchone()[0])


def add_rows_after(conn: sqlite3.Connection, rowid: int) -> None:
    """Fold the gpu_metrics rows inserted after ``rowid`` into the rollup (same transaction)."""
    conn.execute(_UPSERT.format(where="rowid > ?"), (rowid,))


def rebuild(conn: sqlite3.Connection) -> None:
    """Recompute the whole rollup from the raw rows (schema migration)."""
    conn.execute(f"DELETE FROM {TABLE}")
    conn.execute(_UPSERT.format(where="true"))


def trim(conn: sqlite3.Connection, cutoff: float) -> None:
    """After retention deleted raw rows older than ``cutoff``: drop the minutes up to it and
    recount them from the raw rows that stayed (the rest of a cut minute, rows written late)."""
    first_kept = math.ceil(cutoff / MINUTE)
    conn.execute(f"DELETE FROM {TABLE} WHERE minute < ?", (first_kept,))
    conn.execute(_UPSERT.format(where="ts < ?"), (first_kept * MINUTE,))


@dataclass(frozen=True, slots=True)
class Plan:
    """How to read [start, end): minutes [lo, hi) from the rollup except ``split``, which are
    read from raw rows because a bucket boundary or the range's edge falls inside them."""

    lo: int
    hi: int
    split: tuple[int, ...]


def plan(start: float, end: float, origin: float, width: float, points: int | None) -> Plan | None:
    """The rollup plan for buckets ``int((ts - origin) / width)`` (clamped to ``points`` when
    given), or None when buckets are so narrow that raw rows are cheaper."""
    lo, hi = math.floor(start / MINUTE), math.ceil(end / MINUTE)
    if hi <= lo or width < MINUTE:
        return None

    def bucket(x: float) -> int:
        b = int((x - origin) / width)
        return b if points is None else min(max(b, 0), points - 1)

    def whole(m: int) -> bool:
        # Rows of minute m have m*60 <= ts < (m+1)*60, and bucket() never decreases with ts.
        return bucket(m * MINUTE) == bucket(math.nextafter((m + 1) * MINUTE, -math.inf))

    split = set()
    if lo * MINUTE < start:
        split.add(lo)
    if hi * MINUTE > end:
        split.add(hi - 1)
    for k in range(
        int((lo * MINUTE - origin) / width) + 1, int((hi * MINUTE - origin) / width) + 1
    ):
        # The boundary lies in minute ``near``, or in a neighbour when it is within rounding
        # of a minute's edge.
        edge = origin + k * width
        near = math.floor(edge / MINUTE)
        nearby = (near - 1, near, near + 1) if edge % MINUTE < 1 or edge % MINUTE > 59 else (near,)
        split.update(m for m in nearby if lo <= m < hi and not whole(m))
    if 2 * len(split) > hi - lo:
        return None
    return Plan(lo, hi, tuple(sorted(split)))
