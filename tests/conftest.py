"""Shared test helpers: free ports, deadline polling, and a real ``gpm`` process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running(argv: Sequence[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A program of the test's own, its output in ``log_path``; stopped (then killed) at exit."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class _Deadline:
    """One wait: the time it ends, the last error seen, and the message when it runs out."""

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout, self.what = timeout, what
        self.ends = time.monotonic() + timeout
        self.last_exc: Exception | None = None

    def running(self) -> bool:
        return time.monotonic() < self.ends

    def attempt(self, fn: Callable[[], T | None]) -> T | None:
        """``fn()``, or None when it raised (kept as the last error, and polling goes on)."""
        try:
            return fn()
        except Exception as exc:
            self.last_exc = exc
            return None

    def expired(self) -> AssertionError:
        return AssertionError(
            f"timed out after {self.timeout}s waiting for {self.what}; last error: {self.last_exc}"
        )


def wait_for(
    fn: Callable[[], T | None],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``fn`` until it returns something truthy, or fail after ``timeout`` seconds.

    An exception from ``fn`` counts as "not yet"; the last one is named in the failure.
    """
    deadline = _Deadline(timeout, what)
    while deadline.running():
        if value := deadline.attempt(fn):
            return value
        time.sleep(interval)
    raise deadline.expired()


async def wait_for_async(
    fn: Callable[[], T | None],
    timeout: float = 15.0,
    interval: float = 0.01,
    what: str = "condition",
) -> T:
    """``wait_for`` inside a running event loop: the loop goes on between polls."""
    deadline = _Deadline(timeout, what)
    while deadline.running():
        if value := deadline.attempt(fn):
            return value
        await asyncio.sleep(interval)
    raise deadline.expired()


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


@dataclass
class GpmProcess:
    """A ``gpm`` subprocess with its own data dir and free ports."""

    data_dir: Path
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def start(self, *args: str) -> GpmProcess:
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpm", *args],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"gpm exited with {self.proc.returncode}:\n{self.output()}")
            info = get_json(self.api + "/api/realtime")
            return info if info.get("timestamp") else None

        try:
            return wait_for(ready, timeout=timeout, what="gpm to answer /api/realtime")
        except AssertionError:
            raise AssertionError(f"gpm not ready; output:\n{self.output()}") from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"gpm did not stop within {timeout}s:\n{self.output()}") from None

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gpm", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def gpm_env(tmp_path: Path, **extra: str) -> tuple[dict[str, str], dict[str, int]]:
    ports = {name: free_port() for name in ("api", "dashboard", "metrics", "proxy")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPM_")}
    env.update(
        {
            "HOME": str(tmp_path / "home"),
            "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
            "GPM_SERVICE_DATA_DIR": str(tmp_path / "data"),
            "GPM_SERVICE_POLL_INTERVAL_SECS": "0.5",
            "GPM_API_PORT": str(ports["api"]),
            "GPM_API_DASHBOARD_PORT": str(ports["dashboard"]),
            "GPM_TELEMETRY_METRICS_PORT": str(ports["metrics"]),
            "GPM_OLLAMA_PROXY_PORT": str(ports["proxy"]),
            "GPM_TELEMETRY_ENABLE_OPENTELEMETRY": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env, ports


@pytest.fixture
def gpm_process(tmp_path: Path) -> Iterator[Callable[..., GpmProcess]]:
    """Factory: ``gpm_process(**env)`` -> a not yet started GpmProcess; stopped at teardown."""
    made: list[GpmProcess] = []

    def make(**extra: str) -> GpmProcess:
        env, ports = gpm_env(tmp_path, **extra)
        p = GpmProcess(
            data_dir=tmp_path / "data",
            env=env,
            ports=ports,
            log_path=tmp_path / f"gpm-{len(made)}.log",
        )
        made.append(p)
        return p

    yield make
    for p in made:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
