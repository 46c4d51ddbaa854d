"""What the LLM proxy costs: added TTFT and latency, chunks/s through it, its CPU per 1,000 chunks.

Runs a fast fake Ollama and the proxy in their own processes (so the proxy's CPU is its own), and
drives both directly and through the proxy from this process, at 1 and 64 concurrent streams.
With ``--nginx``, Debian's nginx (nginx-light: one worker, buffering off, a keepalive upstream)
runs beside GPM's proxy in front of the same backend, for the added time to first chunk and the
CPU per request side by side.

    .venv/bin/python bench/proxy.py [--requests 200] [--tokens 2000] [--nginx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
FINAL = {"done_reason": "stop", "total_duration": 1_000_000, "prompt_eval_count": 10,
         "prompt_eval_duration": 100_000, "eval_duration": 900_000}  # fmt: skip


def _token(i: int) -> bytes:
    obj = {"model": "bench", "created_at": "2026-11-27T10:00:00.000000Z",
           "message": {"role": "assistant", "content": f"t{i} "}, "done": False}  # fmt: skip
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


async def _backend() -> None:
    """A fake Ollama that streams ``n`` one-line chunks, one TCP write each, as fast as it can."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        body = await request.json()
        n = int(body.get("n", 10))
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for i in range(n):
            await resp.write(_token(i))
        final = {"model": "bench", "message": {"role": "assistant", "content": ""},
                 "done": True, "eval_count": n, **FINAL}  # fmt: skip
        await resp.write(json.dumps(final).encode() + b"\n")
        await resp.write_eof()
        return resp

    runner = web.ServerRunner(web.Server(handle, access_log=None), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    from gpm.net import bound_port

    print(bound_port(site), flush=True)
    await asyncio.Event().wait()


async def _proxy(backend_url: str) -> None:
    from gpm.llm.proxy import LlmProxy

    proxy = LlmProxy(backend_url, "127.0.0.1", 0, lambda s: None)
    await proxy.start()
    print(proxy.port, flush=True)
    await asyncio.Event().wait()


def _spawn(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


async def _one(client: aiohttp.ClientSession, url: str, n: int) -> tuple[float, float, int]:
    """(seconds to first content line, seconds to the end, lines) for one streamed chat."""
    t0 = time.perf_counter()
    first = 0.0
    lines = 0
    async with client.post(url + "/api/chat", json={"model": "bench", "n": n}) as resp:
        async for _line in resp.content:
            lines += 1
            if lines == 1:
                first = time.perf_counter() - t0
    return first, time.perf_counter() - t0, lines


async def _run(url: str, concurrency: int, requests: int, n: int) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as client:
        results: list[tuple[float, float, int]] = []
        queue = list(range(requests))

        async def worker() -> None:
            while queue:
                queue.pop()
                results.append(await _one(client, url, n))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    ttft = sorted(r[0] for r in results)
    total = sorted(r[1] for r in results)
    return {
        "ttft_p50": statistics.median(ttft) * 1e3,
        "ttft_p99": ttft[int(len(ttft) * 0.99) - 1] * 1e3,
        "latency_p50": statistics.median(total) * 1e3,
        "chunks": float(sum(r[2] for r in results)),
        "chunks_per_s": sum(r[2] for r in results) / wall,
    }


NGINX_CONF = """daemon off; master_process off; worker_processes 1;
pid {tmp}/nginx.pid; error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off; proxy_request_buffering off;
    }}
  }}
}}
"""


def _nginx(tmp: Path, backend_port: int) -> tuple[subprocess.Popen[bytes], int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, backend=backend_port, port=port))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)])
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)  # nginx binding its port: a start-up poll, not synchronisation
    raise RuntimeError("nginx did not start")


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


async def main(args: argparse.Namespace) -> None:
    backend, backend_port = _spawn("backend")
    proxy_proc, proxy_port = _spawn("proxy", f"http://127.0.0.1:{backend_port}")
    direct_url = f"http://127.0.0.1:{backend_port}"
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    ps = psutil.Process(proxy_proc.pid)
    if args.nginx:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            nginx, nginx_port = _nginx(Path(tmp), backend_port)
            try:
                await _side_by_side(direct_url, {
                    "GPM": (proxy_url, ps),
                    "nginx": (f"http://127.0.0.1:{nginx_port}", psutil.Process(nginx.pid)),
                }, args.requests)  # fmt: skip
            finally:
                for proc in (nginx, proxy_proc, backend):
                    proc.terminate()
                    proc.wait(10)
        return
    try:
        await _run(proxy_url, 4, 20, 10)  # warm both up
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"{os.cpu_count()} CPUs, load average {load} (other work skews these figures)")
        print(f"{'case':42} {'direct':>10} {'proxied':>10} {'added':>10}")
        for concurrency in (1, 64):
            requests = max(args.requests, concurrency * 2)
            d = await _run(direct_url, concurrency, requests, 10)
            cpu0 = _cpu(ps)
            p = await _run(proxy_url, concurrency, requests, 10)
            per_request_us = (_cpu(ps) - cpu0) * 1e6 / requests
            for key, label in (("ttft_p50", "TTFT p50 ms"), ("ttft_p99", "TTFT p99 ms"),
                               ("latency_p50", "request (10 chunks) p50 ms")):  # fmt: skip
                name = f"{label}, {concurrency} stream(s)"
                print(f"{name:42} {d[key]:10.3f} {p[key]:10.3f} {p[key] - d[key]:10.3f}")
            name = f"proxy CPU us/request, {concurrency} stream(s)"
            print(f"{name:42} {'':10} {per_request_us:10.0f}")
            streams = max(concurrency, 4) if concurrency > 1 else 1
            d = await _run(direct_url, concurrency, streams, args.tokens)
            cpu0 = _cpu(ps)
            p = await _run(proxy_url, concurrency, streams, args.tokens)
            cpu_ms = (_cpu(ps) - cpu0) * 1e3 / p["chunks"] * 1000
            name = f"chunks/s, {concurrency} stream(s)"
            print(f"{name:42} {d['chunks_per_s']:10.0f} {p['chunks_per_s']:10.0f}")
            name = f"proxy CPU ms/1000 chunks, {concurrency}"
            print(f"{name:42} {'':10} {cpu_ms:10.1f}")
    finally:
        for proc in (proxy_proc, backend):
            proc.terminate()
            proc.wait(10)


async def _side_by_side(
    direct_url: str, proxies: dict[str, tuple[str, psutil.Process]], requests: int
) -> None:
    """Added TTFT p50/p99 and CPU per request of each proxy, one stream at a time."""
    for url, _ in proxies.values():
        await _run(url, 4, 20, 10)  # warm up
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load}; 1 stream, {requests} requests of 10 chunks")
    print(f"{'proxy':8} {'TTFC +p50 ms':>13} {'TTFC +p99 ms':>13} {'CPU us/request':>15}")
    for name, (url, proc) in proxies.items():
        d = await _run(direct_url, 1, requests, 10)
        cpu0 = _cpu(proc)
        p = await _run(url, 1, requests, 10)
        per_request = (_cpu(proc) - cpu0) * 1e6 / requests
        added = (p["ttft_p50"] - d["ttft_p50"], p["ttft_p99"] - d["ttft_p99"])
        print(f"{name:8} {added[0]:13.3f} {added[1]:13.3f} {per_request:15.0f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "backend":
        asyncio.run(_backend())
    elif len(sys.argv) > 2 and sys.argv[1] == "proxy":
        from gpm.runners import event_loop_factory

        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:  # as `gpm run` does
            runner.run(_proxy(sys.argv[2]))
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--requests", type=int, default=200)
        parser.add_argument("--tokens", type=int, default=2000)
        parser.add_argument("--nginx", action="store_true", help="nginx beside GPM's proxy")
        asyncio.run(main(parser.parse_args()))
