"""The proxy under test and the sessions it reported."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gpm.llm.proxy import LlmProxy
from gpm.model import LlmSession
from tests.llm.fake_ollama import FakeOllama


@dataclass
class Proxied:
    fake: FakeOllama
    proxy: LlmProxy
    sessions: asyncio.Queue[LlmSession] = field(default_factory=asyncio.Queue)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    async def session(self, timeout: float = 5.0) -> LlmSession:
        """The next recorded session, or fail after ``timeout`` seconds."""
        return await asyncio.wait_for(self.sessions.get(), timeout)
