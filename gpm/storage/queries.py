"""History queries for the API and the CLI, over SQLite and the Parquet archives together.

Time series are in :mod:`gpm.storage.series`, listings page through :mod:`gpm.storage.pages`,
LLM statistics are summed up in :mod:`gpm.storage.llm_stats`; the archive is read only for the
part of a range older than what retention has archived (``meta.archived_before``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from gpm.energy.attribution import IDLE
from gpm.model import (
    Alert,
    Classification,
    GpuEvent,
    GpuProcess,
    GpuSample,
    LlmSession,
    ModelEvent,
    Outcome,
    ProcessEvent,
    Snapshot,
    WeeklySummary,
    Workload,
)
from gpm.storage import archive as arch
from gpm.storage import llm_stats as stats
from gpm.storage.db import GPU_NUMERIC_COLUMNS, HISTORY_TABLES
from gpm.storage.energy import EnergyQueries
from gpm.storage.pages import Cursor, Page, newest_first
from gpm.storage.reader import Dict, arrow_to_dicts
from gpm.storage.results import LlmStats
from gpm.storage.series import SeriesQueries
from gpm.storage.summaries import DAY, MAX_SAMPLE_SECONDS, WEEK, summary_from_row, week_day


class Queries(SeriesQueries, EnergyQueries):
    """Read-only history queries; see the module docstring."""

    def iter_rows(
        self, table: str, start: float, end: float, chunk: int = 5000
    ) -> Iterator[list[Dict]]:
        """Every row of a history table in [start, end), oldest first, in chunks (for export)."""
        spec = HISTORY_TABLES[table]
        part = self._archived_part(start, end)
        if part is not None and self.archive_dir is not None:
            for tbl in arch.iter_archive(self.archive_dir, table, *part):
                for batch in tbl.to_batches(chunk):
                    import pyarrow as pa

                    yield arrow_to_dicts(pa.Table.from_batches([batch]), table)
        cols = ", ".join(f'"{c}"' for c in spec.column_names)
        cur = self._conn().execute(
            f"SELECT {cols} FROM {table} WHERE {spec.time_column} >= ? AND "
            f"{spec.time_column} < ? ORDER BY {spec.time_column}",
            (start, end),
        )
        while rows := cur.fetchmany(chunk):
            yield [dict(r) for r in rows]

    # -- now --------------------------------------------------------------------------------

    def latest_snapshot(self) -> Snapshot | None:
        """The newest poll as stored (for gpm-server, which has no live state)."""
        conn = self._conn()
        poll = conn.execute("SELECT * FROM latest_poll WHERE id = 1").fetchone()
        if poll is None:
            return None
        rows = conn.execute(
            "SELECT * FROM gpu_metrics ORDER BY rowid DESC LIMIT ?", (poll["gpu_count"],)
        ).fetchall()
        unknown = {int(x) for x in poll["unknown_processes"].split(",") if x}
        procs: dict[int, list[GpuProcess]] = {}
        for p in conn.execute("SELECT * FROM latest_processes ORDER BY gpu_id, pid"):
            cls = None
            if p["workload"] is not None:
                cls = Classification(
                    workload=Workload(p["workload"]),
                    reason=p["reason"] or "",
                    model=p["model"],
                    steam_app_id=p["steam_app_id"],
                    container=p["container"],
                )
            procs.setdefault(p["gpu_id"], []).append(
                GpuProcess(
                    pid=p["pid"],
                    name=p["name"],
                    gpu_memory_bytes=p["gpu_memory_bytes"],
                    sm_utilization_percent=p["sm_utilization_percent"],
                    kind=p["kind"],
                    user=p["user"],
                    started_at=p["started_at"],
                    classification=cls,
                )
            )
        gpus = tuple(
            _sample(dict(r), None if r["gpu_id"] in unknown else tuple(procs.get(r["gpu_id"], ())))
            for r in sorted(rows, key=lambda r: r["gpu_id"])
        )
        return Snapshot(
            timestamp=poll["ts"],
            source=poll["source"],
            gpus=gpus,
            message=poll["message"],
            poll_seconds=poll["poll_seconds"],
        )

    def data_range(self) -> tuple[float, float] | None:
        """Oldest and newest GPU sample time, archives included."""
        lo, hi = self._conn().execute("SELECT MIN(ts), MAX(ts) FROM gpu_metrics").fetchone()
        if self.archive_dir is not None:
            days = arch.archive_days(self.archive_dir, "gpu_metrics")
            for day in days[:1]:
                first = arch.read_archive(
                    self.archive_dir, "gpu_metrics", day * DAY, (day + 1) * DAY, ["ts"]
                )
                if first.num_rows:
                    oldest = min(t for t in arch.epoch_seconds(first.column("ts")) if t is not None)
                    lo = oldest if lo is None else min(lo, oldest)
            if hi is None and days:
                last = arch.read_archive(
                    self.archive_dir, "gpu_metrics", days[-1] * DAY, (days[-1] + 1) * DAY, ["ts"]
                )
                stamps = [t for t in arch.epoch_seconds(last.column("ts")) if t is not None]
                hi = max(stamps) if stamps else None
        if lo is None or hi is None:
            return None
        return float(lo), float(hi)

    def gpu_ids(self) -> list[tuple[int, str | None, str | None]]:
        """Every GPU id in the database with its newest uuid and name."""
        conn = self._conn()
        out = []
        for gid in self._ids():
            r = conn.execute(
                "SELECT uuid, name FROM gpu_metrics WHERE gpu_id = ? ORDER BY ts DESC LIMIT 1",
                (gid,),
            ).fetchone()
            out.append((int(gid), r[0], r[1]))
        return out

    def _page(
        self,
        table: str,
        start: float,
        end: float,
        equals: dict[str, Any],
        limit: int,
        cursor: Cursor | None,
    ) -> Page:
        """One newest-first page of an event table, SQLite then the archive (see pages.py)."""
        part = self._archived_part(start, end)
        archive = None if part is None or self.archive_dir is None else (self.archive_dir, part[1])
        return newest_first(
            self._conn(), table, (start, end), equals=equals, limit=limit, cursor=cursor,
            archive=archive, to_dicts=arrow_to_dicts,
        )  # fmt: skip

    def sessions(
        self,
        start: float,
        end: float,
        *,
        model: str | None = None,
        limit: int = 100,
        offset: int = 0,
        cursor: Cursor | None = None,
    ) -> tuple[int, list[LlmSession], Cursor | None]:
        """(total in range, one page newest first, the cursor of the next page or None).

        ``offset`` skips rows before the page (for clients that page by offset); ``cursor``
        continues where a page ended, at the cost of one page however far it is.
        """
        equals = {} if model is None else {"model": model}
        page = self._page("llm_sessions", start, end, equals, offset + limit, cursor)
        rows = page.rows[offset:]
        return (
            self._count("llm_sessions", start, end, equals),
            [_session(r) for r in rows],
            page.next,
        )

    def _count(self, table: str, start: float, end: float, equals: dict[str, Any]) -> int:
        """Rows of ``table`` in range (archived ones included) whose columns equal ``equals``."""
        t = HISTORY_TABLES[table].time_column
        where = "".join(f' AND "{c}" = ?' for c in equals)
        (n,) = (
            self._conn()
            .execute(
                f"SELECT COUNT(*) FROM {table} WHERE {t} >= ? AND {t} < ?{where}",
                (start, end, *equals.values()),
            )
            .fetchone()
        )
        part = self._archived_part(start, end)
        if part is None or self.archive_dir is None:
            return int(n)
        columns = [t, *equals]
        archived = arch.read_archive(self.archive_dir, table, *part, columns=columns)
        rows = arrow_to_dicts(archived, table)
        return int(n) + sum(1 for r in rows if all(r[c] == v for c, v in equals.items()))

    def llm_stats(self, start: float, end: float) -> LlmStats:
        """Totals and per-model percentiles and histograms (``/api/llm-stats`` less ``hours``)."""
        cols = (
            "model",
            "tokens_per_second",
            "ttft_ms",
            "prompt_tokens",
            "completion_tokens",
            "duration_ms",
            "outcome",
            "kind",
        )
        return stats.summarize(self.generation_rows(start, end, cols))

    def completion_tokens(self, start: float, end: float) -> dict[str, int | None]:
        """Completion tokens per model over [start, end); None for a model none of whose
        sessions reported a count (an unknown is not 0)."""
        out: dict[str, int | None] = {}
        for r in self.generation_rows(start, end, ("model", "completion_tokens")):
            model, tokens = r["model"] or "(unknown)", r["completion_tokens"]
            known = out.get(model)
            out[model] = known if tokens is None else (known or 0) + tokens
        return out

    def observed_seconds(self, start: float, end: float) -> dict[int, float]:
        """Seconds each GPU was read in [start, end), by the rule of the weekly summaries' active
        hours: each sample stands for the time to the next one, at most MAX_SAMPLE_SECONDS (the
        last one a full MAX_SAMPLE_SECONDS when the GPU has a later sample), so observed minus
        active is the time read idle, and time GPM did not run is neither."""
        cap = MAX_SAMPLE_SECONDS
        stamps: dict[int, list[float]] = {}
        for gpu_id, ts in self._conn().execute(
            "SELECT gpu_id, ts FROM gpu_metrics WHERE ts >= ? AND ts < ?", (start, end + cap)
        ):
            stamps.setdefault(int(gpu_id), []).append(float(ts))
        part = self._archived_part(start, end + cap)
        if part is not None and self.archive_dir is not None:
            tbl = arch.read_archive(self.archive_dir, "gpu_metrics", *part, ["gpu_id", "ts"])
            ids = tbl.column("gpu_id").to_pylist()
            for gpu_id, when in zip(ids, arch.epoch_seconds(tbl.column("ts")), strict=True):
                if when is not None:
                    stamps.setdefault(int(gpu_id), []).append(when)
        out: dict[int, float] = {}
        for gpu_id, times in stamps.items():
            times.sort()
            if times[0] >= end:
                continue
            seconds = sum(min(b - a, cap) for a, b in pairwise(times) if a < end)
            if times[-1] < end and self._has_sample(gpu_id, end + cap):
                seconds += cap
            out[gpu_id] = seconds
        return dict(sorted(out.items()))

    def _has_sample(self, gpu_id: int, since: float) -> bool:
        """Whether SQLite (which holds the newest rows) has a sample of the GPU at ``since`` or
        later."""
        sql = "SELECT 1 FROM gpu_metrics WHERE gpu_id = ? AND ts >= ? LIMIT 1"
        return self._conn().execute(sql, (gpu_id, since)).fetchone() is not None

    def process_events(
        self,
        start: float,
        end: float,
        *,
        gpu_id: int | None = None,
        limit: int = 500,
        cursor: Cursor | None = None,
    ) -> tuple[list[ProcessEvent], Cursor | None]:
        """One page newest first, and the cursor of the next page or None."""
        page = self._gpu_page("process_events", start, end, gpu_id, limit, cursor)
        return [_process_event(r) for r in page.rows], page.next

    def _gpu_page(
        self,
        table: str,
        start: float,
        end: float,
        gpu_id: int | None,
        limit: int,
        cursor: Cursor | None,
    ) -> Page:
        equals = {} if gpu_id is None else {"gpu_id": gpu_id}
        return self._page(table, start, end, equals, limit, cursor)

    def gpu_events(
        self,
        start: float,
        end: float,
        *,
        gpu_id: int | None = None,
        limit: int = 500,
        cursor: Cursor | None = None,
    ) -> tuple[list[GpuEvent], Cursor | None]:
        """Xid errors, one page newest first, and the cursor of the next page or None."""
        page = self._gpu_page("gpu_events", start, end, gpu_id, limit, cursor)
        events = [
            GpuEvent(r["ts"], r["gpu_id"], r["gpu_uuid"], r["kind"], r["code"]) for r in page.rows
        ]
        return events, page.next

    def alerts(self, start: float, end: float, limit: int = 500) -> list[Alert]:
        return [
            Alert(
                timestamp=r["ts"],
                rule=r["rule"],
                state=r["state"],
                severity=r["severity"],
                message=r["message"],
                gpu_id=r["gpu_id"],
                value=r["value"],
                threshold=r["threshold"],
            )
            for r in self._page("alerts", start, end, {}, limit, None).rows
        ]

    def model_events(self, start: float, end: float) -> list[ModelEvent]:
        """Model loads and unloads in the range, newest first."""
        return [
            ModelEvent(
                timestamp=r["ts"],
                event=r["event"],
                model=r["model"],
                size_bytes=r["size_bytes"],
                vram_bytes=r["vram_bytes"],
            )
            for r in self._page("model_events", start, end, {}, 10_000, None).rows
        ]

    def weekly_summaries(self, weeks: int, *, now: float | None = None) -> list[WeeklySummary]:
        """Summaries of the last ``weeks`` ISO weeks (this one included), newest week first."""
        ref = now if now is not None else datetime.now(UTC).timestamp()
        since = week_day(ref) * DAY - (weeks - 1) * WEEK
        rows = (
            self._conn()
            .execute(
                "SELECT * FROM weekly_summaries WHERE week_start >= ? "
                "ORDER BY week_start DESC, gpu_id IS NULL, gpu_id, model",
                (since,),
            )
            .fetchall()
        )
        summaries = [summary_from_row(r) for r in rows]
        energy: dict[float, dict[tuple[int, str], float]] = {}
        for row, s in zip(rows, summaries, strict=True):
            if s.gpu_id is None or s.model is not None:
                continue
            start = row["week_start"]
            if start not in energy:
                energy[start] = self.gpu_workload_joules(start, start + WEEK)
            joules = {w: j for (g, w), j in energy[start].items() if g == s.gpu_id}
            if joules:
                s.idle_energy_wh = joules.pop(IDLE, 0.0) / 3600
                s.workload_energy_wh = {w: j / 3600 for w, j in sorted(joules.items())}
        return summaries


# -- helpers --------------------------------------------------------------------------------------


def _sample(r: Dict, processes: tuple[GpuProcess, ...] | None) -> GpuSample:
    throttle = r["throttle_reasons"]
    return GpuSample(
        gpu_id=r["gpu_id"],
        timestamp=r["ts"],
        uuid=r["uuid"],
        name=r["name"],
        simulated=bool(r["simulated"]),
        up=bool(r["up"]),
        error=r["error"],
        throttle_reasons=None if throttle is None else tuple(x for x in throttle.split(",") if x),
        processes=processes,
        **{name: r[name] for name, _ in GPU_NUMERIC_COLUMNS},
    )


def _session(r: Dict) -> LlmSession:
    fields = {k: v for k, v in r.items() if k in HISTORY_TABLES["llm_sessions"].column_names}
    fields["outcome"] = Outcome(r["outcome"])
    fields["streamed"] = bool(r["streamed"])
    return LlmSession(**fields)


def _process_event(r: Dict) -> ProcessEvent:
    fields = {k: v for k, v in r.items() if k not in ("ts", "event", "workload")}
    return ProcessEvent(
        timestamp=r["ts"], event=r["event"], workload=Workload(r["workload"]), **fields
    )
