"""The batched writer: batching, flush, round trips, and surviving a full disk or a kill -9."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpm.model import ModelEvent
from gpm.storage.db import open_database
from gpm.storage.queries import Queries
from gpm.storage.writer import Writer
from tests.conftest import wait_for

from .helpers import DAY, MONDAY, alert, count, process_event, session, snapshot


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, Records]]:
    logger = logging.getLogger(f"gpm.test.{id(object())}")
    handler = Records()
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, handler
    logger.removeHandler(handler)


def test_everything_enqueued_round_trips(tmp_path: Path) -> None:
    db = tmp_path / "gpm.db"
    w = Writer(db, flush_interval=60.0)  # only flush() writes, so batching is visible
    w.start()
    try:
        for i in range(5):
            w.add_snapshot(snapshot(MONDAY + i, gpus=2))
        w.add_session(session(1, MONDAY + 1, prompt_text="secret"))
        w.add_process_events([process_event(MONDAY, "start")])
        w.add_alert(alert(MONDAY + 2))
        w.add_model_events([ModelEvent(MONDAY + 3, "load", "qwen2:0.5b", 10, 20)])
        assert w.pending == 19  # 10 GPU rows, 5 latest-poll markers, 4 other rows
        assert count(db, "gpu_metrics") == 0
        assert w.flush(5.0)
        assert w.pending == 0
        assert w.rows_written == 14
    finally:
        w.close()
    q = Queries(db, None)
    snap = q.latest_snapshot()
    assert snap is not None and snap.timestamp == MONDAY + 4 and snap.source == "simulated"
    assert [g.gpu_id for g in snap.gpus] == [0, 1]
    assert snap.gpus[0].processes is not None and snap.gpus[0].processes[0].pid == 4242
    assert snap.gpus[0].processes[0].classification.model == "qwen2:0.5b"  # type: ignore[union-attr]
    assert snap.gpus[1].processes is None
    assert snap.gpus[1].utilization_percent == 10.0 and snap.gpus[1].memory_percent == 50.0
    total, page, _ = q.sessions(MONDAY, MONDAY + DAY)
    assert total == 1 and page[0].prompt_text == "secret" and page[0].streamed is True
    assert q.alerts(MONDAY, MONDAY + DAY)[0].threshold == 85.0
    assert q.process_events(MONDAY, MONDAY + DAY)[0][0].pid == 7
    assert q.model_events(MONDAY, MONDAY + DAY)[0].vram_bytes == 20
    q.close()


def test_background_flush_commits_in_batches(tmp_path: Path) -> None:
    db = tmp_path / "gpm.db"
    w = Writer(db, flush_interval=0.02)
    w.start()
    try:
        for i in range(300):
            w.add_snapshot(snapshot(MONDAY + i, gpus=4))
        wait_for(
            lambda: count(db, "gpu_metrics") >= 1200, timeout=10, interval=0.01, what="1200 rows"
        )
        assert count(db, "gpu_metrics") == 1200
    finally:
        w.close()


def test_beyond_max_pending_oldest_rows_are_dropped_and_counted(
    tmp_path: Path, log: tuple[logging.Logger, Records]
) -> None:
    logger, records = log
    w = Writer(tmp_path / "gpm.db", flush_interval=60.0, max_pending=10, logger=logger)
    w.start()
    try:
        for i in range(6):
            w.add_snapshot(snapshot(MONDAY + i, gpus=2))  # 3 items each
        assert w.pending == 10 and w.dropped == 8
        assert len(records.at(logging.WARNING)) == 1
        assert w.flush()
    finally:
        w.close()
    conn = sqlite3.connect(tmp_path / "gpm.db")
    assert conn.execute("SELECT MIN(ts) FROM gpu_metrics").fetchone()[0] > MONDAY + 1
    conn.close()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True
    ).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def _fill_disk(path: Path) -> None:
    with path.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass


def test_full_disk_keeps_rows_logs_once_and_resumes(
    small_fs: Path, log: tuple[logging.Logger, Records]
) -> None:
    logger, records = log
    db = small_fs / "gpm.db"
    w = Writer(db, flush_interval=60.0, logger=logger, retry_max_interval=0.05)
    w.start()
    try:
        w.add_snapshot(snapshot(MONDAY, gpus=2))
        assert w.flush()
        _fill_disk(small_fs / "filler")
        for i in range(1, 3001):
            w.add_snapshot(snapshot(MONDAY + i, gpus=2))
        for _ in range(3):  # several failed attempts
            assert not w.flush(0.3)
        assert w.last_error is not None and "full" in w.last_error
        assert w.pending == 9000
        errors = records.at(logging.ERROR)
        assert len(errors) == 1 and str(db) in errors[0]
        (small_fs / "filler").unlink()
        assert w.flush(10.0)
        assert w.last_error is None and w.pending == 0
        assert any("again" in m for m in records.at(logging.WARNING))
    finally:
        w.close()
    assert count(db, "gpu_metrics") == 2 + 6000


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from tests.storage.helpers import snapshot
from gpm.storage.writer import Writer
w = Writer(Path(sys.argv[1]), flush_interval=0.01)
w.start()
i = 0
while True:
    for _ in range(50):
        i += 1
        w.add_snapshot(snapshot(1795392000.0 + i, gpus=8))
    w.flush(10.0)
    print(w.rows_written, flush=True)
"""


def test_kill_9_while_writing_loses_at_most_the_last_batch(tmp_path: Path) -> None:
    db = tmp_path / "gpm.db"
    repo = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(repo)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    committed = 0
    try:
        for line in child.stdout:  # each line: rows committed so far
            committed = int(line)
            if committed >= 4000:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert committed >= 4000, "child stopped writing early"
    conn = open_database(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT COUNT(*) FROM gpu_metrics").fetchone()[0]
    conn.close()
    assert rows >= committed  # every reported commit survived the kill
