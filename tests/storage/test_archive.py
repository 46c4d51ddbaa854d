"""Retention: rows move to Parquet day files that DuckDB and pyarrow read, without loss."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpm.storage.archive import ArchiveError, run_retention
from gpm.storage.queries import Queries
from gpm.storage.results import HeatmapCell

from .helpers import DAY, HOUR, MONDAY, alert, count, fill, process_event, sample, session


def _history(db: Path, start: float, hours: int) -> None:
    fill(
        db,
        samples=[sample(g, start + h * HOUR, util=float(h)) for h in range(hours) for g in (0, 1)],
        sessions=[session(h, start + h * HOUR + 5) for h in range(hours)],
        events=[
            process_event(start + 10, "start"),
            process_event(start + 70, "end", duration=60.0),
        ],
        alerts=[alert(start + 20)],
    )


def test_retention_zero_moves_everything_to_parquet(tmp_path: Path) -> None:
    db, arch = tmp_path / "gpm.db", tmp_path / "archive"
    _history(db, MONDAY, 30)  # 30 hours: two UTC days
    now = MONDAY + 2 * DAY
    report = run_retention(db, arch, retention_days=0, archive=True, now=now)
    assert report.archived["gpu_metrics"] == 60 and report.deleted["gpu_metrics"] == 60
    assert report.archived["llm_sessions"] == 30 and report.deleted["alerts"] == 1
    assert count(db, "gpu_metrics") == 0
    files = sorted(p.name for p in (arch / "gpu_metrics").iterdir())
    assert files == ["2026-11-23.parquet", "2026-11-24.parquet"]
    assert set(report.files) >= {arch / "gpu_metrics" / f for f in files}

    tbl = pq.read_table(arch / "gpu_metrics")
    assert tbl.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert tbl.num_rows == 60
    assert (
        pq.ParquetFile(arch / "gpu_metrics" / files[0]).metadata.row_group(0).column(0).compression
        == "ZSTD"
    )
    con = duckdb.connect()
    ts_type, n, util = con.execute(
        f"SELECT typeof(MIN(ts)), COUNT(*), MAX(utilization_percent) "
        f"FROM read_parquet('{arch}/gpu_metrics/*.parquet')"
    ).fetchone()
    assert ts_type == "TIMESTAMP WITH TIME ZONE" and n == 60 and util == 29.0
    (first,) = con.execute(
        f"SELECT epoch(MIN(started_at)) FROM read_parquet('{arch}/llm_sessions/*.parquet')"
    ).fetchone()
    assert first == MONDAY + 5


def test_archiving_a_day_twice_does_not_duplicate(tmp_path: Path) -> None:
    db, arch = tmp_path / "gpm.db", tmp_path / "archive"
    fill(db, samples=[sample(0, MONDAY + i * 60) for i in range(10)])
    run_retention(db, arch, retention_days=0, archive=True, now=MONDAY + 600)
    # A later run brings more rows of the same day, and one already archived (crash replay).
    fill(db, samples=[sample(0, MONDAY + i * 60) for i in range(9, 20)])
    run_retention(db, arch, retention_days=0, archive=True, now=MONDAY + 1200)
    tbl = pq.read_table(arch / "gpu_metrics" / "2026-11-23.parquet")
    assert tbl.num_rows == 20
    assert len(set(tbl.column("ts").to_pylist())) == 20


def test_only_rows_older_than_retention_leave(tmp_path: Path) -> None:
    db, arch = tmp_path / "gpm.db", tmp_path / "archive"
    fill(db, samples=[sample(0, MONDAY + d * DAY) for d in range(10)])
    report = run_retention(db, arch, retention_days=7, archive=False, now=MONDAY + 9.5 * DAY)
    assert report.deleted["gpu_metrics"] == 3 and report.files == []
    assert not arch.exists()
    assert count(db, "gpu_metrics") == 7


@pytest.mark.parametrize("blocker", ["file_for_dir", "file_for_table_dir"])
def test_failed_archive_write_deletes_nothing(tmp_path: Path, blocker: str) -> None:
    db, arch = tmp_path / "gpm.db", tmp_path / "archive"
    _history(db, MONDAY, 5)
    if blocker == "file_for_dir":
        arch.write_text("not a directory")
    else:
        arch.mkdir()
        (arch / "llm_sessions").write_text("not a directory")  # gpu_metrics succeeds first
    with pytest.raises(ArchiveError, match="nothing was deleted"):
        run_retention(db, arch, retention_days=0, archive=True, now=MONDAY + DAY)
    assert count(db, "gpu_metrics") == 10 and count(db, "llm_sessions") == 5
    assert count(db, "weekly_archived") == 0


def test_queries_span_sqlite_and_archives(tmp_path: Path) -> None:
    db, arch = tmp_path / "gpm.db", tmp_path / "archive"
    _history(db, MONDAY, 48)
    run_retention(db, arch, retention_days=1.5, archive=True, now=MONDAY + 2 * DAY)
    assert 0 < count(db, "gpu_metrics") < 96
    q = Queries(db, arch)
    chart = q.chart(0, MONDAY, MONDAY + 2 * DAY, points=48)
    assert len(chart.points) == 48
    assert [p.metrics["utilization_percent"].avg for p in chart.points] == [
        float(h) for h in range(48)
    ]
    assert chart.stats["utilization_percent"].max == 47.0
    hist = q.historical(MONDAY, MONDAY + 2 * DAY, points=48)
    assert [len(g.points) for g in hist.gpus] == [48, 48]
    total, page, _ = q.sessions(MONDAY, MONDAY + 2 * DAY, limit=50)
    assert total == 48 and [s.id for s in page] == [f"s{h}" for h in range(47, -1, -1)]
    total, page, _ = q.sessions(MONDAY, MONDAY + 2 * DAY, limit=5, offset=40)
    assert [s.id for s in page] == ["s7", "s6", "s5", "s4", "s3"]
    assert [e.event for e in q.process_events(MONDAY, MONDAY + DAY)[0]] == ["end", "start"]
    assert len(q.alerts(MONDAY, MONDAY + DAY)) == 1
    assert q.data_range() == (MONDAY, MONDAY + 47 * HOUR)
    assert q.llm_stats(MONDAY, MONDAY + 2 * DAY).totals.sessions == 48
    cells = q.heatmap(0, MONDAY, MONDAY + 2 * DAY).cells
    assert len(cells) == 48 and cells[30] == HeatmapCell(date(2026, 11, 24), 6, 30.0)
    q.close()
