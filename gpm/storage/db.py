"""The SQLite history file: schema, migrations and a careful open.

One file holds every table. It is opened in WAL mode so that ``gpm-server`` (read-only) can read
while ``gpm run`` writes. A file at the path that is not a GPM database is never touched: the open
fails with a :class:`DatabaseError` that names the path and what to do.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gpm import catalog
from gpm.storage import rollup

SCHEMA_VERSION = 6
BUSY_TIMEOUT_MS = 5000
_SQLITE_MAGIC = b"SQLite format 3\x00"


class DatabaseError(Exception):
    """The history database cannot be used; the message names the path and what to do."""


@dataclass(frozen=True, slots=True)
class Table:
    """A history table: its columns (name, SQL type) and the column that orders it in time."""

    name: str
    columns: tuple[tuple[str, str], ...]
    time_column: str
    key: tuple[str, ...]  # identifies a row, for merging archives without duplicates
    # Columns holding epoch seconds: stored as timestamp[ms, UTC] in Parquet, RFC3339 in CSV.
    timestamps: tuple[str, ...]
    # How a row whose key is already there is written: appended as another row (the default),
    # replacing it (sessions, written again when they finish), or added into it (energy).
    insert: str = "INSERT"
    on_conflict: str = ""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)


# One column per stored reading of the catalog, in its order.
GPU_NUMERIC_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (r.name, r.sql_type) for r in catalog.STORED
)

GPU_METRICS = Table(
    name="gpu_metrics",
    columns=(
        ("ts", "REAL NOT NULL"),
        ("gpu_id", "INTEGER NOT NULL"),
        ("uuid", "TEXT"),
        ("name", "TEXT"),
        ("simulated", "INTEGER NOT NULL DEFAULT 0"),
        ("up", "INTEGER NOT NULL DEFAULT 1"),
        ("error", "TEXT"),
        *GPU_NUMERIC_COLUMNS,
        ("throttle_reasons", "TEXT"),
    ),
    time_column="ts",
    key=("ts", "gpu_id"),
    timestamps=("ts",),
)

LLM_SESSIONS = Table(
    name="llm_sessions",
    columns=(
        ("id", "TEXT PRIMARY KEY"),
        ("model", "TEXT"),
        ("endpoint", "TEXT NOT NULL"),
        ("started_at", "REAL NOT NULL"),
        ("outcome", "TEXT NOT NULL"),
        ("kind", "TEXT NOT NULL"),
        ("backend", "TEXT NOT NULL"),
        ("status_code", "INTEGER"),
        ("streamed", "INTEGER NOT NULL DEFAULT 0"),
        ("prompt_tokens", "INTEGER"),
        ("completion_tokens", "INTEGER"),
        ("token_source", "TEXT"),
        ("prompt_cached_tokens", "INTEGER"),
        ("tokens_per_second", "REAL"),
        ("prefill_tokens_per_second", "REAL"),
        ("ttft_ms", "REAL"),
        ("ttfb_ms", "REAL"),
        ("mean_chunk_gap_ms", "REAL"),
        ("chunk_gap_p50_ms", "REAL"),
        ("chunk_gap_p99_ms", "REAL"),
        ("duration_ms", "REAL"),
        ("load_duration_ms", "REAL"),
        ("prompt_eval_duration_ms", "REAL"),
        ("eval_duration_ms", "REAL"),
        ("done_reason", "TEXT"),
        ("error", "TEXT"),
        ("client", "TEXT NOT NULL DEFAULT 'local'"),
        ("prompt_text", "TEXT"),
        ("response_text", "TEXT"),
        ("energy_joules", "REAL"),
        ("energy_rule", "TEXT"),
    ),
    time_column="started_at",
    key=("id",),
    timestamps=("started_at",),
    insert="INSERT OR REPLACE",
)

PROCESS_EVENTS = Table(
    name="process_events",
    columns=(
        ("ts", "REAL NOT NULL"),
        ("event", "TEXT NOT NULL"),
        ("gpu_id", "INTEGER NOT NULL"),
        ("gpu_uuid", "TEXT"),
        ("pid", "INTEGER NOT NULL"),
        ("name", "TEXT"),
        ("workload", "TEXT NOT NULL"),
        ("reason", "TEXT NOT NULL"),
        ("user", "TEXT"),
        ("container", "TEXT"),
        ("model", "TEXT"),
        ("steam_app_id", "INTEGER"),
        ("process_started_at", "REAL"),
        ("gpu_memory_peak_bytes", "INTEGER"),
        ("duration_seconds", "REAL"),
        ("energy_joules", "REAL"),
    ),
    time_column="ts",
    key=("ts", "event", "gpu_id", "pid"),
    timestamps=("ts", "process_started_at"),
)

GPU_EVENTS = Table(
    name="gpu_events",
    columns=(
        ("ts", "REAL NOT NULL"),
        ("gpu_id", "INTEGER NOT NULL"),
        ("gpu_uuid", "TEXT"),
        ("kind", "TEXT NOT NULL"),
        ("code", "INTEGER NOT NULL"),
    ),
    time_column="ts",
    key=("ts", "gpu_id", "kind", "code"),
    timestamps=("ts",),
)

ALERTS = Table(
    name="alerts",
    columns=(
        ("ts", "REAL NOT NULL"),
        ("rule", "TEXT NOT NULL"),
        ("state", "TEXT NOT NULL"),
        ("severity", "TEXT NOT NULL"),
        ("message", "TEXT NOT NULL"),
        ("gpu_id", "INTEGER"),
        ("value", "REAL"),
        ("threshold", "REAL"),
    ),
    time_column="ts",
    key=("ts", "rule", "state", "gpu_id"),
    timestamps=("ts",),
)

MODEL_EVENTS = Table(
    name="model_events",
    columns=(
        ("ts", "REAL NOT NULL"),
        ("event", "TEXT NOT NULL"),
        ("model", "TEXT NOT NULL"),
        ("size_bytes", "INTEGER"),
        ("vram_bytes", "INTEGER"),
    ),
    time_column="ts",
    key=("ts", "event", "model"),
    timestamps=("ts",),
)

# Energy per GPU and workload ("idle", "unattributed" or a workload class), summed per hour.
ENERGY = Table(
    name="energy",
    columns=(
        ("hour", "REAL NOT NULL"),
        ("gpu_id", "INTEGER NOT NULL"),
        ("workload", "TEXT NOT NULL"),
        ("joules", "REAL NOT NULL"),
    ),
    time_column="hour",
    key=("hour", "gpu_id", "workload"),
    timestamps=("hour",),
    on_conflict=" ON CONFLICT DO UPDATE SET joules = joules + excluded.joules",
)

# Tables whose old rows retention archives and deletes.
HISTORY_TABLES: dict[str, Table] = {
    t.name: t
    for t in (GPU_METRICS, LLM_SESSIONS, PROCESS_EVENTS, ALERTS, MODEL_EVENTS, GPU_EVENTS, ENERGY)
}

_OTHER_TABLES = (
    # The processes of the newest poll only, replaced each poll (for gpm-server's realtime view).
    """CREATE TABLE IF NOT EXISTS latest_processes (
        ts REAL NOT NULL, gpu_id INTEGER NOT NULL, pid INTEGER NOT NULL, name TEXT,
        gpu_memory_bytes INTEGER, sm_utilization_percent REAL, kind TEXT NOT NULL, user TEXT,
        started_at REAL, workload TEXT, reason TEXT, model TEXT, steam_app_id INTEGER,
        container TEXT)""",
    # One row: the newest poll's source and message; unknown_processes lists GPU ids whose
    # process list was unknown (None) rather than empty.
    """CREATE TABLE IF NOT EXISTS latest_poll (
        id INTEGER PRIMARY KEY CHECK (id = 1), ts REAL NOT NULL, source TEXT NOT NULL,
        message TEXT, poll_seconds REAL, unknown_processes TEXT NOT NULL DEFAULT '',
        gpu_count INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS weekly_summaries (
        week TEXT NOT NULL, week_start REAL NOT NULL, gpu_id INTEGER, model TEXT,
        hours_active REAL, avg_utilization_percent REAL, peak_utilization_percent REAL,
        avg_memory_used_bytes REAL, peak_memory_used_bytes INTEGER,
        avg_temperature_celsius REAL, peak_temperature_celsius REAL, energy_wh REAL,
        workload_seconds TEXT NOT NULL DEFAULT '{}', llm_sessions INTEGER, llm_tokens INTEGER,
        updated_at REAL NOT NULL)""",
    # Figures of rows already deleted by retention, per week, so summaries keep the full week.
    """CREATE TABLE IF NOT EXISTS weekly_archived (
        week_day INTEGER NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL,
        figures TEXT NOT NULL, PRIMARY KEY (week_day, scope, key))""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

GPU_VALUES_INDEX = "gpu_metrics_gpu_ts_values"
_INDEXES = (
    # Carries the charted and summarised columns, so the raw rows a chart reads and the weekly
    # summaries' per-GPU scan need no table lookups and no sort.
    f"CREATE INDEX IF NOT EXISTS {GPU_VALUES_INDEX} ON gpu_metrics (gpu_id, ts, "
    "utilization_percent, memory_used_bytes, memory_total_bytes, temperature_celsius, "
    "power_watts, energy_joules)",
    "CREATE INDEX IF NOT EXISTS gpu_metrics_ts ON gpu_metrics (ts)",
    "CREATE INDEX IF NOT EXISTS llm_sessions_started ON llm_sessions (started_at)",
    "CREATE INDEX IF NOT EXISTS process_events_ts ON process_events (ts)",
    "CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts)",
    "CREATE INDEX IF NOT EXISTS model_events_ts ON model_events (ts)",
    "CREATE INDEX IF NOT EXISTS gpu_events_ts ON gpu_events (ts)",
    "CREATE UNIQUE INDEX IF NOT EXISTS energy_key ON energy (hour, gpu_id, workload)",
    "CREATE INDEX IF NOT EXISTS weekly_summaries_week ON weekly_summaries (week_start)",
)

OUR_TABLES = frozenset(HISTORY_TABLES) | {
    "latest_processes",
    "latest_poll",
    "weekly_summaries",
    "weekly_archived",
    "meta",
    *rollup.TABLES,
}


def create_table_sql(table: Table) -> str:
    cols = ", ".join(f'"{name}" {kind}' for name, kind in table.columns)
    return f"CREATE TABLE IF NOT EXISTS {table.name} ({cols})"


def _check_header(path: Path) -> None:
    """Refuse a non-empty file that is not SQLite before sqlite3 gets a chance to write to it."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot read the history database: {exc}") from None
    if head and head != _SQLITE_MAGIC:
        raise DatabaseError(
            f"{path}: this file is not a GPM database (not SQLite); it was left unchanged. "
            "Move it away or set service.data_dir to another directory."
        )


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring any older schema to SCHEMA_VERSION in place, inside one transaction.

    Version 1 lacked some GPU and session columns, model events, the latest-poll tables and the
    archived weekly figures; version 2 lacked the per-minute rollup, which is built from the raw
    rows here; version 3 lacked the sessions' token source and chunk-gap percentiles; version 4
    lacked the GPU events (Xid) table; version 5 lacked the energy table and the energy of
    sessions and process events. Creating what is missing and adding absent columns covers every
    step.
    """
    had_rollup = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (rollup.TABLES[0],)
    ).fetchone()
    with conn:
        for table in HISTORY_TABLES.values():
            conn.execute(create_table_sql(table))
            _add_missing_columns(conn, table)
        conn.execute("DROP INDEX IF EXISTS gpu_metrics_gpu_ts")  # version 2's narrower index
        for sql in _OTHER_TABLES + _INDEXES:
            conn.execute(sql)
        for level in rollup.LEVELS:
            conn.execute(rollup.create_sql(level))
        rollup.add_missing_columns(conn)
        if not had_rollup:
            rollup.rebuild(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _add_missing_columns(conn: sqlite3.Connection, table: Table) -> None:
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table.name})")}
    for name, kind in table.columns:
        if name not in have:
            # ALTER TABLE cannot add NOT NULL without a default or a PRIMARY KEY column.
            plain = kind.replace("PRIMARY KEY", "").replace("NOT NULL", "")
            conn.execute(f'ALTER TABLE {table.name} ADD COLUMN "{name}" {plain}')


def _add_new_readings(conn: sqlite3.Connection) -> None:
    """A reading added to the catalog since the file was written gets its columns (null in the
    rows before it), without a schema version of its own."""
    with conn:
        _add_missing_columns(conn, GPU_METRICS)
        rollup.add_missing_columns(conn)


def open_database(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (and create or upgrade, unless ``readonly``) the history database at ``path``."""
    path = Path(path)
    _check_header(path)
    if readonly:
        if not path.exists():
            raise DatabaseError(
                f"{path}: no history database yet; start 'gpm run' once to create it."
            )
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseError(
                f"{path}: cannot create the history database: {exc}. "
                "Check that service.data_dir is writable."
            ) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DatabaseError(
            f"{path}: the history database is unreadable ({exc}); it was left unchanged. "
            "Move it away (GPM starts a new one) or restore a backup."
        ) from None
    try:
        _check_ours(path, names, version)
        if readonly:
            if version != SCHEMA_VERSION:
                raise DatabaseError(
                    f"{path}: schema version {version}, expected {SCHEMA_VERSION}; "
                    "run 'gpm run' once to upgrade it."
                )
            return conn
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            _migrate(conn)
        else:
            _add_new_readings(conn)
    except DatabaseError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseError(
            f"{path}: cannot prepare the history database: {exc}. "
            "Check free space and that service.data_dir is writable."
        ) from None
    return conn


def _check_ours(path: Path, names: set[str], version: int) -> None:
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{path}: written by a newer GPM (schema {version}, this one knows {SCHEMA_VERSION}); "
            "upgrade GPM or point service.data_dir elsewhere."
        )
    foreign = {n for n in names if not n.startswith("sqlite_")} - OUR_TABLES
    if foreign and (version == 0 or "gpu_metrics" not in names):
        raise DatabaseError(
            f"{path}: this SQLite file belongs to another program (tables: "
            f"{', '.join(sorted(foreign)[:5])}); it was left unchanged. "
            "Move it away or set service.data_dir to another directory."
        )
