"""Retention: old rows go to Parquet (one file per table per UTC day), then leave SQLite.

The order makes a failure lose nothing: weekly summaries are refreshed first, each day file is
written to a temporary name, fsynced and renamed into place, and only when every file is in place
are the rows deleted (in one transaction that also keeps their weekly figures). Archiving a day
that already has a file merges the rows without duplicating any.

pyarrow is imported inside the functions that use it, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from gpm.storage import rollup
from gpm.storage.db import HISTORY_TABLES, Table, open_database
from gpm.storage.summaries import (
    DAY,
    forget_deleted_rows,
    keep_archived_figures,
    refresh_weekly_summaries,
)

if TYPE_CHECKING:
    import pyarrow as pa

ARCHIVED_BEFORE = "archived_before"  # meta key: rows older than this may be in the archives


class ArchiveError(Exception):
    """An archive file could not be written; nothing was deleted from SQLite."""


@dataclass(slots=True)
class RetentionReport:
    cutoff: float
    archived: dict[str, int] = field(default_factory=dict)  # rows written to Parquet, by table
    deleted: dict[str, int] = field(default_factory=dict)  # rows deleted from SQLite, by table
    files: list[Path] = field(default_factory=list)
    summaries: int = 0

    def describe(self) -> str:
        """What moved, for ``gpm archive`` and the service log."""
        cutoff = datetime.fromtimestamp(self.cutoff, UTC).isoformat(timespec="seconds")
        if not any(self.deleted.values()):
            return f"nothing older than {cutoff} to move"
        parts = [
            f"{table}: {self.archived.get(table, 0)} archived, {n} deleted"
            for table, n in self.deleted.items()
            if n or self.archived.get(table)
        ]
        where = f"; {len(self.files)} Parquet file(s) written" if self.files else ""
        return f"rows older than {cutoff}: " + ", ".join(parts) + where


def arrow_schema(table: Table) -> pa.Schema:
    """The Parquet schema of a history table: SQL types mapped, epoch columns as timestamps."""
    import pyarrow as pa

    types = {"REAL": pa.float64(), "INTEGER": pa.int64(), "TEXT": pa.string()}
    return pa.schema(
        [
            (
                name,
                pa.timestamp("ms", tz="UTC")
                if name in table.timestamps
                else types[kind.split()[0]],
            )
            for name, kind in table.columns
        ]
    )


def rows_to_arrow(table: Table, rows: list[tuple[object, ...]]) -> pa.Table:
    """SQLite rows (in column order) to an Arrow table with epoch seconds as timestamps.

    Each column becomes one Arrow array in a single C-level pass; times are converted by Arrow
    compute, not per value in Python.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = arrow_schema(table)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for f, values in zip(schema, columns, strict=True):
        if pa.types.is_timestamp(f.type):
            ms = pc.round(pc.multiply(pa.array(values, pa.float64()), 1000.0))
            arrays.append(ms.cast(pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def cursor_to_arrow(table: Table, cur: sqlite3.Cursor, chunk: int = 65536) -> pa.Table:
    """A query's rows (in column order) as one Arrow table, converted a chunk at a time so that
    at most ``chunk`` rows of Python objects exist at once."""
    import pyarrow as pa

    parts = []
    while rows := cur.fetchmany(chunk):
        parts.append(rows_to_arrow(table, rows))
    return pa.concat_tables(parts) if parts else rows_to_arrow(table, [])


def _conform(tbl: pa.Table, schema: pa.Schema) -> pa.Table:
    """A file written by an older schema: add missing columns as nulls, order as now."""
    import pyarrow as pa

    cols = [
        tbl.column(f.name).cast(f.type)
        if f.name in tbl.column_names
        else pa.nulls(tbl.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def _row_keys(tbl: pa.Table, key: tuple[str, ...]) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = [pc.cast(tbl.column(k), pa.string()) for k in key]
    if len(parts) == 1:
        return pc.fill_null(parts[0], "\x00")
    return pc.binary_join_element_wise(
        *parts, "|", null_handling="replace", null_replacement="\x00"
    )


def _merge(existing: pa.Table, new: pa.Table, table: Table) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    existing = _conform(existing, new.schema)
    seen = _row_keys(existing, table.key)
    fresh = new.filter(pc.invert(pc.is_in(_row_keys(new, table.key), value_set=seen)))
    return pa.concat_tables([existing, fresh]).sort_by(table.time_column)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_day_file(path: Path, tbl: pa.Table, table: Table) -> int:
    """Write (or merge into) one day file atomically; returns the rows the file now holds."""
    import pyarrow.parquet as pq

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            tbl = _merge(pq.read_table(path), tbl, table)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as fh:
                pq.write_table(tbl, fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(path.parent)
    except Exception as exc:  # OSError, or any pyarrow error reading a damaged old file
        raise ArchiveError(
            f"{path}: cannot write the archive ({exc}); nothing was deleted. "
            "Check storage.archive_dir (writable, free space)."
        ) from exc
    return int(tbl.num_rows)


def day_path(archive_dir: Path, table: str, day: int) -> Path:
    return archive_dir / table / f"{date(1970, 1, 1) + timedelta(days=day)}.parquet"


def run_retention(
    db_path: Path, archive_dir: Path, *, retention_days: float, archive: bool, now: float
) -> RetentionReport:
    """Archive (when ``archive``) and delete rows older than ``now - retention_days``.

    Raises ArchiveError (nothing deleted) when an archive file cannot be written.
    """
    report = RetentionReport(cutoff=now - retention_days * DAY)
    conn = open_database(db_path)
    try:
        report.summaries = refresh_weekly_summaries(conn, now=now)
        # Rows the writer adds while archiving are left for the next run, never deleted unseen.
        last = {
            name: conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {name}").fetchone()[0]
            for name in HISTORY_TABLES
        }
        if archive:
            for table in HISTORY_TABLES.values():
                report.archived[table.name] = _archive_table(
                    conn, table, archive_dir, report.cutoff, last[table.name], report.files
                )
        with conn:
            keep_archived_figures(conn, report.cutoff)
            for table in HISTORY_TABLES.values():
                cur = conn.execute(
                    f"DELETE FROM {table.name} WHERE {table.time_column} < ? AND rowid <= ?",
                    (report.cutoff, last[table.name]),
                )
                report.deleted[table.name] = cur.rowcount
            forget_deleted_rows(conn)
            rollup.trim(conn, report.cutoff)
            if archive and any(report.archived.values()):
                conn.execute(
                    "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value ="
                    " MAX(CAST(value AS REAL), CAST(excluded.value AS REAL))",
                    (ARCHIVED_BEFORE, repr(report.cutoff)),
                )
    finally:
        conn.close()
    return report


def _archive_table(
    conn: sqlite3.Connection,
    table: Table,
    archive_dir: Path,
    cutoff: float,
    last_rowid: int,
    files: list[Path],
) -> int:
    tcol = table.time_column
    oldest = conn.execute(f"SELECT MIN({tcol}) FROM {table.name}").fetchone()[0]
    if oldest is None or oldest >= cutoff:
        return 0
    cols = ", ".join(f'"{c}"' for c in table.column_names)
    total = 0
    for day in range(math.floor(oldest / DAY), math.floor(cutoff / DAY) + 1):
        cur = conn.execute(
            f"SELECT {cols} FROM {table.name} WHERE {tcol} >= ? AND {tcol} < ? AND rowid <= ?"
            f" ORDER BY {tcol}",
            (day * DAY, min((day + 1) * DAY, cutoff), last_rowid),
        )
        tbl = cursor_to_arrow(table, cur)
        if not tbl.num_rows:
            continue
        path = day_path(archive_dir, table.name, day)
        write_day_file(path, tbl, table)
        files.append(path)
        total += tbl.num_rows
    return total


# -- reading ------------------------------------------------------------------------------------


def _day_files(archive_dir: Path, table: str) -> list[tuple[int, Path]]:
    folder = archive_dir / table
    out = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for p in folder.iterdir():
            if p.suffix != ".parquet" or p.name.startswith("."):
                continue
            try:
                day = (date.fromisoformat(p.stem) - date(1970, 1, 1)).days
            except ValueError:
                continue
            out.append((day, p))
    return sorted(out)


def archive_days(archive_dir: Path, table: str) -> list[int]:
    """Days (since the epoch, UTC) that have an archive file for table."""
    return [d for d, _ in _day_files(archive_dir, table)]


def iter_archive(
    archive_dir: Path, table: str, start: float, end: float, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """Archived rows of table with time in [start, end), one Arrow table per day file, oldest
    first; timestamp columns stay timestamps.

    With ``columns``, only those are read from the files (a chart needs 7 of 28), and rows keep
    the files' order, which retention writes sorted by time.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = HISTORY_TABLES[table]
    schema = arrow_schema(spec)
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    lo = math.floor(max(start, 0.0) / DAY)
    hi = math.floor(min(end, 1e11) / DAY)
    when_lo = datetime.fromtimestamp(max(start, 0.0), UTC)
    when_hi = datetime.fromtimestamp(min(end, 1e11), UTC)
    for day, path in _day_files(archive_dir, table):
        if not lo <= day <= hi:
            continue
        have = set(pq.read_schema(path).names)  # a file from an older schema may lack some
        tbl = pq.read_table(
            path,
            columns=[c for c in schema.names if c in have],
            filters=[(spec.time_column, ">=", when_lo), (spec.time_column, "<", when_hi)],
        )
        tbl = _conform(tbl, schema)
        if columns is None:
            tbl = tbl.sort_by(spec.time_column)
        if tbl.num_rows:
            yield tbl


def read_archive(
    archive_dir: Path, table: str, start: float, end: float, columns: list[str] | None = None
) -> pa.Table:
    """All archived rows of table in [start, end) as one Arrow table."""
    import pyarrow as pa

    parts = list(iter_archive(archive_dir, table, start, end, columns))
    if not parts:
        schema = arrow_schema(HISTORY_TABLES[table])
        return schema.empty_table().select(columns) if columns else schema.empty_table()
    return pa.concat_tables(parts)


def epoch_seconds(col: pa.ChunkedArray | pa.Array) -> list[float | None]:
    """A timestamp[ms] column back to epoch seconds."""
    import pyarrow as pa

    return [None if v is None else v / 1000.0 for v in col.cast(pa.int64()).to_pylist()]
