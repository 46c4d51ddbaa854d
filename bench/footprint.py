"""Footprint of the service: ``gpm run`` with 8 GPUs, side by side with nvitop-exporter.

Prints each process's CPU use (percent of one core) and peak RSS over a run, and for GPM whether
the heavy libraries (pyarrow, the OTLP gRPC stack) were loaded. Both are scraped on /metrics
every 15 s, as a Prometheus would.

    .venv/bin/python bench/footprint.py [--seconds 60] [--gpus 8] [--interval 2]
        [--no-demo-traffic]                       # simulated GPUs (gpm run --demo), as before
    .venv/bin/python bench/footprint.py --nvml [--nvitop-exporter PATH] --interval 1
        # the fake libnvidia-ml.so.1 with 8 GPUs, every part on (OTLP aside: no collector), and
        # nvitop-exporter (pip install nvitop-exporter, in a venv of its own) on the same library
    .venv/bin/python bench/footprint.py --breakdown
        # where the service's RSS goes: each layer's import, in the order `gpm run` loads them
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.fake_nvml import GIB, Scenario, build_fake_nvml

SCRAPE_SECS = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(
    argv: list[str], env: dict[str, str], seconds: float, metrics: str
) -> tuple[float, float, str]:
    """CPU % of one core and peak RSS (MiB) of ``argv`` over ``seconds`` after a 5 s start."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    try:
        time.sleep(5)  # start-up (imports, first polls) is not what is measured
        cpu0, t0, peak, scraped = ps.cpu_times(), time.monotonic(), 0, float("-inf")
        while time.monotonic() - t0 < seconds:
            peak = max(peak, ps.memory_info().rss)
            if time.monotonic() - scraped >= SCRAPE_SECS:
                scraped = time.monotonic()
                with urllib.request.urlopen(metrics, timeout=5) as resp:
                    resp.read()
            time.sleep(0.5)
        cpu1, elapsed = ps.cpu_times(), time.monotonic() - t0
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        proc.terminate()
        proc.wait(10)
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return 100 * used / elapsed, peak / 2**20, maps


def gpm_env(tmp: str, interval: float) -> tuple[dict[str, str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPM_")}
    metrics = free_port()
    env.update(
        {
            "GPM_SERVICE_DATA_DIR": tmp,
            "GPM_SERVICE_POLL_INTERVAL_SECS": str(interval),
            "GPM_API_PORT": str(free_port()),
            "GPM_API_DASHBOARD_PORT": str(free_port()),
            "GPM_TELEMETRY_METRICS_PORT": str(metrics),
            "GPM_OLLAMA_PROXY_PORT": str(free_port()),
            "GPM_TELEMETRY_ENABLE_OPENTELEMETRY": "false",
        }
    )
    return env, f"http://127.0.0.1:{metrics}/metrics"


# The layers of `gpm run`, each imported after the ones before it: its figure is what it adds.
LAYERS = (
    ("asyncio, ssl, sqlite3 (the standard library a service needs)", "asyncio, ssl, sqlite3"),
    ("uvloop", "uvloop"),
    ("pydantic (config, API schemas)", "pydantic"),
    ("nvidia-ml-py", "pynvml"),
    ("aiohttp (the LLM proxy, its backend client)", "aiohttp"),
    ("starlette + FastAPI (the API)", "starlette.applications, fastapi"),
    ("uvicorn (the API's server)", "uvicorn"),
    ("prometheus_client (metric families)", "prometheus_client"),
    ("GPM: config, storage, views", "gpm.config, gpm.storage.queries, gpm.views"),
    ("GPM: API routes and schemas", "gpm.api.app"),
    ("GPM: the rest of `gpm run`", "gpm.runners, gpm.cli"),
)

_LAYER_SCRIPT = """
import sys
def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
print(rss())
for line in sys.stdin:
    exec('import ' + line.strip())
    print(rss(), flush=True)
"""


def breakdown() -> None:
    """RSS the interpreter has, then what each layer adds (one fresh interpreter, in order)."""
    stdin = "".join(f"{modules}\n" for _, modules in LAYERS)
    out = subprocess.run([sys.executable, "-c", _LAYER_SCRIPT], input=stdin, text=True,
                         capture_output=True, check=True).stdout.split()  # fmt: skip
    figures = [float(x) for x in out]
    print(f"{'the bare interpreter':58} {figures[0]:6.1f} MiB")
    for (label, _), before, after in zip(LAYERS, figures[:-1], figures[1:], strict=True):
        print(f"{label:58} {after - before:+6.1f} MiB")
    print(f"{'all of them imported':58} {figures[-1]:6.1f} MiB")


def report(what: str, cpu: float, rss: float, maps: str | None = None) -> None:
    print(f"{what}\n  CPU: {cpu:.2f} % of one core\n  peak RSS: {rss:.1f} MiB")
    if maps is not None:
        print(f"  pyarrow loaded: {'libarrow' in maps}; grpc loaded: {'cygrpc' in maps}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument(
        "--no-demo-traffic", action="store_true", help="simulated GPUs without the LLM parts"
    )
    ap.add_argument("--nvml", action="store_true", help="the fake NVML library, every part on")
    ap.add_argument("--nvitop-exporter", help="nvitop-exporter to run on the same fake library")
    ap.add_argument("--breakdown", action="store_true", help="RSS per imported layer, then exit")
    args = ap.parse_args()
    if args.breakdown:
        breakdown()
        return
    with tempfile.TemporaryDirectory() as tmp:
        env, metrics = gpm_env(tmp, args.interval)
        gpm = [sys.executable, "-m", "gpm", "run"]
        if not args.nvml:
            env["GPM_GPU_SIMULATED_GPUS"] = str(args.gpus)
            env["GPM_OLLAMA_ENABLED"] = "false" if args.no_demo_traffic else "true"
            cpu, rss, maps = measure(
                gpm + ([] if args.no_demo_traffic else ["--demo"]), env, args.seconds, metrics
            )
            mode = "" if args.no_demo_traffic else "--demo "
            report(f"gpm run {mode}with {args.gpus} simulated GPUs, {args.interval}s polling, "
                   f"{args.seconds:.0f}s measured", cpu, rss, maps)  # fmt: skip
            return
        lib = build_fake_nvml(Path(tmp) / "lib")
        scenario = Scenario(Path(tmp) / "scenario.txt")
        for i in range(args.gpus):
            pids = [10_000 * (i + 1) + p for p in range(4)]
            scenario.set_gpu(i, util_gpu=50, memory_used=8 * GIB, ecc_enabled=1)
            scenario.set_processes(i, compute=[(pid, GIB) for pid in pids])
            scenario.set_process_utilization(i, {pid: 20 for pid in pids})
        scenario.write()
        env.update({"GPM_GPU_NVML_LIBRARY": str(lib), "FAKE_NVML_SCENARIO": str(scenario.path)})
        cpu, rss, maps = measure(gpm, env, args.seconds, metrics)
        what = f"gpm run on the fake NVML library, {args.gpus} GPUs, {args.interval}s polling"
        report(f"{what}, every part on (OTLP aside), {args.seconds:.0f}s", cpu, rss, maps)
        if args.nvitop_exporter:
            port = free_port()
            nv_env = {**os.environ, "LD_LIBRARY_PATH": str(lib.parent),
                      "FAKE_NVML_SCENARIO": str(scenario.path)}  # fmt: skip
            argv = [args.nvitop_exporter, "--port", str(port), "--interval", str(args.interval)]
            cpu, rss, _ = measure(argv, nv_env, args.seconds, f"http://127.0.0.1:{port}/metrics")
            report(f"nvitop-exporter on the same library, {args.interval}s", cpu, rss)


if __name__ == "__main__":
    main()
