"""The proxy under test and the sessions it reported."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gpm.llm.proxy import LlmProxy
from gpm.model import LlmSession
from tests.llm.fake_ollama import FakeOllama


@dataclass
class Metered:
    """The real proxy in front of some backend, and a queue of the sessions it recorded."""

    proxy: LlmProxy
    sessions: asyncio.Queue[LlmSession]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    async def session(self, timeout: float = 5.0) -> LlmSession:
        """The next recorded session, or fail after ``timeout`` seconds."""
        return await asyncio.wait_for(self.sessions.get(), timeout)


async def start_metered(backend_url: str, store_prompts: bool = False) -> Metered:
    queue: asyncio.Queue[LlmSession] = asyncio.Queue()
    proxy = LlmProxy(backend_url, "127.0.0.1", 0, queue.put_nowait, store_prompts=store_prompts)
    await proxy.start()
    return Metered(proxy, queue)


@dataclass
class Proxied(Metered):
    """The proxy in front of the fake Ollama."""

    fake: FakeOllama = field(kw_only=True)
