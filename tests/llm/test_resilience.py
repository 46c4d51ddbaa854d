"""Cancellation, an unreachable backend, large uploads and failing telemetry never break traffic."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
import psutil
import pytest

from gpm.llm.proxy import LlmProxy
from gpm.model import LlmSession, Outcome
from tests.conftest import free_port, wait_for_async
from tests.fakes.fake_ollama import FakeOllama
from tests.llm.harness import Proxied

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("hang_after", [2, 0])
async def test_client_disconnect_closes_upstream_and_keeps_partial_counts(
    px: Proxied, hang_after: int
) -> None:
    px.fake.plan.tokens = ["a", "b", "c", "d", "e"]
    px.fake.plan.hang_after = hang_after
    async with aiohttp.ClientSession() as client:
        resp = await client.post(px.url + "/api/chat", json=CHAT)
        assert resp.status == 200
        for _ in range(hang_after):
            await resp.content.readline()
        resp.close()  # the client goes away mid-stream
    await asyncio.wait_for(px.fake.disconnected.wait(), 5)  # so Ollama stops generating
    s = await px.session()
    assert s.outcome is Outcome.CANCELLED
    assert (s.completion_tokens, s.token_source) == (hang_after, "stream")


async def test_client_disconnect_before_headers(px: Proxied) -> None:
    px.fake.plan.hang_before_headers = True
    async with aiohttp.ClientSession() as client:
        task = asyncio.create_task(client.post(px.url + "/api/chat", json=CHAT))
        await wait_for_async(lambda: px.fake.received, timeout=5, what="the request at Ollama")
        task.cancel()
    await asyncio.wait_for(px.fake.disconnected.wait(), 5)
    s = await px.session()
    assert s.outcome is Outcome.CANCELLED and s.status_code is None


async def test_backend_dropping_the_stream_truncates_the_client_reply(px: Proxied) -> None:
    px.fake.plan.drop_after = 2
    async with aiohttp.ClientSession() as client, client.post(px.url + "/api/chat", json=CHAT) as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    s = await px.session()
    assert s.outcome is Outcome.ERROR and s.error is not None
    assert "broke off" in s.error


async def test_backend_down_gives_502_naming_it() -> None:
    backend = f"http://127.0.0.1:{free_port()}"  # a closed port: nothing listens there
    sessions: list[LlmSession] = []
    proxy = LlmProxy(backend, "127.0.0.1", 0, sessions.append)
    await proxy.start()
    try:
        async with aiohttp.ClientSession() as client:
            async with client.post(f"http://127.0.0.1:{proxy.port}/api/chat", json=CHAT) as r:
                assert r.status == 502
                assert r.content_type == "application/json"
                body = await r.json()
            async with client.get(f"http://127.0.0.1:{proxy.port}/api/tags") as r:
                assert r.status == 502
    finally:
        await proxy.stop()
    assert backend in body["error"]
    assert len(sessions) == 1  # /api/tags is not a generation
    assert sessions[0].outcome is Outcome.REJECTED and sessions[0].status_code == 502
    assert sessions[0].model == "llama3.2"


async def test_on_session_raising_leaves_traffic_alone(
    fake: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[LlmSession] = []

    def broken(session: LlmSession) -> None:
        calls.append(session)
        raise RuntimeError("storage is down")

    proxy = LlmProxy(fake.url, "127.0.0.1", 0, broken)
    await proxy.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gpm.llm.proxy"):
            async with aiohttp.ClientSession() as client:
                for _ in range(3):
                    async with client.post(
                        f"http://127.0.0.1:{proxy.port}/api/chat", json=CHAT
                    ) as r:
                        assert r.status == 200
                        lines = (await r.read()).splitlines()
                        assert json.loads(lines[-1])["done"] is True
    finally:
        await proxy.stop()
    assert len(calls) == 3
    logged = [r for r in caplog.records if "could not record" in r.getMessage()]
    assert len(logged) == 1


async def test_large_upload_streams_through(px: Proxied) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    total = 100 * len(block)
    expected = hashlib.sha256()
    for _ in range(100):
        expected.update(block)
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = base
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal peak, sent
        for _ in range(100):
            peak = max(peak, proc.memory_info().rss)
            sent += len(block)
            yield block

    digest = "sha256:" + expected.hexdigest()
    async with aiohttp.ClientSession() as client:
        async with client.post(px.url + f"/api/blobs/{digest}", data=body()) as r:
            assert r.status == 201
        async with client.head(px.url + f"/api/blobs/{digest}") as r:
            assert r.status == 200
        async with client.head(px.url + "/api/blobs/sha256:00") as r:
            assert r.status == 404
    assert (px.fake.blob_bytes, px.fake.blob_sha256) == (total, expected.hexdigest())
    assert peak - base < 30 * 1024 * 1024, f"RSS grew by {(peak - base) / 2**20:.0f} MiB"
    assert px.sessions.empty()


def vm_hwm_kib(pid: int) -> int:
    """A process's peak resident set size (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


async def test_chunked_100mb_chat_request_is_metered_in_flat_memory(fake: FakeOllama) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.llm.proxy_alone", fake.url, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        port = int(await asyncio.wait_for(proc.stdout.readline(), 30))
        url = f"http://127.0.0.1:{port}/api/chat"
        async with aiohttp.ClientSession() as client:
            async with client.post(url, json={**CHAT, "stream": False}) as r:  # warm the proxy
                assert r.status == 200
            await asyncio.wait_for(proc.stdout.readline(), 10)
            base = vm_hwm_kib(proc.pid)
            block = b"x" * (1024 * 1024)
            # The model comes after the 100 MB message: it must be found as the body streams.
            parts = [b'{"messages":[{"role":"user","content":"', *[block] * 100,
                     b'"}],"stream":false,"model":"llama3.2"}']  # fmt: skip
            expected = hashlib.sha256(b"".join(parts)).hexdigest()

            async def body() -> AsyncIterator[bytes]:
                for part in parts:
                    yield part

            async with client.post(url, data=body()) as r:  # no length: chunked framing
                assert r.status == 200
                assert (await r.json())["message"]["content"] == "Hello, world!"
        session = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        grown_mib = (vm_hwm_kib(proc.pid) - base) / 1024
    finally:
        proc.kill()
        await proc.wait()
    assert fake.big_bodies == [(sum(map(len, parts)), expected)]  # every byte, in order
    assert (session["model"], session["streamed"], session["outcome"]) == (
        "llama3.2",
        False,
        "completed",
    )
    assert grown_mib < 10, f"the proxy's peak RSS grew by {grown_mib:.1f} MiB"


async def test_port_in_use_fails_start_without_leaking_a_client_session() -> None:
    reported: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(str(ctx.get("message"))))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proxy = LlmProxy("http://127.0.0.1:1", "127.0.0.1", taken.getsockname()[1], print)
        with pytest.raises(OSError):
            await proxy.start()
    del proxy
    gc.collect()
    loop.set_exception_handler(None)
    assert not [m for m in reported if "Unclosed" in m], reported
