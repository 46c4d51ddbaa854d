"""Cursor pages over SQLite and the archive: every row once, in order, at any page size, with
rows that share a time and with the archive boundary in the middle of a page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpm.storage.archive import run_retention
from gpm.storage.pages import Cursor, CursorError
from gpm.storage.queries import Queries

from .helpers import DAY, HOUR, MONDAY, fill, session


@pytest.fixture
def queries(tmp_path: Path) -> Iterator[Queries]:
    db, arch = tmp_path / "gpm.db", tmp_path / "archive"
    # 48 hours, one session an hour plus a second one at the same time every 6 hours.
    sessions = [
        session(h, MONDAY + h * HOUR + 5, model="qwen2:0.5b" if h % 2 else "llama3")
        for h in range(48)
    ]
    sessions += [session(100 + h, MONDAY + h * HOUR + 5) for h in range(0, 48, 6)]
    fill(db, sessions=sessions)
    run_retention(db, arch, retention_days=1.5, archive=True, now=MONDAY + 2 * DAY)
    q = Queries(db, arch)
    yield q
    q.close()


@pytest.mark.parametrize("limit", [1, 2, 5, 7, 100])
def test_walking_the_cursors_gives_every_row_once(queries: Queries, limit: int) -> None:
    everything = queries.sessions(0.0, MONDAY + 10 * DAY, limit=1000)[1]
    assert len(everything) == 56
    seen = []
    cursor = None
    while True:
        total, page, cursor = queries.sessions(0.0, MONDAY + 10 * DAY, limit=limit, cursor=cursor)
        assert total == 56 and len(page) <= limit
        seen += [s.id for s in page]
        if cursor is None:
            break
    assert seen == [s.id for s in everything]
    times = [s.started_at for s in everything]
    assert times == sorted(times, reverse=True)


def test_a_model_filter_pages_too(queries: Queries) -> None:
    total, page, cursor = queries.sessions(0.0, MONDAY + 3 * DAY, model="qwen2:0.5b", limit=3)
    assert cursor is not None and all(s.model == "qwen2:0.5b" for s in page)
    rest = queries.sessions(0.0, MONDAY + 3 * DAY, model="qwen2:0.5b", limit=1000, cursor=cursor)
    assert total == 24 + 8 and len(page) + len(rest[1]) == total
    assert all(s.model == "qwen2:0.5b" for s in rest[1])


@pytest.mark.parametrize("text", ["", "abc", "WyJ4IiwxXQ", "WzEsLTFd", "WzEsMiwzXQ"])
def test_a_cursor_that_was_not_given_is_refused(text: str) -> None:
    with pytest.raises(CursorError):
        Cursor.decode(text)


def test_a_cursor_round_trips() -> None:
    assert Cursor.decode(Cursor(MONDAY + 0.25, 3).encode()) == Cursor(MONDAY + 0.25, 3)
