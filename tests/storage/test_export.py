"""Export: CSV a spreadsheet opens, JSON with a list per table, Parquet with real timestamps."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpm.storage.archive import run_retention
from gpm.storage.export import export, export_files
from gpm.storage.queries import Queries

from .helpers import DAY, HOUR, MONDAY, alert, fill, sample, session


@pytest.fixture
def queries(tmp_path: Path) -> Queries:
    db, arch = tmp_path / "gpm.db", tmp_path / "archive"
    fill(
        db,
        samples=[
            sample(
                0,
                MONDAY + h * HOUR,
                util=float(h),
                throttle_reasons=("sw_power_cap", "hw_slowdown"),
            )
            for h in range(48)
        ],
        sessions=[session(i, MONDAY + i * HOUR, prompt_text="do not export me") for i in range(3)],
        alerts=[alert(MONDAY + 60)],
    )
    run_retention(db, arch, retention_days=1, archive=True, now=MONDAY + 2 * DAY)
    return Queries(db, arch)


def test_csv_opens_in_a_spreadsheet(queries: Queries) -> None:
    out = io.BytesIO()
    n = export(queries, table="gpu_metrics", start=MONDAY, end=MONDAY + 2 * DAY, fmt="csv", out=out)
    assert n == 48
    text = out.getvalue().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 48
    assert rows[0]["ts"] == "2026-11-23T00:00:00.000Z" and rows[0]["utilization_percent"] == "0.0"
    assert rows[47]["ts"] == "2026-11-24T23:00:00.000Z"  # from SQLite, after the archived day
    assert rows[5]["throttle_reasons"] == "sw_power_cap,hw_slowdown"


def test_json_all_tables_and_no_prompt_text(queries: Queries) -> None:
    out = io.BytesIO()
    n = export(queries, table="all", start=MONDAY, end=MONDAY + 2 * DAY, fmt="json", out=out)
    doc = json.loads(out.getvalue())
    assert n == 48 + 3 + 1
    assert set(doc) == {"gpu_metrics", "llm_sessions", "process_events", "alerts"}
    assert doc["process_events"] == [] and doc["alerts"][0]["ts"] == "2026-11-23T00:01:00.000Z"
    assert [s["id"] for s in doc["llm_sessions"]] == ["s0", "s1", "s2"]
    assert "prompt_text" not in doc["llm_sessions"][0]
    assert b"do not export me" not in out.getvalue()


def test_parquet_has_timestamp_columns(queries: Queries, tmp_path: Path) -> None:
    out = io.BytesIO()
    assert (
        export(
            queries, table="llm_sessions", start=MONDAY, end=MONDAY + DAY, fmt="parquet", out=out
        )
        == 3
    )
    tbl = pq.read_table(io.BytesIO(out.getvalue()))
    assert tbl.schema.field("started_at").type == pa.timestamp("ms", tz="UTC")
    assert "prompt_text" not in tbl.column_names and tbl.column(
        "tokens_per_second"
    ).to_pylist() == [50.0, 51.0, 52.0]
    files = export_files(
        queries,
        tables=["gpu_metrics", "alerts"],
        start=MONDAY,
        end=MONDAY + 2 * DAY,
        fmt="parquet",
        out_dir=tmp_path / "out",
    )
    assert {t: n for t, (_, n) in files.items()} == {"gpu_metrics": 48, "alerts": 1}
    assert pq.read_table(files["gpu_metrics"][0]).num_rows == 48


def test_bad_arguments_are_named(queries: Queries) -> None:
    with pytest.raises(ValueError, match="format"):
        export(queries, table="alerts", start=0, end=1, fmt="xlsx", out=io.BytesIO())
    with pytest.raises(ValueError, match="table"):
        export(queries, table="secrets", start=0, end=1, fmt="csv", out=io.BytesIO())
    with pytest.raises(ValueError, match="export_files"):
        export(queries, table="all", start=0, end=1, fmt="csv", out=io.BytesIO())
