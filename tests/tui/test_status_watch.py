"""``gpm status --watch``, the plain-text alternative to ``gpm top``: a table (or a JSON line)
per interval, no screen control, and Ctrl-C ends it with status 0."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import gpm_env


def _watch(tmp_path: Path, *args: str, readings: int) -> tuple[list[str], int]:
    env, _ = gpm_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpm", "status", "--demo", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if sum(1 for x in lines if x.startswith(("GPM ", "{"))) > readings:
                break
        proc.send_signal(signal.SIGINT)
        return lines, proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watch_reprints_the_table(tmp_path: Path) -> None:
    lines, code = _watch(tmp_path, "--watch", "0.2", readings=2)
    assert code == 0
    headers = [x for x in lines if x.startswith("GPM ")]
    assert len(headers) == 3
    assert all("\x1b" not in x for x in lines)  # plain text: no escape sequences
    # The column heading in each complete reading (reading stops at the third one's first line).
    assert sum(1 for x in lines if x.startswith("GPU ")) == 2
    assert lines[lines.index(headers[1]) - 1] == ""  # a blank line between readings


def test_watch_json_is_one_object_per_line(tmp_path: Path) -> None:
    lines, code = _watch(tmp_path, "--watch", "0.2", "--json", readings=1)
    assert code == 0
    objects = [json.loads(x) for x in lines if x]
    assert len(objects) == 2
    assert [len(o["gpus"]) for o in objects] == [2, 2]
    assert objects[0]["timestamp"] < objects[1]["timestamp"]


def test_watch_needs_a_positive_interval(tmp_path: Path) -> None:
    env, _ = gpm_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "gpm", "status", "--demo", "--watch", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--watch" in done.stderr
