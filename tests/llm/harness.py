"""The proxy under test and the sessions it reported."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field

from openai.types.chat import ChatCompletionChunk

from gpm.llm.proxy import LlmProxy
from gpm.model import LlmSession
from tests.fakes.fake_ollama import FakeOllama


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


@dataclass
class ClientView:
    """What a client saw of one streamed chat reply, on its own clock (ms since it asked)."""

    t0: float = field(default_factory=time.perf_counter)
    parts: list[str] = field(default_factory=list)
    ttft_ms: float | None = None
    duration_ms: float | None = None
    finish_reason: str | None = None

    @property
    def content_chunks(self) -> int:
        return len(self.parts)

    def see(self, chunk: ChatCompletionChunk) -> None:
        for choice in chunk.choices:
            if choice.delta.content:
                if self.ttft_ms is None:
                    self.ttft_ms = (time.perf_counter() - self.t0) * 1e3
                self.parts.append(choice.delta.content)
            self.finish_reason = choice.finish_reason or self.finish_reason

    def end(self) -> ClientView:
        self.duration_ms = (time.perf_counter() - self.t0) * 1e3
        return self


def read_stream(view: ClientView, stream: Iterable[ChatCompletionChunk]) -> ClientView:
    """Read a sync client's stream to its end, the way that client reads it."""
    for chunk in stream:
        view.see(chunk)
    return view.end()


async def read_async_stream(
    view: ClientView, stream: AsyncIterable[ChatCompletionChunk], stop_after: int | None = None
) -> ClientView:
    """Read an async client's stream to its end, or leave after ``stop_after`` content chunks."""
    async for chunk in stream:
        view.see(chunk)
        if stop_after is not None and view.content_chunks >= stop_after:
            break
    return view.end()
