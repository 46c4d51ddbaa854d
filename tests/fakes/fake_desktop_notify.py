"""Fake ``notify-send`` and ``gdbus``: the desktop notification programs GPM's alerts call.

They stand for libnotify's ``notify-send`` and GLib's ``gdbus`` (the fallback GPM calls the
freedesktop Notifications service with). tests/alerts/test_notify.py writes them into a
directory it gives the ``Notifier`` as its search path, then reads back what GPM asked for::

    calls = fake_desktop_tool(tmp_path, "notify-send")   # tmp_path/notify-send
    notifier = Notifier(cfg, logger, search_path=str(tmp_path))
    ...
    assert calls_of(calls) == [["--app-name=GPM", ...]]  # tests.fakes.fake_command.calls_of

``status`` and ``stderr`` make it fail the way a session without D-Bus does.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.fake_command import fake_command


def fake_desktop_tool(directory: Path, name: str, status: int = 0, stderr: str = "") -> Path:
    """Write ``directory/name``, exiting with ``status`` after writing ``stderr``; its call log."""
    calls = directory / f"{name}.calls"
    fake_command(directory / name, calls, f"sys.stderr.write({stderr!r})\nsys.exit({status})\n")
    return calls
