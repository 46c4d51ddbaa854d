"""A fake ``systemctl``: records every call and answers like a user's systemd manager.

It stands for ``systemctl --user`` as gpm/systemd.py and install.sh run it, so installing,
enabling, querying and removing GPM's user units is tested without a systemd: gpm/systemd.py
takes the program's path as a parameter, install.sh finds it first on PATH::

    ctl, calls = fake_systemctl(tmp_path)                  # tmp_path/bin/systemctl
    systemd.install(..., systemctl=str(ctl))
    assert ["--user", "daemon-reload"] in calls_of(calls)  # tests.fakes.fake_command.calls_of

``bus_ok=False`` makes every call fail as on a headless session with no user bus;
``refuse_enable`` makes ``enable`` fail with that message, as for a masked unit. Otherwise every
call succeeds, ``is-active`` answers ``active`` and ``is-enabled`` answers ``enabled``.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.fake_command import fake_command


def fake_systemctl(
    directory: Path, *, bus_ok: bool = True, refuse_enable: str = ""
) -> tuple[Path, Path]:
    """Write ``directory/bin/systemctl``; its path and its call log (``systemctl.calls``)."""
    calls = directory / "systemctl.calls"
    body = (
        f"if {not bus_ok!r}:\n"
        "    sys.stderr.write('Failed to connect to bus: No medium found\\n')\n"
        "    sys.exit(1)\n"
        f"if {refuse_enable!r} and args[1:2] == ['enable']:\n"
        f"    sys.stderr.write({refuse_enable + chr(10)!r})\n"
        "    sys.exit(1)\n"
        "if args[1:2] == ['is-active']:\n"
        "    print('active')\n"
        "if args[1:2] == ['is-enabled']:\n"
        "    print('enabled')\n"
    )
    return fake_command(directory / "bin" / "systemctl", calls, body), calls
