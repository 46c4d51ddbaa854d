"""The batched history writer: the service enqueues, one thread commits.

Callers on the event loop only append to an in-memory queue; a background thread commits what is
queued in one transaction per batch. When the disk is full, the directory read-only or the
database locked, the writer logs one error, keeps rows in memory (up to ``max_pending``, dropping
the oldest beyond that), retries with backoff and resumes by itself.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path

from gpm.model import (
    Alert,
    EnergyUse,
    GpuEvent,
    GpuSample,
    LlmSession,
    ModelEvent,
    ProcessEvent,
    Snapshot,
)
from gpm.storage import rollup
from gpm.storage.db import (
    ALERTS,
    ENERGY,
    GPU_EVENTS,
    GPU_METRICS,
    GPU_NUMERIC_COLUMNS,
    HISTORY_TABLES,
    LLM_SESSIONS,
    MODEL_EVENTS,
    PROCESS_EVENTS,
    DatabaseError,
    open_database,
)

Row = tuple[object, ...]
_LATEST = "latest"  # queue kind for the newest poll's processes and source


def gpu_row(s: GpuSample) -> Row:
    """A GPU sample as a gpu_metrics row (column order of GPU_METRICS)."""
    numeric = tuple(getattr(s, name) for name, _ in GPU_NUMERIC_COLUMNS)
    throttle = None if s.throttle_reasons is None else ",".join(s.throttle_reasons)
    return (
        s.timestamp,
        s.gpu_id,
        s.uuid,
        s.name,
        int(s.simulated),
        int(s.up),
        s.error,
        *numeric,
        throttle,
    )


def session_row(s: LlmSession) -> Row:
    return tuple(
        getattr(s, name).value
        if name == "outcome"
        else int(s.streamed)
        if name == "streamed"
        else getattr(s, name)
        for name in LLM_SESSIONS.column_names
    )


def process_event_row(e: ProcessEvent) -> Row:
    return tuple(
        e.timestamp
        if name == "ts"
        else e.workload.value
        if name == "workload"
        else getattr(e, name)
        for name in PROCESS_EVENTS.column_names
    )


def alert_row(a: Alert) -> Row:
    return tuple(a.timestamp if n == "ts" else getattr(a, n) for n in ALERTS.column_names)


def model_event_row(e: ModelEvent) -> Row:
    return tuple(e.timestamp if n == "ts" else getattr(e, n) for n in MODEL_EVENTS.column_names)


def _latest_payload(snap: Snapshot) -> Row:
    procs: list[Row] = []
    unknown: list[str] = []
    for g in snap.gpus:
        if g.processes is None:
            unknown.append(str(g.gpu_id))
            continue
        for p in g.processes:
            c = p.classification
            procs.append(
                (
                    snap.timestamp,
                    g.gpu_id,
                    p.pid,
                    p.name,
                    p.gpu_memory_bytes,
                    p.sm_utilization_percent,
                    p.kind,
                    p.user,
                    p.started_at,
                    c.workload.value if c else None,
                    c.reason if c else None,
                    c.model if c else None,
                    c.steam_app_id if c else None,
                    c.container if c else None,
                )
            )
    poll = (
        snap.timestamp,
        snap.source,
        snap.message,
        snap.poll_seconds,
        ",".join(unknown),
        len(snap.gpus),
    )
    return (poll, tuple(procs))


def insert_rows(conn: sqlite3.Connection, table: str, rows: Iterable[Row]) -> None:
    """Insert rows into a history table, each as its Table says (sessions replace by id, energy
    adds into its hour, the rest append).

    GPU rows are folded into the per-minute rollup by the same call, so callers inside one
    transaction never leave the two apart.
    """
    spec = HISTORY_TABLES[table]
    cols = ", ".join(f'"{n}"' for n in spec.column_names)
    marks = ", ".join("?" * len(spec.column_names))
    after = rollup.last_rowid(conn) if table == GPU_METRICS.name else None
    sql = f"{spec.insert} INTO {table} ({cols}) VALUES ({marks}){spec.on_conflict}"
    conn.executemany(sql, rows)
    if after is not None:
        rollup.add_rows_after(conn, after)


def replace_latest(conn: sqlite3.Connection, payload: Row) -> None:
    poll, procs = payload
    conn.execute("DELETE FROM latest_processes")
    conn.executemany("INSERT INTO latest_processes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", procs)  # type: ignore[arg-type]
    conn.execute(
        "INSERT OR REPLACE INTO latest_poll (id, ts, source, message, poll_seconds, "
        "unknown_processes, gpu_count) VALUES (1, ?, ?, ?, ?, ?, ?)",
        poll,  # type: ignore[arg-type]
    )


class Writer:
    """Thread-safe, non-blocking history writer; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        flush_interval: float = 1.0,
        max_pending: int = 100_000,
        logger: logging.Logger | None = None,
        retry_max_interval: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.retry_max_interval = retry_max_interval
        self.log = logger or logging.getLogger("gpm.storage")
        self._batch_max = max(1, min(50_000, max_pending))
        self._cond = threading.Condition()
        self._queue: deque[tuple[int, str, Row]] = deque()
        self._inflight: list[tuple[int, str, Row]] = []
        self._seq = 0
        self._flush_requests = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._last_error: str | None = None
        self._rows_written = 0
        self._dropped = 0
        self._drop_warned = False

    # -- properties -------------------------------------------------------------------------

    @property
    def last_error(self) -> str | None:
        """Why the last write failed; None once writing works."""
        return self._last_error

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._inflight)

    @property
    def rows_written(self) -> int:
        return self._rows_written

    @property
    def dropped(self) -> int:
        """Rows dropped because more than max_pending were waiting."""
        return self._dropped

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Open (create, upgrade) the database and start the writer thread.

        Raises DatabaseError when the file cannot be a GPM database, so the service refuses to
        start with a clear message rather than running without history.
        """
        self._conn = open_database(self.path)
        self._thread = threading.Thread(target=self._run, name="gpm-storage-writer", daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything enqueued before this call is committed; False on timeout."""
        with self._cond:
            target = self._seq
            self._flush_requests += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._oldest_seq() > target, timeout)
            finally:
                self._flush_requests -= 1

    def close(self, timeout: float = 5.0) -> None:
        """Flush, stop the thread and close the database; logs what could not be written."""
        if self._thread is None:
            return
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self._thread = None
        left = self.pending
        if left:
            self.log.warning(
                "history: %d rows could not be written to %s before shutdown (%s)",
                left,
                self.path,
                self._last_error,
            )
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- enqueue (any thread, never blocks on I/O) ------------------------------------------

    def add_snapshot(self, s: Snapshot) -> None:
        items = [(GPU_METRICS.name, gpu_row(g)) for g in s.gpus]
        items.append((_LATEST, _latest_payload(s)))
        self._enqueue(items)

    def add_session(self, s: LlmSession) -> None:
        self._enqueue([(LLM_SESSIONS.name, session_row(s))])

    def add_process_events(self, events: Sequence[ProcessEvent]) -> None:
        self._enqueue([(PROCESS_EVENTS.name, process_event_row(e)) for e in events])

    def add_alert(self, a: Alert) -> None:
        self._enqueue([(ALERTS.name, alert_row(a))])

    def add_model_events(self, events: Sequence[ModelEvent]) -> None:
        self._enqueue([(MODEL_EVENTS.name, model_event_row(e)) for e in events])

    def add_energy(self, uses: Sequence[EnergyUse]) -> None:
        """Energy used over a poll interval, added to the figure of the interval's hour."""
        self._enqueue(
            [
                (ENERGY.name, (u.timestamp // 3600 * 3600, u.gpu_id, u.workload, u.joules))
                for u in uses
            ]
        )

    def add_gpu_event(self, e: GpuEvent) -> None:
        row = tuple(e.timestamp if n == "ts" else getattr(e, n) for n in GPU_EVENTS.column_names)
        self._enqueue([(GPU_EVENTS.name, row)])

    def _enqueue(self, items: Sequence[tuple[str, Row]]) -> None:
        with self._cond:
            for kind, row in items:
                self._seq += 1
                self._queue.append((self._seq, kind, row))
            over = len(self._queue) + len(self._inflight) - self.max_pending
            if over > 0:
                for _ in range(min(over, len(self._queue))):
                    self._queue.popleft()
                self._dropped += over
                if not self._drop_warned:
                    self._drop_warned = True
                    self.log.warning(
                        "history: more than %d rows waiting to be written to %s; dropping the "
                        "oldest until writing works again",
                        self.max_pending,
                        self.path,
                    )
                self._cond.notify_all()  # a flush waiting on dropped rows may be satisfied

    def _oldest_seq(self) -> float:
        if self._inflight:
            return self._inflight[0][0]
        if self._queue:
            return self._queue[0][0]
        return math.inf

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                wait = backoff if backoff else self.flush_interval
                self._cond.wait_for(lambda: self._stopping or self._flush_requests > 0, wait)
                if self._stopping and (backoff or not (self._queue or self._inflight)):
                    return
                if not self._inflight:
                    n = min(self._batch_max, len(self._queue))
                    self._inflight = [self._queue.popleft() for _ in range(n)]
                batch = self._inflight
            if not batch:
                continue
            error = self._write(batch)
            with self._cond:
                if error is None:
                    self._inflight = []
                    backoff = 0.0
                    self._recovered()
                else:
                    backoff = min(max(backoff * 2, 0.25), self.retry_max_interval)
                    self._failed(error, len(self._queue) + len(self._inflight))
                self._cond.notify_all()

    def _write(self, batch: list[tuple[int, str, Row]]) -> str | None:
        """Commit one batch in one transaction; returns the error text on failure."""
        by_table: dict[str, list[Row]] = {}
        latest: Row | None = None
        for _, kind, row in batch:
            if kind == _LATEST:
                latest = row
            else:
                by_table.setdefault(kind, []).append(row)
        try:
            if self._conn is None:
                self._conn = open_database(self.path)
            with self._conn:
                for table, rows in by_table.items():
                    insert_rows(self._conn, table, rows)
                if latest is not None:
                    replace_latest(self._conn, latest)
        except (sqlite3.Error, DatabaseError, OSError) as exc:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # reopen on retry: the file may have been replaced or remounted
            return str(exc)
        self._rows_written += sum(len(r) for r in by_table.values())
        return None

    def _failed(self, error: str, pending: int) -> None:
        if self._last_error is None:
            self.log.error(
                "history: cannot write to %s: %s; keeping %d rows in memory and retrying "
                "(check free space and that service.data_dir is writable)",
                self.path,
                error,
                pending,
            )
        self._last_error = error

    def _recovered(self) -> None:
        if self._last_error is not None:
            self.log.warning(
                "history: writing to %s again (%d rows dropped while it failed)",
                self.path,
                self._dropped,
            )
        self._last_error = None
        self._drop_warned = False
