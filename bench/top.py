"""Footprint of ``gpm top`` attached to ``gpm run``, beside nvitop on the same fake NVML library.

``gpm run`` reads the fake libnvidia-ml.so.1 with 8 GPUs at 1 s, 4 processes on each (real
sleeping processes, so both viewers find them in /proc), with demo-like LLM traffic: the demo's
simulated Ollama behind GPM's proxy and a request through the proxy every ~3 s. ``gpm top --url
... --interval 1`` then runs in a detached tmux session of a fixed size (a real terminal, so it
draws every frame), and after it nvitop (``nvitop --interval 1``, in a venv of its own, with
LD_LIBRARY_PATH on the fake library) the same way. Each is measured for ``--seconds`` after a
5 s start: CPU in percent of one core, and peak RSS.

    .venv/bin/python bench/top.py [--seconds 60] [--nvitop /tmp/nvt/bin/nvitop] [--size 120x40]
        [--screens DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpm.llm.demo import DemoBackend, DemoTraffic
from tests.fakes.fake_nvml import GIB, Scenario, build_fake_nvml

GPUS, PER_GPU = 8, 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Llm:
    """The demo's simulated Ollama and its traffic, on an event loop in a thread of the bench
    (so their CPU is not counted against either viewer)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.backend = DemoBackend()
        self.traffic: DemoTraffic | None = None
        self._call(self.backend.start())

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def send_through(self, proxy: str) -> None:
        self.traffic = DemoTraffic(proxy, interval=3.0)
        self._call(self.traffic.start())

    def stop_traffic(self) -> None:
        if self.traffic is not None:
            self._call(self.traffic.stop())
            self.traffic = None

    def stop(self) -> None:
        self.stop_traffic()
        self._call(self.backend.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


@contextmanager
def gpm_run(tmp: Path, llm: Llm) -> Iterator[tuple[str, dict[str, str]]]:
    """``gpm run`` on the fake library with 8 GPUs at 1 s; yields its API URL and the fake's
    environment."""
    lib = build_fake_nvml(tmp / "lib")
    sleepers = [subprocess.Popen(["sleep", "3600"]) for _ in range(GPUS * PER_GPU)]
    scenario = Scenario(tmp / "scenario.txt")
    for i in range(GPUS):
        pids = [p.pid for p in sleepers[i * PER_GPU : (i + 1) * PER_GPU]]
        scenario.set_gpu(i, util_gpu=50 + 5 * i, memory_used=8 * GIB, ecc_enabled=1)
        scenario.set_processes(i, compute=[(pid, GIB) for pid in pids])
        scenario.set_process_utilization(i, {pid: 20 for pid in pids})
    scenario.write()
    fake = {"FAKE_NVML_SCENARIO": str(scenario.path)}
    api, proxy = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPM_")}
    env.update(fake)
    env.update(
        {
            "GPM_GPU_NVML_LIBRARY": str(lib),
            "GPM_SERVICE_DATA_DIR": str(tmp / "data"),
            "GPM_SERVICE_POLL_INTERVAL_SECS": "1",
            "GPM_API_PORT": str(api),
            "GPM_API_DASHBOARD_PORT": str(free_port()),
            "GPM_TELEMETRY_METRICS_PORT": str(free_port()),
            "GPM_TELEMETRY_ENABLE_OPENTELEMETRY": "false",
            "GPM_OLLAMA_PROXY_PORT": str(proxy),
            "GPM_OLLAMA_BACKEND_URL": llm.backend.url,
        }
    )
    log = (tmp / "gpm.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gpm", "run"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{api}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/api/realtime", timeout=2) as resp:
                    if b'"timestamp":"' in resp.read():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"gpm run did not start; see {tmp / 'gpm.log'}")
            time.sleep(0.5)
        llm.send_through(f"http://127.0.0.1:{proxy}")
        yield url, {**fake, "LD_LIBRARY_PATH": str(lib.parent)}
    finally:
        llm.stop_traffic()
        proc.terminate()
        proc.wait(10)
        for p in sleepers:
            p.kill()
            p.wait()


def in_tmux(
    argv: list[str], env: dict[str, str], seconds: float, size: str, tmp: Path
) -> tuple[float, float, str]:
    """CPU % of one core, peak RSS (MiB) and the last screen of ``argv`` run in tmux."""
    sock = str(tmp / f"tmux-{Path(argv[0]).name}-{time.monotonic_ns()}.sock")  # a server each
    width, height = size.split("x")
    tmux = ["tmux", "-S", sock]
    command = "exec " + shlex.join(argv)
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "b", "-x", width, "-y", height, command],
        env={**os.environ, **env, "TERM": "xterm-256color", "LANG": "C.UTF-8"},
        check=True,
    )
    try:
        pane = subprocess.run(
            [*tmux, "list-panes", "-t", "b", "-F", "#{pane_pid}"],
            capture_output=True,
            text=True,
            check=True,
        )
        ps = psutil.Process(int(pane.stdout.split()[0]))
        time.sleep(5)  # start-up (imports, the first frames) is not what is measured
        cpu0, t0, peak = ps.cpu_times(), time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            peak = max(peak, ps.memory_info().rss)
            time.sleep(0.5)
        cpu1, elapsed = ps.cpu_times(), time.monotonic() - t0
        screen = subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True, check=True
        ).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return 100 * used / elapsed, peak / 2**20, screen


def gpu_rows(screen: str, viewer: str) -> int:
    """GPU rows on a viewer's last screen (each viewer lays a GPU's line out its own way)."""
    lines = screen.splitlines()
    if viewer == "nvitop":
        return sum(1 for line in lines if "MiB /" in line)
    return sum(1 for line in lines if "Fake GPU" in line and line.split()[0].isdigit())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--nvitop", help="the nvitop executable (pip install nvitop, in its own venv)")
    ap.add_argument("--size", default="120x40", help="terminal size, WIDTHxHEIGHT")
    ap.add_argument("--screens", metavar="DIR", help="write each viewer's last screen here")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("bench/top.py runs the viewers in tmux: apt-get install tmux")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    llm = Llm()
    try:
        with tempfile.TemporaryDirectory() as tmp_dir, gpm_run(Path(tmp_dir), llm) as (url, fake):
            tmp = Path(tmp_dir)
            top = [sys.executable, "-m", "gpm", "top", "--url", url, "--interval", "1"]
            cpu, rss, screen = in_tmux(top, {}, args.seconds, args.size, tmp)
            rows = gpu_rows(screen, "gpm")
            sessions = sum(1 for line in screen.splitlines() if "completed" in line)
            if args.screens:
                (Path(args.screens) / "gpm-top.txt").write_text(screen)
            print(f"gpm top --interval 1 ({args.size}, {GPUS} GPUs, {rows} GPU rows and "
                  f"{sessions} LLM requests on the last screen), {args.seconds:.0f} s:\n"
                  f"  CPU: {cpu:.2f} % of one core\n  peak RSS: {rss:.1f} MiB")  # fmt: skip
            if args.nvitop:
                argv = [args.nvitop, "--interval", "1"]
                cpu, rss, screen = in_tmux(argv, fake, args.seconds, args.size, tmp)
                rows = gpu_rows(screen, "nvitop")
                if args.screens:
                    (Path(args.screens) / "nvitop.txt").write_text(screen)
                print(f"nvitop --interval 1 ({args.size}, {rows} GPU rows on the last screen), "
                      f"{args.seconds:.0f} s:\n"
                      f"  CPU: {cpu:.2f} % of one core\n  peak RSS: {rss:.1f} MiB")  # fmt: skip
    finally:
        llm.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
