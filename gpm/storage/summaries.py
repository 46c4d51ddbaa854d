"""Weekly summaries per GPU and per LLM model, kept whole across retention.

Summaries are sums, counts and peaks, so they add up: the figures of rows that retention deletes
are kept in ``weekly_archived`` (added in the same transaction as the delete), and a refresh adds
them to the figures of the rows still in SQLite. A week therefore keeps its full figures even
when its first days have left the database.

A refresh recomputes only the weeks that can have changed since the previous one: the weeks of
rows added since then (found by rowid, so rows arriving late for an old week count), weeks whose
time per workload moved (processes ending, or still running), weeks whose rows retention archived
while they were still unsummarised, and the current week. The other weeks' rows are left as they
are; a retention run moves figures from the live rows to ``weekly_archived`` without changing
their totals.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from gpm.model import WeeklySummary
from gpm.storage.db import GPU_VALUES_INDEX

DAY = 86400.0
WEEK = 7 * DAY
ACTIVE_UTILIZATION_PERCENT = 5.0
MAX_SAMPLE_SECONDS = 60.0  # a sample stands for the gap to the next one, at most this long
_FAR_PAST = -1e18
_STATE = "weekly_summaries_state"  # meta key: rowid marks of the last refresh, weeks to redo
_TRACKED = {"gpu_metrics": "ts", "llm_sessions": "started_at"}  # tables read by rowid marks


@dataclass(slots=True)
class GpuFigures:
    """Additive figures of one GPU in one week."""

    util_sum: float = 0.0
    util_n: int = 0
    util_max: float | None = None
    active_seconds: float = 0.0
    mem_sum: float = 0.0
    mem_n: int = 0
    mem_max: int | None = None
    temp_sum: float = 0.0
    temp_n: int = 0
    temp_max: float | None = None
    energy_joules: float = 0.0
    energy_n: int = 0
    workload_seconds: dict[str, float] = field(default_factory=dict)

    def add(self, o: GpuFigures) -> None:
        self.util_sum += o.util_sum
        self.util_n += o.util_n
        self.util_max = _max(self.util_max, o.util_max)
        self.active_seconds += o.active_seconds
        self.mem_sum += o.mem_sum
        self.mem_n += o.mem_n
        self.mem_max = _max(self.mem_max, o.mem_max)
        self.temp_sum += o.temp_sum
        self.temp_n += o.temp_n
        self.temp_max = _max(self.temp_max, o.temp_max)
        self.energy_joules += o.energy_joules
        self.energy_n += o.energy_n
        for k, v in o.workload_seconds.items():
            self.workload_seconds[k] = self.workload_seconds.get(k, 0.0) + v


@dataclass(slots=True)
class ModelFigures:
    sessions: int = 0
    tokens: int = 0

    def add(self, o: ModelFigures) -> None:
        self.sessions += o.sessions
        self.tokens += o.tokens


GpuKey = tuple[int, int]  # (week's Monday as days since epoch, gpu_id)
ModelKey = tuple[int, str]


_N = TypeVar("_N", int, float)


def _max(a: _N | None, b: _N | None) -> _N | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def week_day(ts: float) -> int:
    """The Monday (UTC) of ts's ISO week, as whole days since the epoch."""
    day = math.floor(ts / DAY)
    return day - (day + 3) % 7  # 1970-01-01 was a Thursday


def _week_sql(col: str) -> str:
    """SQL for week_day of an epoch column (the same truncation the summary queries use)."""
    return f"CAST({col} / 86400 AS INTEGER) - (CAST({col} / 86400 AS INTEGER) + 3) % 7"


def week_label(monday: int) -> str:
    year, week, _ = datetime.fromtimestamp(monday * DAY, UTC).isocalendar()
    return f"{year}-W{week:02d}"


# The covering index hands rows over in (gpu_id, ts) order with every column used: no sort
# and no table lookups for the window, which the ts index alone would need. A GPU's last row
# before :hi + :cap has no successor in the window; it counts a full :cap when the GPU has a
# later row (as a scan of every row would see), so figures of adjacent ranges add up exactly.
_GPU_SQL = f"""
SELECT gpu_id, wd, SUM(util), COUNT(util), MAX(util),
       SUM(CASE WHEN util > {ACTIVE_UTILIZATION_PERCENT} THEN gap ELSE 0 END),
       SUM(mem), COUNT(mem), MAX(mem), SUM(temp), COUNT(temp), MAX(temp),
       SUM(CASE WHEN e IS NOT NULL AND ne IS NOT NULL AND ne >= e AND nts - ts <= :cap
                THEN ne - e ELSE COALESCE(p, 0) * gap END),
       SUM(CASE WHEN p IS NOT NULL OR e IS NOT NULL THEN 1 ELSE 0 END)
FROM (
  SELECT gpu_id, ts, utilization_percent AS util, memory_used_bytes AS mem,
         temperature_celsius AS temp, power_watts AS p, energy_joules AS e,
         LEAD(ts) OVER w AS nts, LEAD(energy_joules) OVER w AS ne,
         MIN(COALESCE(LEAD(ts) OVER w - ts, CASE WHEN EXISTS (
               SELECT 1 FROM gpu_metrics n WHERE n.gpu_id = m.gpu_id AND n.ts >= :hi + :cap
             ) THEN :cap ELSE 0 END), :cap) AS gap,
         {_week_sql("ts")} AS wd
  FROM gpu_metrics AS m INDEXED BY {GPU_VALUES_INDEX} WHERE ts >= :lo AND ts < :hi + :cap
  WINDOW w AS (PARTITION BY gpu_id ORDER BY ts)
) WHERE ts < :hi GROUP BY gpu_id, wd
"""


def gpu_figures(
    conn: sqlite3.Connection, lo: float, hi: float, *, now: float | None
) -> dict[GpuKey, GpuFigures]:
    """Figures of gpu_metrics and process_events rows in [lo, hi), per week and GPU.

    Processes still running count up to ``now``; with ``now`` None (figures of rows being
    deleted) they are left to their end event.
    """
    out = _metric_figures(conn, lo, hi)
    _add_workloads(out, _process_intervals(conn, lo, hi, now))
    return out


def _metric_figures(conn: sqlite3.Connection, lo: float, hi: float) -> dict[GpuKey, GpuFigures]:
    out: dict[GpuKey, GpuFigures] = {}
    params = {"lo": lo, "hi": hi, "cap": MAX_SAMPLE_SECONDS}
    for r in conn.execute(_GPU_SQL, params):
        out[(int(r[1]), int(r[0]))] = GpuFigures(
            util_sum=r[2] or 0.0,
            util_n=r[3],
            util_max=r[4],
            active_seconds=r[5] or 0.0,
            mem_sum=r[6] or 0.0,
            mem_n=r[7],
            mem_max=r[8],
            temp_sum=r[9] or 0.0,
            temp_n=r[10],
            temp_max=r[11],
            energy_joules=r[12] or 0.0,
            energy_n=r[13] or 0,
        )
    return out


def _add_workloads(
    out: dict[GpuKey, GpuFigures],
    intervals: list[tuple[int, str, float, float]],
    weeks: set[int] | None = None,
) -> None:
    """Add each process interval's seconds to the weeks it spans (only ``weeks``, if given)."""
    for gpu_id, workload, begin, end in intervals:
        while begin < end:
            wd = week_day(begin)
            stop = min(end, (wd + 7) * DAY)
            if weeks is None or wd in weeks:
                fig = out.setdefault((wd, gpu_id), GpuFigures())
                fig.workload_seconds[workload] = (
                    fig.workload_seconds.get(workload, 0.0) + stop - begin
                )
            begin = stop


def _process_intervals(
    conn: sqlite3.Connection, lo: float, hi: float, now: float | None
) -> list[tuple[int, str, float, float]]:
    rows = conn.execute(
        "SELECT gpu_id, workload, ts - COALESCE(duration_seconds, ts - process_started_at, 0), ts"
        " FROM process_events WHERE event = 'end' AND ts >= ? AND ts < ?",
        (lo, hi),
    ).fetchall()
    if now is not None:
        rows += conn.execute(
            "SELECT s.gpu_id, s.workload, s.ts, ? FROM process_events s"
            " WHERE s.event = 'start' AND s.ts >= ? AND s.ts < ? AND NOT EXISTS ("
            "  SELECT 1 FROM process_events e WHERE e.event = 'end' AND e.gpu_id = s.gpu_id"
            "  AND e.pid = s.pid AND e.ts >= s.ts)",
            (now, lo, hi),
        ).fetchall()
    return [(int(g), str(w), float(b), float(e)) for g, w, b, e in rows]


def model_figures(conn: sqlite3.Connection, lo: float, hi: float) -> dict[ModelKey, ModelFigures]:
    """LLM sessions and tokens per week and model (load/unload calls excluded)."""
    out: dict[ModelKey, ModelFigures] = {}
    for model, wd, n, tokens in conn.execute(
        "SELECT COALESCE(model, '(unknown)'),"
        " CAST(started_at / 86400 AS INTEGER) - (CAST(started_at / 86400 AS INTEGER) + 3) % 7"
        " AS wd, COUNT(*), SUM(COALESCE(prompt_tokens, 0) + COALESCE(completion_tokens, 0))"
        " FROM llm_sessions WHERE started_at >= ? AND started_at < ?"
        " AND kind NOT IN ('load', 'unload') GROUP BY 1, 2",
        (lo, hi),
    ):
        out[(int(wd), str(model))] = ModelFigures(sessions=n, tokens=tokens or 0)
    return out


def keep_archived_figures(conn: sqlite3.Connection, cutoff: float) -> None:
    """Add the figures of rows older than cutoff to weekly_archived, before they are deleted.

    Call inside the transaction that deletes them, so that the figures are counted exactly once,
    and call :func:`forget_deleted_rows` after the deletes.
    """
    state = _load_state(conn)
    if state is not None:
        # Rows added since the last refresh and deleted now were never summarised, and will not
        # be found by rowid any more: their weeks are redone at the next refresh.
        state.dirty |= _new_row_weeks(conn, state.marks, below=cutoff)
        _save_state(conn, state)
    gpus = gpu_figures(conn, _FAR_PAST, cutoff, now=None)
    models = model_figures(conn, _FAR_PAST, cutoff)
    stored_g, stored_m = _archived(conn)
    for gk, gf in gpus.items():
        stored_g.setdefault(gk, GpuFigures()).add(gf)
    for mk, mf in models.items():
        stored_m.setdefault(mk, ModelFigures()).add(mf)
    conn.executemany(
        "INSERT OR REPLACE INTO weekly_archived VALUES (?, 'gpu', ?, ?)",
        [(wd, str(g), json.dumps(asdict(stored_g[(wd, g)]))) for wd, g in gpus],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO weekly_archived VALUES (?, 'model', ?, ?)",
        [(wd, m, json.dumps(asdict(stored_m[(wd, m)]))) for wd, m in models],
    )


def forget_deleted_rows(conn: sqlite3.Connection) -> None:
    """After rows were deleted: lower the rowid marks to what the tables still hold.

    SQLite gives a new row the largest rowid plus one, so once the newest rows are gone new rows
    may reuse rowids at or below a mark; lowering the mark keeps them visible as new.
    """
    state = _load_state(conn)
    if state is None:
        return
    for table in _TRACKED:
        state.marks[table] = min(state.marks.get(table, 0), _top_rowid(conn, table))
    _save_state(conn, state)


def _archived(
    conn: sqlite3.Connection,
) -> tuple[dict[GpuKey, GpuFigures], dict[ModelKey, ModelFigures]]:
    gpus: dict[GpuKey, GpuFigures] = {}
    models: dict[ModelKey, ModelFigures] = {}
    for wd, scope, key, figures in conn.execute("SELECT * FROM weekly_archived"):
        if scope == "gpu":
            gpus[(wd, int(key))] = GpuFigures(**json.loads(figures))
        else:
            models[(wd, key)] = ModelFigures(**json.loads(figures))
    return gpus, models


@dataclass(slots=True)
class _State:
    """What the last refresh saw: each tracked table's largest rowid, and weeks owed a redo."""

    marks: dict[str, int]
    dirty: set[int]


def _load_state(conn: sqlite3.Connection) -> _State | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_STATE,)).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    return _State(marks={k: int(v) for k, v in data["marks"].items()}, dirty=set(data["dirty"]))


def _save_state(conn: sqlite3.Connection, state: _State) -> None:
    value = json.dumps({"marks": state.marks, "dirty": sorted(state.dirty)})
    conn.execute(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (_STATE, value),
    )


def _top_rowid(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {table}").fetchone()[0])


def _new_row_weeks(
    conn: sqlite3.Connection, marks: dict[str, int], *, below: float = math.inf
) -> set[int]:
    """Weeks of rows added after the marks (with time before ``below``).

    A GPU row also changes the sample before it (its gap to the next one), which may lie in the
    previous week, up to MAX_SAMPLE_SECONDS earlier.
    """
    weeks: set[int] = set()
    for table, col in _TRACKED.items():
        for shift in (0.0, MAX_SAMPLE_SECONDS) if table == "gpu_metrics" else (0.0,):
            sql = (
                f"SELECT DISTINCT {_week_sql(f'({col} - :shift)')} FROM {table}"
                f" WHERE rowid > :mark AND {col} < :below"
            )
            params = {"shift": shift, "mark": marks.get(table, 0), "below": below}
            weeks.update(int(r[0]) for r in conn.execute(sql, params))
    return weeks


def _changed_weeks(
    conn: sqlite3.Connection,
    archived_g: dict[GpuKey, GpuFigures],
    archived_m: dict[ModelKey, ModelFigures],
    workloads: dict[GpuKey, GpuFigures],
) -> set[int]:
    """Weeks whose stored time per workload differs from what a refresh would write now
    (processes that ended, still run, or left with retention), or that lack a stored row."""
    stored_g: dict[GpuKey, str] = {}
    stored_m: set[ModelKey] = set()
    for start, gpu_id, model, work in conn.execute(
        "SELECT week_start, gpu_id, model, workload_seconds FROM weekly_summaries"
    ):
        if gpu_id is None:
            stored_m.add((round(start / DAY), model))
        else:
            stored_g[(round(start / DAY), int(gpu_id))] = work
    changed = {wd for wd, m in archived_m if (wd, m) not in stored_m}
    for key in stored_g.keys() | archived_g.keys() | workloads.keys():
        # The same additions in the same order as the refresh, so equal figures compare equal.
        total = GpuFigures()
        if key in archived_g:
            total.workload_seconds = dict(archived_g[key].workload_seconds)
        if key in workloads:
            total.add(GpuFigures(workload_seconds=workloads[key].workload_seconds))
        if stored_g.get(key) != json.dumps(total.workload_seconds, sort_keys=True):
            changed.add(key[0])
    return changed


def refresh_weekly_summaries(conn: sqlite3.Connection, *, now: float) -> int:
    """Recompute the summaries of the weeks that can have changed since the last refresh (all
    of them the first time) from SQLite plus archived figures; returns the rows stored in all."""
    # Marks first: rows written while this runs are seen again next time, never missed.
    marks = {table: _top_rowid(conn, table) for table in _TRACKED}
    state = _load_state(conn)
    archived_g, archived_m = _archived(conn)
    intervals = _process_intervals(conn, _FAR_PAST, math.inf, now)
    weeks: set[int] | None = None
    if state is not None:
        workloads: dict[GpuKey, GpuFigures] = {}
        _add_workloads(workloads, intervals)
        weeks = (
            {week_day(now)}
            | state.dirty
            | _new_row_weeks(conn, state.marks)
            | _changed_weeks(conn, archived_g, archived_m, workloads)
        )
    live_g: dict[GpuKey, GpuFigures] = {}
    live_m: dict[ModelKey, ModelFigures] = {}
    for lo, hi in _ranges(weeks):
        live_g.update(_metric_figures(conn, lo, hi))
        live_m.update(model_figures(conn, lo, hi))
    _add_workloads(live_g, intervals, weeks)
    gpus = {k: v for k, v in archived_g.items() if weeks is None or k[0] in weeks}
    models = {k: v for k, v in archived_m.items() if weeks is None or k[0] in weeks}
    for gk, gf in live_g.items():
        gpus.setdefault(gk, GpuFigures()).add(gf)
    for mk, mf in live_m.items():
        models.setdefault(mk, ModelFigures()).add(mf)
    rows = [_gpu_summary_row(wd, g, f, now) for (wd, g), f in gpus.items()]
    rows += [_model_summary_row(wd, m, f, now) for (wd, m), f in models.items()]
    with conn:
        if weeks is None:
            conn.execute("DELETE FROM weekly_summaries")
        else:
            conn.executemany(
                "DELETE FROM weekly_summaries WHERE week_start = ?", [(wd * DAY,) for wd in weeks]
            )
        conn.executemany(
            "INSERT INTO weekly_summaries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
        )
        _save_state(conn, _State(marks=marks, dirty=set()))
    return int(conn.execute("SELECT COUNT(*) FROM weekly_summaries").fetchone()[0])


def _ranges(weeks: set[int] | None) -> list[tuple[float, float]]:
    """Time ranges covering ``weeks`` (None: all time), adjacent weeks merged into one."""
    if weeks is None:
        return [(_FAR_PAST, math.inf)]
    out: list[tuple[float, float]] = []
    for wd in sorted(weeks):
        lo, hi = wd * DAY, (wd + 7) * DAY
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _model_summary_row(wd: int, model: str, f: ModelFigures, stamp: float) -> tuple[object, ...]:
    none = (None,) * 8
    return (week_label(wd), wd * DAY, None, model, *none, "{}", f.sessions, f.tokens, stamp)


def _avg(total: float, n: int) -> float | None:
    return total / n if n else None


def _gpu_summary_row(wd: int, gpu_id: int, f: GpuFigures, stamp: float) -> tuple[object, ...]:
    return (
        week_label(wd),
        wd * DAY,
        gpu_id,
        None,
        f.active_seconds / 3600.0,
        _avg(f.util_sum, f.util_n),
        f.util_max,
        _avg(f.mem_sum, f.mem_n),
        f.mem_max,
        _avg(f.temp_sum, f.temp_n),
        f.temp_max,
        f.energy_joules / 3600.0 if f.energy_n else None,
        json.dumps(f.workload_seconds, sort_keys=True),
        None,
        None,
        stamp,
    )


def summary_from_row(row: sqlite3.Row) -> WeeklySummary:
    return WeeklySummary(
        week=row["week"],
        gpu_id=row["gpu_id"],
        model=row["model"],
        hours_active=row["hours_active"],
        avg_utilization_percent=row["avg_utilization_percent"],
        peak_utilization_percent=row["peak_utilization_percent"],
        avg_memory_used_bytes=row["avg_memory_used_bytes"],
        peak_memory_used_bytes=row["peak_memory_used_bytes"],
        avg_temperature_celsius=row["avg_temperature_celsius"],
        peak_temperature_celsius=row["peak_temperature_celsius"],
        energy_wh=row["energy_wh"],
        workload_seconds=json.loads(row["workload_seconds"]),
        llm_sessions=row["llm_sessions"],
        llm_tokens=row["llm_tokens"],
    )
