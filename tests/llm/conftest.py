"""A fake Ollama and the real proxy in front of it, on free loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gpm.llm.proxy import LlmProxy
from gpm.model import LlmSession
from tests.llm.fake_ollama import FakeOllama
from tests.llm.harness import Proxied


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    server = FakeOllama()
    await server.start()
    yield server
    await server.stop()


async def _proxied(fake: FakeOllama, store_prompts: bool) -> Proxied:
    queue: asyncio.Queue[LlmSession] = asyncio.Queue()
    proxy = LlmProxy(fake.url, "127.0.0.1", 0, queue.put_nowait, store_prompts=store_prompts)
    await proxy.start()
    return Proxied(fake, proxy, queue)


@pytest.fixture
async def px(fake: FakeOllama) -> AsyncIterator[Proxied]:
    p = await _proxied(fake, store_prompts=False)
    yield p
    await p.proxy.stop()


@pytest.fixture
async def px_prompts(fake: FakeOllama) -> AsyncIterator[Proxied]:
    p = await _proxied(fake, store_prompts=True)
    yield p
    await p.proxy.stop()
