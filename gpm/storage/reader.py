"""Reading the history: one read-only SQLite connection per thread, and which part of a range
lives in the Parquet archive (rows older than ``meta.archived_before``).

Each thread gets its own connection, so one reader can serve a thread pool.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from gpm.storage import archive as arch
from gpm.storage.db import HISTORY_TABLES, open_database

Dict = dict[str, Any]


NON_GENERATION = ("load", "unload")  # session kinds that only move weights


class Reader:
    """Connections and the archive boundary, under every query."""

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

    def generation_rows(self, start: float, end: float, cols: tuple[str, ...]) -> list[Dict]:
        """Sessions started in [start, end) that generated (load/unload calls left out), with at
        least ``cols``, SQLite and archives together."""
        rows = [
            dict(r)
            for r in self._conn().execute(
                f"SELECT {', '.join(cols)} FROM llm_sessions WHERE started_at >= ? AND "
                "started_at < ? AND kind NOT IN (?, ?)",
                (start, end, *NON_GENERATION),
            )
        ]
        return rows + [
            r
            for r in self._archived_dicts("llm_sessions", start, end)
            if r["kind"] not in NON_GENERATION
        ]

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


def arrow_to_dicts(tbl: Any, table: str) -> list[Dict]:
    """Archived rows as dicts with epoch-second times, like the SQLite rows."""
    spec = HISTORY_TABLES[table]
    cols: dict[str, list[Any]] = {}
    for name in tbl.column_names:
        col = tbl.column(name)
        cols[name] = arch.epoch_seconds(col) if name in spec.timestamps else col.to_pylist()
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
