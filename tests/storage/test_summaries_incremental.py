"""Incremental weekly summaries equal a full recompute, through late rows and retention."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from pathlib import Path

import pytest

from gpm.model import GpuSample, LlmSession, ProcessEvent, Workload
from gpm.storage.archive import run_retention
from gpm.storage.db import open_database
from gpm.storage.summaries import (
    forget_deleted_rows,
    keep_archived_figures,
    refresh_weekly_summaries,
)
from gpm.storage.writer import gpu_row, insert_rows, process_event_row, session_row

from .helpers import DAY, HOUR, MONDAY, process_event, sample, session

_STATE_KEY = "weekly_summaries_state"
_COLUMNS = (
    "week, gpu_id, model, hours_active, avg_utilization_percent, peak_utilization_percent,"
    " avg_memory_used_bytes, peak_memory_used_bytes, avg_temperature_celsius,"
    " peak_temperature_celsius, energy_wh, workload_seconds, llm_sessions, llm_tokens"
)

Rows = tuple[list[GpuSample], list[LlmSession], list[ProcessEvent]]


def _summaries(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM weekly_summaries ORDER BY week, gpu_id, model"
    ).fetchall()
    return [(*r[:11], json.loads(r[11]), *r[12:]) for r in rows]


def _full(conn: sqlite3.Connection, now: float) -> list[tuple[object, ...]]:
    """Summaries a full recompute gives on a copy of conn's database as it is now."""
    copy = sqlite3.connect(":memory:")
    conn.backup(copy)
    copy.execute("DELETE FROM meta WHERE key = ?", (_STATE_KEY,))
    refresh_weekly_summaries(copy, now=now)
    try:
        return _summaries(copy)
    finally:
        copy.close()


def _same(a: object, b: object) -> bool:
    """Equal, floats up to rounding (archiving splits one sum into two)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _assert_same(got: list[tuple[object, ...]], want: list[tuple[object, ...]]) -> None:
    assert [r[:3] for r in got] == [r[:3] for r in want]
    for g, w in zip(got, want, strict=True):
        assert _same(g, w), (g, w)


def _insert(conn: sqlite3.Connection, rows: Rows) -> None:
    samples, sessions, events = rows
    with conn:
        insert_rows(conn, "gpu_metrics", [gpu_row(s) for s in samples])
        insert_rows(conn, "llm_sessions", [session_row(s) for s in sessions])
        insert_rows(conn, "process_events", [process_event_row(e) for e in events])


class _Traffic:
    """Random polls (gaps on both sides of the 60 s cap), sessions and processes, some late."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.last = {0: MONDAY - 15 * DAY, 1: MONDAY - 15 * DAY}
        self.sessions = 0
        self.pid = 100
        self.open: list[ProcessEvent] = []

    def step(self, until: float) -> Rows:
        r = self.rng
        samples: list[GpuSample] = []
        for gpu, ts in self.last.items():
            while ts < until:
                ts += r.choice((20.0, 59.5, 61.0, 900.0, 1800.0))
                util = None if r.random() < 0.05 else r.choice((0.0, 3.0, 50.0, 100.0))
                energy = r.random() < 0.5
                samples.append(
                    sample(
                        gpu,
                        ts,
                        util=util,
                        temperature_celsius=r.uniform(30, 90),
                        energy_joules=ts * 10.0 if energy else None,
                    )
                )
            self.last[gpu] = ts
        late_gpu = r.choice((0, 1))
        # Arriving late, often for a week already summarised (but newer than retention's cutoff:
        # a poll whose neighbours were already deleted cannot have its gaps counted again).
        for _ in range(r.randint(0, 3)):
            samples.append(sample(late_gpu, until - r.uniform(2 * DAY, 3.5 * DAY), util=77.0))
        sessions = []
        for _ in range(r.randint(0, 4)):
            self.sessions += 1
            late = r.random() < 0.3
            ts = until - r.uniform(0, 10 * DAY if late else 0.5 * DAY)
            sessions.append(session(self.sessions, ts, model=r.choice(("a", "b"))))
        events = [self._end(e, until) for e in self.open]
        self.open = []
        for _ in range(r.randint(0, 2)):
            self.pid += 1
            start = until - r.uniform(0, 0.5 * DAY)
            work = r.choice((Workload.ML_TRAINING, Workload.GAMING))
            gpu = r.choice((0, 1))
            begin = process_event(start, "start", pid=self.pid, gpu_id=gpu, workload=work)
            events.append(begin)
            if r.random() < 0.5:
                events.append(self._end(begin, until))
            else:
                self.open.append(begin)  # runs over a refresh, ends at the next step
        return samples, sessions, events

    def _end(self, start: ProcessEvent, until: float) -> ProcessEvent:
        end = min(until, start.timestamp + self.rng.uniform(60, 2 * DAY))
        return process_event(
            end,
            "end",
            pid=start.pid,
            gpu_id=start.gpu_id,
            workload=start.workload,
            duration=end - start.timestamp,
        )


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_refresh_equals_full_recompute(tmp_path: Path, seed: int) -> None:
    traffic = _Traffic(seed)
    inc_path, ref_path = tmp_path / "inc.db", tmp_path / "ref.db"
    ref = open_database(ref_path)
    now = MONDAY - 14 * DAY
    for step in range(30):
        now += 13 * HOUR  # refreshes land anywhere in a week, weeks roll over in between
        rows = traffic.step(now)
        inc = open_database(inc_path)
        _insert(inc, rows)
        _insert(ref, rows)
        if step % 3 == 2:
            inc.close()
            run_retention(inc_path, tmp_path / "a", retention_days=4, archive=False, now=now)
            inc = open_database(inc_path)
        else:
            refresh_weekly_summaries(inc, now=now)
        got = _summaries(inc)
        _assert_same(got, _full(inc, now))
        inc.close()
        # Whole weeks, even those whose first days left SQLite, as if nothing had been deleted.
        _assert_same(got, _full(ref, now))
    ref.close()
    assert len(got) > 10  # several weeks, both GPUs and both models


def test_a_refresh_leaves_unchanged_weeks_alone(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "gpm.db")
    _insert(conn, ([sample(0, MONDAY - 7 * DAY + m * 60) for m in range(100)], [], []))
    refresh_weekly_summaries(conn, now=MONDAY + DAY)
    _insert(conn, ([sample(0, MONDAY + HOUR + m * 60) for m in range(100)], [], []))
    assert refresh_weekly_summaries(conn, now=MONDAY + 2 * DAY) == 2
    stamps = dict(conn.execute("SELECT week, updated_at FROM weekly_summaries"))
    assert stamps == {"2026-W47": MONDAY + DAY, "2026-W48": MONDAY + 2 * DAY}
    # A row arriving late for the old week brings it back into the refresh.
    _insert(conn, ([sample(0, MONDAY - 3 * DAY, util=99.0)], [], []))
    refresh_weekly_summaries(conn, now=MONDAY + 3 * DAY)
    peak = conn.execute(
        "SELECT peak_utilization_percent FROM weekly_summaries WHERE week = '2026-W47'"
    ).fetchone()[0]
    assert peak == 99.0
    conn.close()


def test_rows_archived_before_any_refresh_saw_them_still_count(tmp_path: Path) -> None:
    """Rows written between a refresh and retention's delete, and rowids reused after the
    tables were emptied, both reach the summaries."""
    conn = open_database(tmp_path / "gpm.db")
    _insert(conn, ([sample(0, MONDAY + m * 60) for m in range(10)], [session(1, MONDAY)], []))
    refresh_weekly_summaries(conn, now=MONDAY + DAY)
    _insert(conn, ([sample(0, MONDAY - 2 * DAY, util=100.0)], [session(2, MONDAY - DAY)], []))
    cutoff = MONDAY + DAY  # everything goes, as retention does once the refresh is done
    with conn:
        keep_archived_figures(conn, cutoff)
        conn.execute("DELETE FROM gpu_metrics WHERE ts < ?", (cutoff,))
        conn.execute("DELETE FROM llm_sessions WHERE started_at < ?", (cutoff,))
        forget_deleted_rows(conn)
    _insert(conn, ([sample(0, MONDAY + 2 * DAY)], [session(3, MONDAY + 2 * DAY)], []))
    refresh_weekly_summaries(conn, now=MONDAY + 3 * DAY)
    w47 = conn.execute(
        "SELECT peak_utilization_percent FROM weekly_summaries WHERE week = '2026-W47'"
        " AND gpu_id = 0"
    ).fetchone()
    assert w47 == (100.0,)
    w48 = conn.execute(
        "SELECT llm_sessions FROM weekly_summaries WHERE week = '2026-W48' AND model IS NOT NULL"
    ).fetchone()
    assert w48 == (2,)  # session 1 (archived) and session 3 (a reused rowid)
    conn.close()


def test_a_process_running_over_a_week_boundary_fills_the_old_week(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "gpm.db")
    _insert(conn, ([], [], [process_event(MONDAY - DAY, "start", workload=Workload.GAMING)]))
    refresh_weekly_summaries(conn, now=MONDAY - DAY + HOUR)
    refresh_weekly_summaries(conn, now=MONDAY + HOUR)  # no new rows, but W47 has grown
    work = dict(conn.execute("SELECT week, workload_seconds FROM weekly_summaries"))
    assert json.loads(work["2026-W47"]) == {"gaming": DAY}
    assert json.loads(work["2026-W48"]) == {"gaming": HOUR}
    conn.close()
