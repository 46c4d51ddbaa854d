"""Opening the history database: creation, migration, and refusing files that are not ours."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from gpm.storage.db import SCHEMA_VERSION, DatabaseError, open_database

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


def test_creates_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "gpm.db"
    conn = open_database(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "gpu_metrics",
        "llm_sessions",
        "process_events",
        "alerts",
        "model_events",
        "weekly_summaries",
        "latest_processes",
    } <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"gpu_metrics_gpu_ts_values", "llm_sessions_started", "alerts_ts"} <= indexes
    conn.close()


def test_migrates_a_version_1_database_in_place(tmp_path: Path) -> None:
    path = tmp_path / "gpm.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE gpu_metrics (ts REAL NOT NULL, gpu_id INTEGER NOT NULL, uuid TEXT,
            name TEXT, simulated INTEGER NOT NULL DEFAULT 0, up INTEGER NOT NULL DEFAULT 1,
            error TEXT, utilization_percent REAL, memory_used_bytes INTEGER,
            memory_total_bytes INTEGER, temperature_celsius REAL, power_watts REAL);
        CREATE TABLE llm_sessions (id TEXT PRIMARY KEY, model TEXT, endpoint TEXT NOT NULL,
            started_at REAL NOT NULL, outcome TEXT NOT NULL, kind TEXT NOT NULL,
            backend TEXT NOT NULL, streamed INTEGER NOT NULL DEFAULT 0, prompt_tokens INTEGER,
            completion_tokens INTEGER, client TEXT NOT NULL DEFAULT 'local');
        INSERT INTO gpu_metrics (ts, gpu_id, utilization_percent) VALUES (1000.0, 0, 42.0);
        PRAGMA user_version = 1;
    """)
    old.commit()
    old.close()
    conn = open_database(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    cols = {r[1] for r in conn.execute("PRAGMA table_info(gpu_metrics)")}
    assert {"energy_joules", "pcie_tx_bytes_per_second", "throttle_reasons"} <= cols
    assert conn.execute("SELECT ts, utilization_percent FROM gpu_metrics").fetchall() == [
        (1000.0, 42.0)
    ]
    conn.execute("INSERT INTO model_events (ts, event, model) VALUES (1, 'load', 'm')")
    conn.close()


@pytest.mark.parametrize("content", [b"hello, this is my shopping list\n" * 10, PNG * 40])
def test_foreign_file_is_refused_and_left_unchanged(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "gpm.db"
    path.write_bytes(content)
    with pytest.raises(DatabaseError, match=str(path)):
        open_database(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpm.db"]


def test_another_programs_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gpm.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE contacts (name TEXT)")
    other.commit()
    other.close()
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="another program"):
        open_database(path)
    assert path.read_bytes() == before


def test_truncated_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gpm.db"
    open_database(path).close()
    damaged = path.read_bytes()[:100] + b"\xff" * 4000
    path.write_bytes(damaged)
    with pytest.raises(DatabaseError, match=str(path)):
        open_database(path)
    assert path.read_bytes() == damaged


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gpm.db"
    conn = open_database(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer GPM"):
        open_database(path)


def test_readonly_needs_an_existing_database(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="gpm run"):
        open_database(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()
    open_database(tmp_path / "gpm.db").close()
    ro = open_database(tmp_path / "gpm.db", readonly=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro.execute(
            "INSERT INTO alerts (ts, rule, state, severity, message) VALUES (1, 'r', 's', 'w', 'm')"
        )
    ro.close()


def test_read_only_data_dir_gives_a_clear_error(tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mnt)], capture_output=True
    ).returncode:
        pytest.skip("needs root to mount a read-only tmpfs")
    try:
        with pytest.raises(DatabaseError, match="writable"):
            open_database(mnt / "gpm.db")
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
