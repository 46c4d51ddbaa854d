"""How ``gpm top`` draws: ASCII or Unicode, live or greyed, and the pieces every table uses
(a cell, a bar, a sparkline, a colour by an alert threshold)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

from gpm.tui.feed import Points

_EIGHTHS = "▏▎▍▌▋▊▉"
_SPARK = "▁▂▃▄▅▆▇█"
_SPARK_ASCII = "_.,-=+*#"
WARN_MARGIN = 10.0  # within this of an alert threshold (degrees or percent) shows yellow


@dataclass(frozen=True, slots=True)
class Look:
    """How to draw: ``ascii`` for terminals without Unicode or colour, ``stale`` greys every
    value (the service is gone and these are its last ones)."""

    ascii: bool = False
    stale: bool = False

    @property
    def dash(self) -> str:
        return "-" if self.ascii else "—"

    @property
    def sep(self) -> str:
        """Between the parts of a line."""
        return " | " if self.ascii else " · "

    def text(self, content: str, style: str = "") -> Text:
        return Text(content, style="dim" if self.stale else style)

    def clip(self, content: str, width: int) -> str:
        """``content`` cut to ``width`` cells, marking the cut."""
        if len(content) <= width:
            return content
        mark = "~" if self.ascii else "…"
        return content[: max(width - 1, 0)] + mark if width > 0 else ""


@dataclass(frozen=True, slots=True)
class Column:
    """A table column; ``width`` counts the one-space gap each cell starts with."""

    key: str
    label: str
    width: int
    right: bool = False


def fit(fixed: Sequence[Column], width: int) -> int:
    """What is left of ``width`` for a flexible column beside the ``fixed`` ones."""
    return width - sum(c.width for c in fixed)


def cell(look: Look, content: str, style: str = "", right: bool = False) -> Text:
    """One cell: a leading gap, then ``content``."""
    t = look.text(" " + content, style)
    if right:
        t.justify = "right"
    return t


def bar(look: Look, percent: float | None, width: int, style: str = "") -> Text:
    """``percent`` as a bar ``width`` cells long (eighths of a cell in Unicode, ``#`` in ASCII);
    a dash when unknown."""
    if percent is None:
        return look.text(look.dash.ljust(width), "dim")
    fill = min(max(percent, 0.0), 100.0) / 100 * width
    if look.ascii:
        full, part = round(fill), ""
        filled, empty = "#" * full, "." * (width - full)
    else:
        eighths = round(fill * 8)
        full, rest = divmod(eighths, 8)
        part = _EIGHTHS[rest - 1] if rest else ""
        filled, empty = "█" * full + part, "·" * (width - full - len(part))
    out = look.text(filled, style)
    out.append(empty, style="dim")
    return out


def level_style(value: float | None, threshold: float | None) -> str:
    """Red at or past an alert threshold, yellow within ``WARN_MARGIN`` of it."""
    if value is None or threshold is None:
        return ""
    if value >= threshold:
        return "bold red"
    return "yellow" if value >= threshold - WARN_MARGIN else "green"


def sparkline(look: Look, points: Points, width: int, seconds: float) -> Text:
    """The last ``seconds`` of ``points`` in ``width`` cells, each the highest value of its
    time slice (blank where there was no reading for longer than a slice)."""
    levels = _SPARK_ASCII if look.ascii else _SPARK
    if not points or width <= 0:
        return look.text(" " * width)
    end = points[-1][0]
    start, step = end - seconds, seconds / width
    slots: list[float | None] = [None] * width
    for ts, value in points:
        if value is None or ts < start:
            continue
        i = min(int((ts - start) / step), width - 1)
        prev = slots[i]
        slots[i] = value if prev is None else max(prev, value)
    for i in range(1, width - 1):  # a slice between two polls' slices is timing, not a gap
        if slots[i] is None and slots[i - 1] is not None and slots[i + 1] is not None:
            slots[i] = slots[i - 1]
    chars = "".join(
        " " if v is None else levels[min(int(v / 100 * len(levels)), len(levels) - 1)]
        for v in slots
    )
    return look.text(chars, "cyan")
