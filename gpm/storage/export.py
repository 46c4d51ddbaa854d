"""Export history (SQLite and archives together) as CSV, JSON or Parquet.

Rows are streamed in chunks, so exporting a long range never holds it all in memory. CSV has a
header, RFC3339 times and a UTF-8 byte-order mark so spreadsheets read it right. Prompt and
response text are left out unless asked for.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from gpm.storage.archive import arrow_schema, rows_to_arrow
from gpm.storage.db import HISTORY_TABLES
from gpm.storage.queries import Queries
from gpm.timefmt import to_rfc3339

TABLES = ("gpu_metrics", "llm_sessions", "process_events", "alerts")
FORMATS = ("csv", "parquet", "json")
_TEXT_COLUMNS = ("prompt_text", "response_text")


def _columns(table: str, include_text: bool) -> list[str]:
    names = HISTORY_TABLES[table].column_names
    return [c for c in names if include_text or c not in _TEXT_COLUMNS]


def _check(table: str, fmt: str) -> list[str]:
    if fmt not in FORMATS:
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if table == "all":
        if fmt != "json":
            raise ValueError(
                f"table: 'all' needs format json (one file per table for {fmt}: use export_files)"
            )
        return list(TABLES)
    if table not in TABLES:
        raise ValueError(f"table: {table!r} is not one of {', '.join(TABLES)} or 'all'")
    return [table]


def _readable(table: str, rows: list[dict[str, Any]], cols: list[str]) -> Iterator[list[Any]]:
    stamps = HISTORY_TABLES[table].timestamps
    for r in rows:
        yield [to_rfc3339(r[c]) if c in stamps else r[c] for c in cols]


def export(
    queries: Queries,
    *,
    table: str,
    start: float,
    end: float,
    fmt: str,
    out: BinaryIO,
    include_text: bool = False,
) -> int:
    """Write one table (or, for JSON, ``"all"``) for [start, end) to ``out``; returns rows."""
    tables = _check(table, fmt)
    if fmt == "parquet":
        return _parquet(queries, tables[0], start, end, out, include_text)
    text = io.TextIOWrapper(out, encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="")
    try:
        if fmt == "csv":
            return _csv(queries, tables[0], start, end, text, include_text)
        return _json(queries, tables, start, end, text, include_text)
    finally:
        text.flush()
        text.detach()  # leave the caller's stream open


def _csv(
    q: Queries, table: str, start: float, end: float, text: io.TextIOWrapper, include_text: bool
) -> int:
    cols = _columns(table, include_text)
    w = csv.writer(text)
    w.writerow(cols)
    n = 0
    for chunk in q.iter_rows(table, start, end):
        w.writerows(_readable(table, chunk, cols))
        n += len(chunk)
    return n


def _json(
    q: Queries,
    tables: Sequence[str],
    start: float,
    end: float,
    text: io.TextIOWrapper,
    include_text: bool,
) -> int:
    n = 0
    text.write("{")
    for i, table in enumerate(tables):
        cols = _columns(table, include_text)
        text.write(("," if i else "") + json.dumps(table) + ": [")
        first = True
        for chunk in q.iter_rows(table, start, end):
            for values in _readable(table, chunk, cols):
                text.write(
                    ("" if first else ",") + "\n" + json.dumps(dict(zip(cols, values, strict=True)))
                )
                first = False
            n += len(chunk)
        text.write("]")
    text.write("}\n")
    return n


def _parquet(
    q: Queries, table: str, start: float, end: float, out: BinaryIO, include_text: bool
) -> int:
    import pyarrow.parquet as pq

    spec = HISTORY_TABLES[table]
    cols = _columns(table, include_text)
    schema = arrow_schema(spec)
    n = 0
    with pq.ParquetWriter(out, pa_select(schema, cols), compression="zstd") as w:
        for chunk in q.iter_rows(table, start, end):
            rows = [tuple(r[c] for c in spec.column_names) for r in chunk]
            w.write_table(rows_to_arrow(spec, rows).select(cols))
            n += len(chunk)
    return n


def pa_select(schema: Any, cols: list[str]) -> Any:
    import pyarrow as pa

    return pa.schema([schema.field(c) for c in cols])


def export_files(
    queries: Queries,
    *,
    tables: Sequence[str],
    start: float,
    end: float,
    fmt: str,
    out_dir: Path,
    stem: str = "gpm",
    include_text: bool = False,
) -> dict[str, tuple[Path, int]]:
    """One file per table (``<stem>-<table>.<fmt>`` in out_dir); returns path and rows by table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for table in tables:
        _check(table, fmt)
        path = out_dir / f"{stem}-{table}.{fmt}"
        with path.open("wb") as fh:
            written[table] = (
                path,
                export(
                    queries,
                    table=table,
                    start=start,
                    end=end,
                    fmt=fmt,
                    out=fh,
                    include_text=include_text,
                ),
            )
    return written
