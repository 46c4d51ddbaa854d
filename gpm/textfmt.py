"""Readings as short text for the terminal commands (``gpm status``, ``gpm sessions``,
``gpm top``): one set of helpers, so the table and the live view print a value the same way.

A value GPM does not have is printed as a dash, never as 0.
"""

from __future__ import annotations

DASH = "-"


def fmt(value: float | None, unit: str = "", digits: int = 0, missing: str = DASH) -> str:
    """``value`` with ``digits`` decimals and ``unit``; ``missing`` when unknown."""
    if value is None:
        return missing
    return f"{value:.{digits}f}{unit}"


def gib(value: float | None, missing: str = DASH) -> str:
    """Bytes as GiB with one decimal."""
    return missing if value is None else f"{value / 2**30:.1f}"


def per(rate: float | None) -> float | None:
    """The inverse of a rate (tokens/J -> J/token); None when unknown or 0."""
    return 1 / rate if rate else None


def duration(seconds: float | None, missing: str = DASH) -> str:
    """A run time in at most two units, widest first: ``45s``, ``12m05s``, ``3h05m``, ``2d03h``."""
    if seconds is None or seconds < 0:
        return missing
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def tokens(count: int | None, source: str | None, missing: str = DASH) -> str:
    """A completion count; "~" marks one the proxy made from the stream, not the server's."""
    text = fmt(count, missing=missing)
    return f"~{text}" if source == "stream" and count is not None else text
