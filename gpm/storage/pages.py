"""Newest-first pages of an event table across SQLite and the Parquet archive, by cursor.

Listing routes page instead of refusing wide ranges, and a page's rows cost what they are:
SQLite answers from the index on the table's time column, and the archive is read a day file at
a time, newest day first, only until the page is full (the ``total`` of ``/api/llm-sessions``
is a count over the whole range, done apart from the page). The cursor says where the last
page ended (its last row's time, and how many rows of that same time it already gave), opaque
to clients.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpm.storage import archive as arch
from gpm.storage.db import HISTORY_TABLES
from gpm.storage.summaries import DAY

Row = dict[str, Any]


class CursorError(ValueError):
    """A cursor this API did not give (or from another listing)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: rows older than ``time``, or of that time after the first ``seen``."""

    time: float
    seen: int

    def encode(self) -> str:
        raw = json.dumps([self.time, self.seen], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            time, seen = json.loads(raw)
        except (ValueError, TypeError, binascii.Error):
            raise CursorError("not a cursor this listing gave (use the `next` of a page)") from None
        if not isinstance(seen, int) or isinstance(time, bool) or not isinstance(time, int | float):
            raise CursorError("not a cursor this listing gave (use the `next` of a page)")
        if not math.isfinite(time) or seen < 0:
            raise CursorError("not a cursor this listing gave (use the `next` of a page)")
        return cls(float(time), seen)


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    next: Cursor | None  # None on the last page


def newest_first(
    conn: sqlite3.Connection,
    table: str,
    span: tuple[float, float],
    *,
    equals: Mapping[str, Any],
    limit: int,
    cursor: Cursor | None,
    archive: tuple[Path, float] | None,
    to_dicts: Callable[[Any, str], list[Row]],
) -> Page:
    """One page of ``table``'s rows in ``span`` whose columns equal ``equals``, newest first.

    ``archive`` is the archive folder and the time before which rows may have moved there
    (None: SQLite only); ``to_dicts`` turns an Arrow table into rows shaped like SQLite's.
    """
    spec = HISTORY_TABLES[table]
    t = spec.time_column
    ties = [k for k in spec.key if k != t]  # a stable order among rows of one time
    start, end = span
    top, skip = (end, 0) if cursor is None else (cursor.time, cursor.seen)
    want = limit + 1 + skip
    where = [f'"{t}" >= ?', f'"{t}" <= ?' if cursor else f'"{t}" < ?']
    params: list[Any] = [start, top]
    for column, value in equals.items():
        where.append(f'"{column}" = ?')
        params.append(value)
    order = ", ".join(f'"{c}" DESC' for c in (t, *ties))
    rows = [
        dict(r)
        for r in conn.execute(
            f"SELECT * FROM {table} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?",
            (*params, want),
        )
    ]
    if len(rows) < want and archive is not None and start < archive[1]:
        older = (start, min(top, archive[1]))
        rows += _archived(
            table, older, equals, want - len(rows), archive[0], to_dicts, inclusive=bool(cursor)
        )
    if skip:  # rows of the cursor's own time that the last page already gave
        rows = [r for i, r in enumerate(rows) if not (i < skip and r[t] == top)]
    more = len(rows) > limit
    rows = rows[:limit]
    if not more or not rows:
        return Page(rows, None)
    last = rows[-1][t]
    same = sum(1 for r in rows if r[t] == last) + (skip if last == top else 0)
    return Page(rows, Cursor(last, same))


def _nulls_last(value: Any) -> tuple[bool, Any]:
    """A sort key that orders None like SQLite does (below every value)."""
    return (value is not None, value if value is not None else 0)


def _archived(
    table: str,
    span: tuple[float, float],
    equals: Mapping[str, Any],
    want: int,
    archive_dir: Path,
    to_dicts: Callable[[Any, str], list[Row]],
    *,
    inclusive: bool,
) -> list[Row]:
    """Archived rows in ``span`` (its end included when ``inclusive``), newest first, read a day
    file at a time from the newest until ``want`` rows are found."""
    spec = HISTORY_TABLES[table]
    t = spec.time_column
    ties = [k for k in spec.key if k != t]
    start, end = span
    out: list[Row] = []
    for day in reversed(arch.archive_days(archive_dir, table)):
        lo, hi = max(start, day * DAY), min(end, (day + 1) * DAY)
        if hi < start or lo > end or (lo >= hi and not inclusive):
            continue
        if (day + 1) * DAY <= start:
            break
        # The archive keeps milliseconds: read a millisecond past the end, then cut exactly.
        read_to = hi + 0.001 if inclusive else hi
        rows = [
            r
            for r in to_dicts(arch.read_archive(archive_dir, table, lo, read_to), table)
            if (r[t] <= hi if inclusive else r[t] < hi)
            and all(r.get(c) == v for c, v in equals.items())
        ]
        rows.sort(key=lambda r: (r[t], *[_nulls_last(r[c]) for c in ties]), reverse=True)
        out += rows
        if len(out) >= want:
            break
    return out
