"""The fleet on one Prometheus: 30 GPM hosts with 8 GPUs each, scraped every 5 s.

Each host is a stand-in serving the /metrics text a real GPM exporter renders for 8 simulated
GPUs with LLM traffic (recorded once at start, with its own host name). Prints the series per
host and in all, the samples appended per second, the scrape duration per host, and the
latency of the fleet view (the /api/fleet route's work: its PromQL queries and assembly) cold
(every call asks Prometheus) and warm (cached). Needs Debian's ``prometheus``.

Run from the repository root: ``.venv/bin/python bench/fleet.py [--hosts 30] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpm.fleet.promql import Prometheus
from gpm.fleet.view import FleetCache
from gpm.gpu.simulated import SimulatedSource
from gpm.model import HostInfo
from gpm.state import LiveState
from gpm.telemetry.prometheus import MetricsExporter
from tests.conftest import free_port
from tests.telemetry.telemetry_data import session

GPUS = 8


def exporter_text(host: str) -> bytes:
    state = LiveState(snapshot=SimulatedSource(GPUS).poll(time.time()))
    state.host = HostInfo(host, "0.2.0", "550.54.15", "12.4", f"http://{host}:8010")
    exp = MetricsExporter(state)
    for model in ("qwen2:7b", "llama3.1:8b", "mistral:7b"):
        for _ in range(20):
            exp.observe_session(session(model))
    return exp.render()


def serve(body: bytes) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # Prometheus stopped
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def own_metric(base: str, name: str) -> float:
    """One of Prometheus' own metrics, summed over its labels, from its /metrics (it does not
    scrape itself here)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
        lines = resp.read().decode().splitlines()
    values = [float(ln.split()[-1]) for ln in lines if ln.startswith((name + " ", name + "{"))]
    return sum(values) if values else float("nan")


def query(base: str, promql: str) -> float:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else float("nan")


async def fleet_latency(base: str, calls: int, ttl: float) -> list[float]:
    cache = FleetCache(Prometheus(base), 85.0, ttl=ttl)
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        view = await cache.view()
        out.append((time.perf_counter() - start) * 1000)
        assert view.error is None, view.error
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    binary = shutil.which("prometheus")
    if binary is None:
        sys.exit("bench/fleet.py needs Debian's prometheus (apt-get install prometheus)")
    servers = [serve(exporter_text(f"host-{i:02d}")) for i in range(args.hosts)]
    with tempfile.TemporaryDirectory() as tmp:
        targets = ", ".join(f"'127.0.0.1:{port}'" for _, port in servers)
        config = Path(tmp) / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 5s\n  scrape_timeout: 4s\nscrape_configs:\n"
            f"  - job_name: gpm\n    static_configs:\n      - targets: [{targets}]\n"
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        appended = "prometheus_tsdb_head_samples_appended_total"
        try:
            time.sleep(15)  # start-up and the first scrapes: a benchmark's window, not a sync
            first, at = own_metric(base, appended), time.monotonic()
            time.sleep(args.seconds)
            samples = (own_metric(base, appended) - first) / (time.monotonic() - at)
            series = own_metric(base, "prometheus_tsdb_head_series")
            rss_mib = own_metric(base, "process_resident_memory_bytes") / 2**20
            per_host = query(base, 'avg(scrape_samples_scraped{job="gpm"})')
            scrape_ms = 1000 * query(base, 'avg(scrape_duration_seconds{job="gpm"})')
            cold = asyncio.run(fleet_latency(base, 40, ttl=0.0))
            warm = asyncio.run(fleet_latency(base, 200, ttl=3600.0))
        finally:
            proc.terminate()
            proc.wait()
    for server, _ in servers:
        server.shutdown()
    print(f"{args.hosts} hosts x {GPUS} GPUs, 3 models each, scraped every 5 s:")
    print(f"  series per host {per_host:.0f}, head series {series:.0f}, "
          f"samples appended {samples:.0f}/s, scrape {scrape_ms:.1f} ms per host, "
          f"Prometheus RSS {rss_mib:.0f} MiB")  # fmt: skip
    print(f"  fleet view cold: p50 {pct(cold, 50):.1f} ms, p99 {pct(cold, 99):.1f} ms; "
          f"warm: p50 {pct(warm, 50):.3f} ms, p99 {pct(warm, 99):.3f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
