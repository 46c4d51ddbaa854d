"""The fleet view from PromQL answers: hosts joined by instance, GPUs judged idle, hot or
throttled, and the last answer kept (with the error) when Prometheus fails."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gpm.fleet.promql import Prometheus, Series
from gpm.fleet.view import QUERIES, FleetCache, assemble
from gpm.net import bound_port

A, B = "10.0.0.1:9090", "10.0.0.2:9090"


def s(name: str, value: float | None, **labels: str) -> Series:
    return Series({"__name__": name, **labels}, value)


def answers() -> dict[str, list[Series]]:
    out: dict[str, list[Series]] = {q: [] for q in QUERIES}
    out["hosts"] = [
        s("gpm_host_info", 1, instance=A, host="a", version="0.2", url="http://a:8010"),
        s("gpm_host_info", 1, instance=B, host="b"),
    ]
    out["up"] = [s("up", 1, instance=A), s("up", 0, instance=B)]
    out["last_seen"] = [s("x", 1795000000.0, instance=B)]
    out["gpu"] = [
        s("gpm_gpu_utilization_percent", 2, instance=A, gpu_id="0"),
        s("gpm_gpu_temperature_celsius", 91, instance=A, gpu_id="0"),
        s("gpm_gpu_power_watts", 100, instance=A, gpu_id="0"),
        s("gpm_gpu_utilization_percent", 99, instance=A, gpu_id="1"),
        s("gpm_gpu_power_watts", 300, instance=A, gpu_id="1"),
        s("gpm_gpu_utilization_percent", 50, instance="unknown:1", gpu_id="0"),  # not a GPM
    ]
    out["throttle"] = [s("t", 1, instance=A, gpu_id="1", reason="hw_thermal_slowdown")]
    out["health"] = [s("h", 1, instance=A, gpu_id="1", state="degraded")]
    out["processes"] = [s("p", 2, instance=A, gpu_id="0")]
    out["models"] = [s("m", 5e9, instance=A, model="qwen2:7b")]
    out["tokens_per_second"] = [s("q", None, instance=A, model="qwen2:7b")]  # NaN: no traffic
    out["ttft"] = [s("q", 0.25, instance=A, model="qwen2:7b")]
    return out


def test_hosts_gpus_and_their_judgement() -> None:
    view = assemble(answers(), hot_celsius=85.0, now=1.0)
    a, b = view.hosts
    assert (a.host, a.up, a.url, b.host, b.up, b.last_seen) == (
        "a", True, "http://a:8010", "b", False, 1795000000.0
    )  # fmt: skip
    g0, g1 = a.gpus
    assert (g0.idle, g0.idle_memory_held, g0.hot, g0.throttled) == (True, True, True, False)
    assert (g1.idle, g1.hot, g1.throttled, g1.health) == (False, None, True, "degraded")
    assert a.power_watts == 400 and b.power_watts is None  # a down host draws nothing known
    (m,) = a.models
    assert (m.vram_bytes, m.tokens_per_second_p50, m.ttft_ms_p50) == (5e9, None, 250.0)
    assert b.gpus == [] and b.models == []


@pytest.fixture
async def flaky_prometheus() -> AsyncIterator[tuple[str, list[int]]]:
    """Answers every query with an empty vector until ``status[0]`` is set to an error code."""
    status = [200]

    async def handle(request: web.Request) -> web.Response:
        if status[0] != 200:
            return web.Response(status=status[0], text="no")
        body = {"status": "success", "data": {"resultType": "vector", "result": []}}
        if request.query["query"] == QUERIES["hosts"]:
            body["data"]["result"] = [  # type: ignore[index]
                {"metric": {"instance": A, "host": "a"}, "value": [1, "1"]}
            ]
        return web.Response(text=json.dumps(body))

    app = web.Application()
    app.router.add_get("/api/v1/query", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{bound_port(site)}", status
    await runner.cleanup()


async def test_the_last_answer_stays_with_the_error(
    flaky_prometheus: tuple[str, list[int]],
) -> None:
    url, status = flaky_prometheus
    now = [100.0]
    cache = FleetCache(Prometheus(url), 85.0, ttl=5.0, clock=lambda: now[0])
    first = await cache.view()
    assert [h.host for h in first.hosts] == ["a"] and first.error is None
    status[0] = 401
    assert await cache.view() is first  # within the ttl: no new query
    now[0] += 6
    failed = await cache.view()
    assert [h.host for h in failed.hosts] == ["a"] and failed.fetched_at == 100.0
    assert failed.error is not None and "fleet.bearer_token" in failed.error
    status[0] = 200
    now[0] += 6
    assert (await cache.view()).error is None
