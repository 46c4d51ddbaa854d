"""Footprint of the service: ``gpm run --demo`` with 8 simulated GPUs.

Prints the service's CPU use (percent of one core) and peak RSS over a run, and whether the heavy
libraries (pyarrow, the OTLP gRPC stack) were loaded. Targets: under 1 % of one core at 2 s
polling and under 60 MB RSS.

    .venv/bin/python bench/footprint.py [--seconds 60] [--gpus 8] [--interval 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument(
        "--no-demo-traffic",
        action="store_true",
        help="turn off the LLM parts (proxy and demo traffic)",
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPM_")}
        env.update(
            {
                "GPM_SERVICE_DATA_DIR": tmp,
                "GPM_GPU_SIMULATED_GPUS": str(args.gpus),
                "GPM_SERVICE_POLL_INTERVAL_SECS": str(args.interval),
                "GPM_API_PORT": str(free_port()),
                "GPM_API_DASHBOARD_PORT": str(free_port()),
                "GPM_TELEMETRY_METRICS_PORT": str(free_port()),
                "GPM_OLLAMA_PROXY_PORT": str(free_port()),
                "GPM_TELEMETRY_ENABLE_OPENTELEMETRY": "false",
                "GPM_OLLAMA_ENABLED": "false" if args.no_demo_traffic else "true",
            }
        )
        cmd = [sys.executable, "-m", "gpm", "run"] + ([] if args.no_demo_traffic else ["--demo"])
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ps = psutil.Process(proc.pid)
        time.sleep(5)  # let start-up (imports, first polls) finish before measuring
        cpu0 = ps.cpu_times()
        t0 = time.monotonic()
        peak = 0
        while time.monotonic() - t0 < args.seconds:
            peak = max(peak, ps.memory_info().rss)
            time.sleep(0.5)
        cpu1 = ps.cpu_times()
        elapsed = time.monotonic() - t0
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        proc.terminate()
        proc.wait(10)
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    mode = "" if args.no_demo_traffic else "--demo "
    print(
        f"gpm run {mode}with {args.gpus} simulated GPUs, "
        f"{args.interval}s polling, {elapsed:.0f}s measured"
    )
    print(f"  CPU: {100 * used / elapsed:.2f} % of one core")
    print(f"  peak RSS: {peak / 2**20:.1f} MiB")
    print(f"  pyarrow loaded: {'libarrow' in maps}; grpc loaded: {'cygrpc' in maps}")


if __name__ == "__main__":
    main()
