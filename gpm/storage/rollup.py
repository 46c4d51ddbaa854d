"""Rollups of GPU metrics, so charts over hours or days read minutes, not polls.

``gpu_metrics_1m`` holds, per GPU and UTC minute, the count, min, sum and max of each charted
metric over the ``gpu_metrics`` rows of that minute still in SQLite; ``gpu_metrics_10s`` holds the
same per 10-second slot. The writer upserts both in the transaction that inserts the raw rows
and retention trims them with those rows, so they always equal an aggregate of the raw rows. A
chart bucket reads whole minutes from the minute rollup; in a minute that a bucket boundary cuts
in two it reads whole slots from the 10-second rollup, and only the cut slot from raw rows, so
every bucket is exactly what raw rows give.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from gpm import catalog


@dataclass(frozen=True, slots=True)
class Level:
    """One rollup table: rows per GPU and ``seconds``-long period, numbered by ``key``."""

    table: str
    key: str
    seconds: int

    @property
    def period_sql(self) -> str:
        # Exact: truncating to whole seconds first avoids rounding ts / seconds up.
        return f"CAST(ts AS INTEGER) / {self.seconds}"


MINUTES = Level("gpu_metrics_1m", "minute", 60)
SLOTS = Level("gpu_metrics_10s", "slot", 10)
LEVELS = (MINUTES, SLOTS)
TABLES = tuple(level.table for level in LEVELS)
MINUTE = MINUTES.seconds
METRICS = catalog.CHARTED
# SQL over a gpu_metrics row for each metric: its column, or a derived reading's expression.
EXPR = {m: catalog.BY_NAME[m].sql or m for m in METRICS}
PARTS = ("n", "min", "sum", "max")


def column(metric: str, part: str) -> str:
    return f"{metric}_{part}"


def create_sql(level: Level) -> str:
    # Aggregate columns have no declared type, so integer metrics keep integer min/sum/max.
    cols = ", ".join(column(m, p) for m in METRICS for p in PARTS)
    return (
        f"CREATE TABLE IF NOT EXISTS {level.table} (gpu_id INTEGER NOT NULL, "
        f"{level.key} INTEGER NOT NULL, {cols}, PRIMARY KEY (gpu_id, {level.key})) WITHOUT ROWID"
    )


def add_missing_columns(conn: sqlite3.Connection) -> None:
    """A reading newly charted: its columns join the rollups (its count 0 in every old row, so
    merging into an old row works)."""
    for level in LEVELS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({level.table})")}
        for m in METRICS:
            for p in PARTS:
                if column(m, p) not in have:
                    default = " NOT NULL DEFAULT 0" if p == "n" else ""
                    conn.execute(f"ALTER TABLE {level.table} ADD COLUMN {column(m, p)}{default}")


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


def _upsert(level: Level, where: str) -> str:
    cols = ", ".join(column(m, p) for m in METRICS for p in PARTS)
    return (
        f"INSERT INTO {level.table} (gpu_id, {level.key}, {cols}) "
        f"SELECT gpu_id, {level.period_sql} AS period, "
        f"{raw_aggregates()} FROM gpu_metrics WHERE {where} GROUP BY gpu_id, period "
        f"ON CONFLICT (gpu_id, {level.key}) DO UPDATE SET " + ", ".join(_merge(m) for m in METRICS)
    )


def last_rowid(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM gpu_metrics").fetchone()[0])


def add_rows_after(conn: sqlite3.Connection, rowid: int) -> None:
    """Fold the gpu_metrics rows inserted after ``rowid`` into the rollups (same transaction)."""
    for level in LEVELS:
        conn.execute(_upsert(level, "rowid > ?"), (rowid,))


def rebuild(conn: sqlite3.Connection) -> None:
    """Recompute the rollups from the raw rows (schema migration)."""
    for level in LEVELS:
        conn.execute(f"DELETE FROM {level.table}")
        conn.execute(_upsert(level, "true"))


def trim(conn: sqlite3.Connection, cutoff: float) -> None:
    """After retention deleted raw rows older than ``cutoff``: drop the periods up to it and
    recount them from the raw rows that stayed (the rest of a cut period, rows written late)."""
    for level in LEVELS:
        first_kept = math.ceil(cutoff / level.seconds)
        conn.execute(f"DELETE FROM {level.table} WHERE {level.key} < ?", (first_kept,))
        conn.execute(_upsert(level, "ts < ?"), (first_kept * level.seconds,))


@dataclass(frozen=True, slots=True)
class Plan:
    """How to read [start, end): minutes [lo, hi) from the minute rollup except ``cut``; within
    those, the 10-second ``slots`` from the slot rollup and ``raw`` slots from raw rows, because
    a bucket boundary or the range's edge falls inside them."""

    lo: int
    hi: int
    cut: tuple[int, ...]
    slots: tuple[int, ...]
    raw: tuple[int, ...]


def plan(start: float, end: float, origin: float, width: float) -> Plan | None:
    """The rollup plan for buckets ``int((ts - origin) / width)`` (callers may clamp them), or
    None when buckets are so narrow that raw rows are cheaper."""
    lo, hi = math.floor(start / MINUTE), math.ceil(end / MINUTE)
    if hi <= lo or width < MINUTE:
        return None

    below, nextafter = -math.inf, math.nextafter

    def whole(first: float, seconds: int) -> bool:
        # Rows of the period have first <= ts < first + seconds, and the bucket never decreases
        # with ts. Unclamped buckets only make this stricter at the range's ends (still exact).
        last = nextafter(first + seconds, below)
        return int((first - origin) / width) == int((last - origin) / width)

    cut = set()
    if lo * MINUTE < start:
        cut.add(lo)
    if hi * MINUTE > end:
        cut.add(hi - 1)
    for k in range(
        int((lo * MINUTE - origin) / width) + 1, int((hi * MINUTE - origin) / width) + 1
    ):
        # The boundary lies in minute ``near``, or in a neighbour when it is within rounding
        # of a minute's edge.
        edge = origin + k * width
        near = math.floor(edge / MINUTE)
        nearby = (near - 1, near, near + 1) if edge % MINUTE < 1 or edge % MINUTE > 59 else (near,)
        cut.update(m for m in nearby if lo <= m < hi and not whole(m * MINUTE, MINUTE))
    if 2 * len(cut) > hi - lo:
        return None
    slots: list[int] = []
    raw: list[int] = []
    step = SLOTS.seconds
    for m in sorted(cut):
        for first in range(m * MINUTE, (m + 1) * MINUTE, step):
            if first + step <= start or first >= end:
                continue
            inside = start <= first and first + step <= end
            (slots if inside and whole(first, step) else raw).append(first // step)
    return Plan(lo, hi, tuple(sorted(cut)), tuple(slots), tuple(raw))
