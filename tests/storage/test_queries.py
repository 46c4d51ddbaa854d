"""Downsampled charts, LLM statistics and weekly summaries over known synthetic data."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gpm.model import Outcome, Workload
from gpm.storage.db import open_database
from gpm.storage.llm_stats import percentile
from gpm.storage.queries import Queries
from gpm.storage.results import Spread
from gpm.storage.summaries import refresh_weekly_summaries

from .helpers import DAY, HOUR, MONDAY, fill, process_event, sample, session


def test_chart_buckets_have_exact_min_avg_max(tmp_path: Path) -> None:
    db = tmp_path / "gpm.db"
    # 100 samples one second apart; bucket of 10 s holds utilizations 10b .. 10b+9.
    fill(
        db,
        samples=[
            sample(0, MONDAY + i, util=float(i), memory_used_bytes=i * 80, memory_total_bytes=8000)
            for i in range(100)
        ]
        + [sample(1, MONDAY + i, util=99.0) for i in range(100)],
    )
    q = Queries(db, None)
    chart = q.chart(0, MONDAY, MONDAY + 100, points=10)
    assert chart.bucket_seconds == 10.0
    assert [p.timestamp for p in chart.points] == [MONDAY + 10 * b for b in range(10)]
    third = chart.points[3].metrics
    assert third["utilization_percent"] == Spread(min=30.0, avg=34.5, max=39.0)
    assert third["memory_percent"] == Spread(min=30.0, avg=34.5, max=39.0)
    assert third["memory_used_bytes"].max == 39 * 80
    stats = chart.stats["utilization_percent"]
    assert (stats.min, stats.avg, stats.max) == (0.0, 49.5, 99.0)
    assert stats.trend_percent == pytest.approx(100 * (94.5 - 84.5) / 84.5)
    assert chart.stats["power_watts"].trend_percent == 0.0
    assert q.chart(5, MONDAY, MONDAY + 100).points == ()
    q.close()


def test_queries_work_from_many_threads(tmp_path: Path) -> None:
    db = tmp_path / "gpm.db"
    fill(db, samples=[sample(0, MONDAY + i) for i in range(50)])
    q = Queries(db, None)
    results: list[int] = []

    def work() -> None:
        results.append(len(q.historical(MONDAY, MONDAY + 50, points=50).gpus[0].points))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [50] * 8
    assert q.gpu_ids() == [(0, "GPU-0", "Fake GPU")]
    q.close()


def test_llm_stats_per_model(tmp_path: Path) -> None:
    db = tmp_path / "gpm.db"
    fill(
        db,
        sessions=[
            session(i, MONDAY + i, model="fast", tokens_per_second=float(10 * i))
            for i in range(1, 11)
        ]
        + [
            session(20, MONDAY + 20, model="slow", tokens_per_second=5.0, outcome=Outcome.ERROR),
            session(21, MONDAY + 21, model="slow", kind="load", tokens_per_second=None),
        ],
    )
    stats = Queries(db, None).llm_stats(MONDAY, MONDAY + DAY)
    totals = stats.totals
    assert totals.sessions == 11 and totals.errors == 1
    assert totals.best_model == "fast" and totals.total_tokens == 1100
    fast = stats.models[0]
    assert fast.model == "fast" and fast.tokens_per_second_p50 == 55.0
    assert fast.tokens_per_second_p95 == pytest.approx(95.5)
    assert sum(fast.tokens_per_second_histogram.counts) == 10
    assert len(fast.tokens_per_second_histogram.edges) == 11
    assert percentile([], 50) is None


def test_weekly_summary_figures_for_a_synthetic_week(tmp_path: Path) -> None:
    db = tmp_path / "gpm.db"
    # GPU 0, one sample a minute for 10 hours at 80 % and 200 W, then 10 hours idle at 0 %.
    busy = [
        sample(0, MONDAY + m * 60, util=80.0, power_watts=200.0, temperature_celsius=70.0)
        for m in range(600)
    ]
    idle = [
        sample(0, MONDAY + 36000 + m * 60, util=0.0, power_watts=20.0, temperature_celsius=40.0)
        for m in range(600)
    ]
    fill(
        db,
        samples=busy + idle,
        events=[
            process_event(MONDAY + HOUR, "end", duration=HOUR, workload=Workload.ML_TRAINING),
            process_event(MONDAY - 7200, "start", pid=9, workload=Workload.GAMING),
            process_event(MONDAY + 1800, "end", pid=9, duration=9000.0, workload=Workload.GAMING),
        ],
        sessions=[session(i, MONDAY + i) for i in range(4)],
    )
    conn = open_database(db)
    assert refresh_weekly_summaries(conn, now=MONDAY + 3 * DAY) == 3  # W47, W48, one model
    conn.close()
    weeks = Queries(db, None).weekly_summaries(2, now=MONDAY + 3 * DAY)
    w48 = next(s for s in weeks if s.week == "2026-W48" and s.gpu_id == 0)
    assert w48.hours_active == pytest.approx(10.0)
    assert w48.avg_utilization_percent == pytest.approx(40.0)
    assert w48.peak_utilization_percent == 80.0
    assert w48.peak_temperature_celsius == 70.0 and w48.avg_temperature_celsius == 55.0
    # 10 h at 200 W + 10 h at 20 W, except the very last sample which has no successor.
    assert w48.energy_wh == pytest.approx(2000 + 200 - 20 / 60)
    assert w48.workload_seconds == {"gaming": 1800.0, "ml_training": 3600.0}
    w47 = next(s for s in weeks if s.week == "2026-W47")
    assert w47.workload_seconds == {"gaming": 7200.0}
    model = next(s for s in weeks if s.model is not None)
    assert (model.week, model.llm_sessions, model.llm_tokens) == ("2026-W48", 4, 400)


def test_weekly_summary_survives_retention(tmp_path: Path) -> None:
    from gpm.storage.archive import run_retention

    db = tmp_path / "gpm.db"
    fill(
        db,
        samples=[sample(0, MONDAY + h * HOUR, util=float(h)) for h in range(120)],
        sessions=[session(i, MONDAY + i * DAY) for i in range(5)],
    )
    now = MONDAY + 5 * DAY
    run_retention(db, tmp_path / "a", retention_days=2, archive=False, now=now)
    conn = open_database(db)
    refresh_weekly_summaries(conn, now=now + 60)
    conn.close()
    weeks = Queries(db, None).weekly_summaries(1, now=now)
    gpu = next(s for s in weeks if s.gpu_id == 0)
    assert gpu.peak_utilization_percent == 119.0
    assert gpu.avg_utilization_percent == pytest.approx(59.5)
    assert next(s for s in weeks if s.model).llm_sessions == 5


def test_weekly_summaries_carry_idle_and_workload_energy(tmp_path: Path) -> None:
    from gpm.storage.writer import insert_rows

    db = tmp_path / "gpm.db"
    fill(db, samples=[sample(0, MONDAY + m * 60, util=50.0) for m in range(10)])
    conn = open_database(db)
    with conn:  # two hours of GPU 0's energy in week 48, one hour the week before
        insert_rows(conn, "energy", [
            (MONDAY, 0, "idle", 1800.0), (MONDAY, 0, "llm_inference", 7200.0),
            (MONDAY + HOUR, 0, "idle", 1800.0), (MONDAY - DAY, 0, "idle", 3600.0),
        ])  # fmt: skip
    refresh_weekly_summaries(conn, now=MONDAY + DAY)
    conn.close()
    (w48,) = [s for s in Queries(db, None).weekly_summaries(1, now=MONDAY + DAY) if s.gpu_id == 0]
    assert w48.idle_energy_wh == pytest.approx(1.0)
    assert w48.workload_energy_wh == {"llm_inference": pytest.approx(2.0)}
