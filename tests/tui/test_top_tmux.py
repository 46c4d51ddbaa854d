"""``gpm top`` end to end in a real terminal: tmux runs the command at a fixed size against a
``gpm run --demo``, and the captured pane shows the GPU rows and a finished LLM request."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import GpmProcess, wait_for

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (Debian package tmux; scripts/test.sh installs it)"
)


def test_top_in_tmux(gpm_process: Callable[..., GpmProcess], tmp_path: Path) -> None:
    assert TMUX is not None
    gpm = gpm_process().start("run", "--demo")
    gpm.wait_ready()
    tmux = [TMUX, "-S", str(tmp_path / "tmux.sock")]  # a server of the test's own
    top = [sys.executable, "-m", "gpm", "top", "--url", gpm.api, "--interval", "0.5"]
    # The shell stays after gpm top ends, so the pane keeps its exit status (or traceback).
    command = f"{shlex.join(top)}; echo gpm-top-exited=$?; sleep 60"
    env = {**gpm.env, "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "top", "-x", "100", "-y", "30", command],
        env=env,
        check=True,
    )

    def pane() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True, check=True
        ).stdout

    def ready() -> str | None:
        text = pane()
        rows = [line for line in text.splitlines() if "GPM Simulated" in line]
        sessions = [line for line in text.splitlines() if "completed" in line]
        return text if len(rows) >= 2 and sessions else None

    try:
        try:
            text = wait_for(ready, timeout=40, interval=0.25, what="GPU rows and an LLM request")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the pane:\n{pane()}") from None
        lines = text.splitlines()
        assert lines[0].startswith("GPM top · " + gpm.api)
        gpu_rows = [line.split()[0] for line in lines if "GPM Simulated" in line][:2]
        assert gpu_rows == ["0", "1"]
        session = next(line for line in lines if "completed" in line)
        assert any(model in session for model in ("llama3.2:3b", "qwen2.5:0.5b"))

        subprocess.run([*tmux, "send-keys", "-t", "top", "q"], check=True)
        wait_for(lambda: "gpm-top-exited=" in pane(), timeout=10, what="gpm top to quit on q")
        assert "gpm-top-exited=0" in pane()
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
