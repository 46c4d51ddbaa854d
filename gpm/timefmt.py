"""RFC3339 at the edges, epoch seconds (float, UTC) inside."""

from __future__ import annotations

from datetime import UTC, datetime


def to_rfc3339(ts: float | None) -> str | None:
    """Epoch seconds -> ``2026-11-27T10:00:00.123Z`` (None stays None)."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """RFC3339 (``Z`` or an offset; a bare date or naive time is read as UTC) -> epoch seconds.

    Raises ValueError with a readable message.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty date")
    try:
        dt = datetime.fromisoformat(raw.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an RFC3339 date: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_since(text: str, now: float) -> float:
    """``24h``, ``30m``, ``7d``, ``2w`` (ago) or an RFC3339 date -> epoch seconds."""
    raw = text.strip().lower()
    if raw and raw[-1] in _UNITS:
        try:
            amount = float(raw[:-1])
        except ValueError:
            amount = -1.0
        if amount >= 0:
            return now - amount * _UNITS[raw[-1]]
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise ValueError(
            f"not a duration or date: {text!r} (use e.g. 30m, 24h, 7d or 2026-11-27T10:00:00Z)"
        ) from None
