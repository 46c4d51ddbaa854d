"""A fake Ollama and the real proxy in front of it, on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.fake_ollama import FakeOllama
from tests.llm.harness import Proxied, start_metered


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    server = FakeOllama()
    await server.start()
    yield server
    await server.stop()


async def _proxied(fake: FakeOllama, store_prompts: bool) -> Proxied:
    m = await start_metered(fake.url, store_prompts)
    return Proxied(m.proxy, m.sessions, fake=fake)


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
