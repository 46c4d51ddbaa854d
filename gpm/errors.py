"""Failures a user can act on, raised by any part and printed by the CLI as one line (exit 1)."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix (a busy port, a held data directory, a missing database)."""
