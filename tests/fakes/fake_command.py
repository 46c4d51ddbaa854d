"""A fake command-line program: an executable Python script that records how it was called.

It stands for any program GPM runs by name or path (``nvidia-smi``, ``systemctl``,
``notify-send``, ``gdbus``): GPM starts it as a real subprocess, with real argv, exit status and
output, and the test reads back every call. The fakes for those programs (fake_nvidia_smi.py,
fake_systemctl.py, fake_desktop_notify.py) are built on it::

    calls = tmp_path / "tool.calls"
    exe = fake_command(tmp_path / "bin" / "tool", calls, "print('hi')\\nsys.exit(3)\\n")
    ...  # GPM runs exe
    assert calls_of(calls) == [["--flag", "arg"]]

Each call appends its arguments (``sys.argv[1:]``) to ``calls`` as one JSON list a line, then
runs ``body``, Python source that may use ``args`` (those arguments) and ``json``, ``os``, ``sys``
and ``time``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HEADER = """\
#!{python}
import json, os, sys, time
args = sys.argv[1:]
with open({calls!r}, "a") as fh:
    fh.write(json.dumps(args) + "\\n")
"""


def fake_command(path: Path, calls: Path, body: str = "") -> Path:
    """Write the executable ``path``: it records each call in ``calls``, then runs ``body``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER.format(python=sys.executable, calls=str(calls)) + body)
    path.chmod(0o755)
    return path


def calls_of(calls: Path) -> list[list[str]]:
    """Every recorded call's arguments, oldest first; none when the program never ran."""
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text().splitlines()]
