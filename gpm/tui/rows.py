"""The table widget of ``gpm top``: a heading and rows of prepared cells, drawn a line at a time.

Textual's DataTable lays every cell out through Rich and repaints the whole table when one cell
changes; at one refresh a second that alone cost more than the 2 % of a core the view may use.
Here a row is one line of text and an update repaints only the lines that changed. The heading
stays on top while the rows scroll; a cursor row is optional (the GPU and process lists).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from gpm.tui.draw import Column


def line_of(cols: Sequence[Column], cells: Sequence[Text]) -> Text:
    """Cells side by side, each fitted to its column's width."""
    out = Text(no_wrap=True, overflow="crop")
    for col, cell in zip(cols, cells, strict=False):
        fitted = cell.copy()
        fitted.align("right" if col.right else "left", col.width)
        out.append_text(fitted)
    return out


class Rows(ScrollView, can_focus=True):
    """Rows of cells under a fixed heading; with ``cursor``, one row is highlighted and can be
    moved with the arrow keys or the mouse (:class:`Rows.Highlighted`)."""

    DEFAULT_CSS = """
    Rows { height: auto; max-height: 100%; background: $surface; overflow-x: hidden; }
    Rows > .rows--header { text-style: bold; background: $panel; }
    Rows > .rows--cursor { background: $block-cursor-blurred-background; }
    Rows:focus > .rows--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground;
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"rows--header", "rows--cursor"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "move(-10)", show=False),
        Binding("pagedown", "move(10)", show=False),
        Binding("home", "move(-1000000)", show=False),
        Binding("end", "move(1000000)", show=False),
    ]

    class Highlighted(Message):
        """The user moved the cursor to ``row``."""

        def __init__(self, rows: Rows, row: int) -> None:
            super().__init__()
            self.rows, self.row = rows, row

    class HeadingClicked(Message):
        """The user clicked the heading of the column ``key``."""

        def __init__(self, rows: Rows, key: str) -> None:
            super().__init__()
            self.rows, self.key = rows, key

    def __init__(self, *, cursor: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.show_cursor = cursor
        self.columns: tuple[Column, ...] = ()
        self.rows: list[list[Text]] = []  # the cells now shown, for tests and lookups
        self.cursor = 0
        self._heading = Text()
        self._lines: list[Text] = []

    def set_columns(self, cols: tuple[Column, ...]) -> None:
        if cols == self.columns:
            return
        self.columns = cols
        self._heading = line_of(cols, [Text(" " + c.label) for c in cols])
        self._lines = [line_of(cols, row) for row in self.rows]
        self._resize()
        self.refresh()

    def set_rows(self, rows: list[list[Text]]) -> None:
        """Show ``rows``, repainting only the lines whose text changed."""
        lines = [line_of(self.columns, row) for row in rows]
        old = self._lines
        self.rows, self._lines = rows, lines
        if len(lines) != len(old):
            self.cursor = min(self.cursor, max(len(lines) - 1, 0))
            self._resize()
            self.refresh()
            return
        for i, (a, b) in enumerate(zip(old, lines, strict=True)):
            if not same_text(a, b):
                self.refresh_line(1 + i)

    def move_to(self, row: int) -> None:
        """Put the cursor on ``row`` (no message: the program moved it, not the user)."""
        row = min(max(row, 0), max(len(self._lines) - 1, 0))
        if row != self.cursor:
            self.refresh_lines(1 + self.cursor)
            self.cursor = row
            self.refresh_lines(1 + row)
        visible = self.scrollable_content_region.height - 1
        top = round(self.scroll_y)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif visible > 0 and row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)

    def _resize(self) -> None:
        width = sum(c.width for c in self.columns)
        self.virtual_size = Size(width, 1 + len(self._lines))
        self.refresh(layout=True)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        style = self.rich_style
        if y == 0:
            text = self._heading
            style += self.get_component_rich_style("rows--header")
        else:
            index = y - 1 + round(self.scroll_y)
            if index >= len(self._lines):
                return Strip.blank(width, style)
            text = self._lines[index]
            if self.show_cursor and index == self.cursor:
                style += self.get_component_rich_style("rows--cursor")
        strip = Strip(list(text.render(self.app.console)), text.cell_len)
        return strip.crop_extend(0, width, None).apply_style(style)

    def action_move(self, by: int) -> None:
        if not self.show_cursor:
            self.scroll_to(y=self.scroll_y + by, animate=False)
            return
        before = self.cursor
        self.move_to(self.cursor + by)
        if self.cursor != before:
            self.post_message(self.Highlighted(self, self.cursor))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = 0
            for col in self.columns:
                x += col.width
                if offset.x < x:
                    self.post_message(self.HeadingClicked(self, col.key))
                    return
            return
        index = offset.y - 1 + round(self.scroll_y)
        if self.show_cursor and index < len(self._lines):
            self.move_to(index)
            self.post_message(self.Highlighted(self, index))


def same_text(a: object, b: Text) -> bool:
    """Whether ``a`` already shows ``b`` (Rich's Text equality ignores the base style)."""
    return (
        isinstance(a, Text)
        and a.plain == b.plain
        and a.style == b.style
        and a.spans == b.spans
        and a.justify == b.justify
    )
