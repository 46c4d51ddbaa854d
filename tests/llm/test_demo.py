"""Demo mode: simulated Ollama traffic measured by the real proxy."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from yarl import URL

from gpm.llm.demo import DEMO_MODELS, DemoBackend, DemoTraffic
from gpm.llm.proxy import LlmProxy
from gpm.model import LlmSession, Outcome


async def test_demo_traffic_goes_through_the_proxy() -> None:
    backend = DemoBackend(time_scale=0.05, seed=1)
    await backend.start()
    sessions: asyncio.Queue[LlmSession] = asyncio.Queue()
    proxy = LlmProxy(backend.url, "127.0.0.1", 0, sessions.put_nowait)
    await proxy.start()
    traffic = DemoTraffic(f"http://127.0.0.1:{proxy.port}", 0.01, seed=2)
    await traffic.start()
    try:
        got = [await asyncio.wait_for(sessions.get(), 10) for _ in range(8)]
        async with aiohttp.ClientSession() as client:
            async with client.get(backend.url + "/api/ps") as r:
                resident = {m["name"] for m in (await r.json())["models"]}
            async with client.get(backend.url + "/api/tags") as r:
                tags = {m["name"] for m in (await r.json())["models"]}
    finally:
        await traffic.stop()
        await proxy.stop()
        await backend.stop()
    assert all(s.outcome is Outcome.COMPLETED for s in got)
    assert {s.model for s in got} <= {m.name for m in DEMO_MODELS}
    assert len({s.endpoint for s in got}) >= 2
    assert all(s.completion_tokens and s.completion_tokens >= 12 for s in got)
    native = [s for s in got if s.backend == "ollama"]
    assert native and all(s.tokens_per_second and s.prompt_tokens for s in native)
    assert resident and resident <= tags == {m.name for m in DEMO_MODELS}


async def test_client_gone_mid_request_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    backend = DemoBackend(time_scale=0.05, seed=1)
    await backend.start()
    body = json.dumps({"model": DEMO_MODELS[0].name, "messages": [], "stream": True}).encode()
    with caplog.at_level(logging.ERROR):
        try:
            url = URL(backend.url)
            _reader, writer = await asyncio.open_connection(url.host, url.port)
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            writer.close()  # gone before the (simulated) model answers
            await writer.wait_closed()
        finally:
            await backend.stop()  # waits for the request's handler to end
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
