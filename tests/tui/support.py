"""Helpers for driving ``gpm top`` headless: a table as text, the screen's fit, waits."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from gpm.tui.app import TopApp
from gpm.tui.rows import Rows
from tests.conftest import wait_for_async


def table(app: TopApp, table_id: str) -> Rows:
    return app.query_one(f"#{table_id}", Rows)


def keys(app: TopApp, table_id: str) -> list[str]:
    """The keys of a table's columns, in order."""
    return [c.key for c in table(app, table_id).columns]


def cell(app: TopApp, table_id: str, row: int, key: str) -> Text:
    return table(app, table_id).rows[row][keys(app, table_id).index(key)]


def cells(app: TopApp, table_id: str) -> list[list[str]]:
    """Each row of a table as the text of its cells, stripped."""
    return [[c.plain.strip() for c in row] for row in table(app, table_id).rows]


def column(app: TopApp, table_id: str, key: str) -> list[str]:
    index = keys(app, table_id).index(key)
    return [row[index] for row in cells(app, table_id)]


def overflowing(app: TopApp) -> list[str]:
    """Widgets drawn past the screen's edge, and tables whose columns are wider than they are."""
    screen = app.screen.region
    out = []
    for widget in app.screen.walk_children():
        if not widget.display or not widget.region.area:
            continue
        if not screen.contains_region(widget.region):
            out.append(f"{widget!r} at {widget.region} outside {screen}")
        if isinstance(widget, Rows):
            room = widget.scrollable_content_region.width
            if widget.virtual_size.width > room:
                out.append(f"{widget!r}: columns {widget.virtual_size.width} wide in {room}")
    return out


async def rendered(app: TopApp, timeout: float = 20.0) -> dict[str, Any]:
    """The snapshot on screen, once there is one."""
    await wait_for_async(
        lambda: app.rendered is not None and app.rendered.snapshot is not None,
        timeout=timeout,
        what="gpm top to draw a snapshot",
    )
    assert app.rendered is not None and app.rendered.snapshot is not None
    return app.rendered.snapshot
