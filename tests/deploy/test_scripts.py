"""scripts/start-all.sh and stop-all.sh with a stand-in gpm that serves /api/info."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port
from tests.fakes.fake_command import calls_of

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "scripts" / "start-all.sh"
STOP = ROOT / "scripts" / "stop-all.sh"
FAKE = ROOT / "tests" / "fakes" / "fake_gpm.py"


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for a parent that does not reap it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Env:
    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "data dir"
        self.calls = tmp / "calls.jsonl"
        self.port = free_port()
        gpm = tmp / "bin" / "gpm"
        gpm.parent.mkdir()
        gpm.write_text(
            f"#!{sys.executable}\n"
            f"import runpy\nrunpy.run_path({str(FAKE)!r}, run_name='__main__')\n"
        )
        gpm.chmod(0o755)
        self.vars = {
            **os.environ,
            "HOME": str(tmp / "home"),
            "GPM_BIN": str(gpm),
            "GPM_SERVICE_DATA_DIR": str(self.data),
            "GPM_API_PORT": str(self.port),
            "GPM_START_TIMEOUT": "20",
            "FAKE_GPM_CALLS": str(self.calls),
        }

    @property
    def pid_file(self) -> Path:
        return self.data / "gpm.pid"

    def run(self, script: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(script), *args],
            env={**self.vars, **extra}, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def recorded(self) -> list[list[str]]:
        return calls_of(self.calls)

    def pid(self) -> int:
        return int(self.pid_file.read_text().split()[0])


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    # Never leave a process behind, whatever the test did.
    if e.pid_file.exists():
        pid = e.pid()
        if not gone(pid) and "fake_gpm" in " ".join(psutil.Process(pid).cmdline()):
            os.kill(pid, signal.SIGKILL)


def test_background_start_refuse_second_and_stop(env: Env) -> None:
    started = env.run(START, "--background", "--demo", "--config", "/etc/some config.toml")
    assert started.returncode == 0, started.stderr
    pid = env.pid()
    assert f"GPM is running (pid {pid})" in started.stdout
    assert psutil.pid_exists(pid) and not gone(pid)
    recorded_start = env.pid_file.read_text().split()[1]
    assert recorded_start.isdigit()  # kernel start time, guards against pid reuse
    assert env.recorded() == [["run", "--demo", "--config", "/etc/some config.toml"]]
    with urllib.request.urlopen(f"http://127.0.0.1:{env.port}/api/info", timeout=5) as resp:
        assert json.load(resp) == {"version": "0.0.0-fake"}
    assert psutil.Process(pid).ppid() != os.getpid()  # detached from the caller
    assert os.getsid(pid) == pid  # its own session

    again = env.run(START, "--background")
    assert again.returncode == 1
    assert f"already running (pid {pid}" in again.stderr
    assert len(env.recorded()) == 1

    stopped = env.run(STOP)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped GPM (pid {pid})" in stopped.stdout
    assert "SIGKILL" not in stopped.stderr
    assert gone(pid)
    assert not env.pid_file.exists()
    log = (env.data / "gpm.log").read_text()
    assert "fake gpm: serving" in log and "fake gpm: SIGTERM, exiting cleanly" in log

    assert "GPM is not running (no pid file" in env.run(STOP).stdout


def test_stale_pid_file_is_reported_and_removed(env: Env) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    env.data.mkdir(parents=True)
    env.pid_file.write_text(f"{dead.pid} 12345\n")
    stopped = env.run(STOP)
    assert stopped.returncode == 0
    assert f"removing stale pid file {env.pid_file} (pid {dead.pid} is not running)" in (
        stopped.stderr
    )
    assert not env.pid_file.exists()


def test_pid_reused_by_another_process_is_not_ours(env: Env) -> None:
    """A live pid with a different start time is stale: start-all starts, stop-all spares it."""
    env.data.mkdir(parents=True)
    env.pid_file.write_text(f"{os.getpid()} 1\n")  # this pytest process, wrong start time
    started = env.run(START, "--background")
    assert started.returncode == 0, started.stderr
    assert "removing stale pid file" in started.stderr
    pid = env.pid()
    assert pid != os.getpid()
    assert env.run(STOP).returncode == 0
    assert gone(pid)


def test_crash_at_startup_is_reported(env: Env) -> None:
    started = env.run(START, "--background", FAKE_GPM_MODE="crash")
    assert started.returncode == 1
    assert "GPM exited during startup (status 3)" in started.stderr
    assert "fake gpm: configuration error: bad things" in started.stderr  # the log's tail
    assert not env.pid_file.exists()


def test_no_answer_before_the_deadline_is_reported(env: Env) -> None:
    started = env.run(START, "--background", FAKE_GPM_MODE="deaf", GPM_START_TIMEOUT="1")
    assert started.returncode == 2
    pid = env.pid()
    assert f"GPM (pid {pid}) is still running but http://127.0.0.1:{env.port}/api/info" in (
        started.stderr
    )
    assert not gone(pid)  # left running, with its pid file, for stop-all
    assert env.run(STOP).returncode == 0
    assert gone(pid)


def test_stubborn_process_gets_sigkill_after_the_deadline(env: Env) -> None:
    assert env.run(START, "--background", FAKE_GPM_MODE="stubborn").returncode == 0
    pid = env.pid()
    stopped = env.run(STOP, GPM_STOP_TIMEOUT="1")
    assert f"pid {pid} did not exit within 1 s of SIGTERM; sending SIGKILL" in stopped.stderr
    assert gone(pid)
    assert not env.pid_file.exists()


def test_foreground_passes_arguments_and_status(env: Env) -> None:
    done = env.run(START, "--demo", "--config", "x y.toml", FAKE_GPM_MODE="once")
    assert done.returncode == 0, done.stderr
    assert env.recorded() == [["run", "--demo", "--config", "x y.toml"]]
    assert not env.pid_file.exists()
    crashed = env.run(START, FAKE_GPM_MODE="crash")
    assert crashed.returncode == 3


def test_bad_gpm_bin_is_a_clear_error(env: Env, tmp_path: Path) -> None:
    done = env.run(START, "--background", GPM_BIN=str(tmp_path / "nope"))
    assert done.returncode == 1
    assert f"GPM_BIN={tmp_path / 'nope'} is not an executable file" in done.stderr
    assert not env.pid_file.exists()


@pytest.mark.parametrize("script", [START, STOP], ids=lambda p: p.name)
def test_scripts_are_bash_clean(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    assert os.access(script, os.X_OK)


def test_real_gpm_in_the_background_and_stopped_cleanly(tmp_path: Path) -> None:
    """The scripts with the real service (``--demo``): started detached, then nothing left."""
    gpm = Path(sys.executable).with_name("gpm")
    if not gpm.exists():
        pytest.skip(f"no gpm script next to {sys.executable}")
    port = free_port()
    data = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GPM_")},
        "HOME": str(tmp_path / "home"),
        "GPM_BIN": str(gpm),
        "GPM_SERVICE_DATA_DIR": str(data),
        "GPM_API_PORT": str(port),
        "GPM_API_DASHBOARD_PORT": str(free_port()),
        "GPM_TELEMETRY_METRICS_PORT": str(free_port()),
        "GPM_OLLAMA_PROXY_PORT": str(free_port()),
        "GPM_TELEMETRY_ENABLE_OPENTELEMETRY": "false",
        "GPM_START_TIMEOUT": "60",
    }

    def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(script), *args], env=env, capture_output=True,
                              text=True, timeout=90, check=False)  # fmt: skip

    started = run(START, "--background", "--demo")
    assert started.returncode == 0, started.stdout + started.stderr
    pid = int((data / "gpm.pid").read_text().split()[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=5) as resp:
        assert json.load(resp)["simulated"] is True
    children = psutil.Process(pid).children(recursive=True)
    stopped = run(STOP)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "SIGKILL" not in stopped.stderr
    assert gone(pid) and all(gone(c.pid) for c in children)
    assert "GPM stopped" in (data / "gpm.log").read_text()
    assert not (data / "gpm.pid").exists()
