"""Against a real OpenAI-compatible server: llama.cpp behind the proxy, official clients in front.

What GPM records must equal what the server reported and what the client saw: the outcome every
time (the sync client closes its socket right after ``[DONE]``), token counts exact from the
server where it reports them and counted exactly from the stream where it does not, TTFT and
duration within a few ms of the client's own clock.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from gpm.model import LlmSession, Outcome
from tests.fakes.llama_server import MODEL_ALIAS, llama_server
from tests.fakes.tiny_model import N_CTX
from tests.llm.harness import (
    ClientView,
    Metered,
    read_async_stream,
    read_stream,
    start_metered,
)

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
# Proxy and client clocks: typically within 1-3 ms here; one request can be late by a scheduling
# hiccup on a busy 2-core machine (the client and the proxy share a process), so single figures
# get a wide bound and the repeated sync run also checks the median.
CLOCK_MS = 50.0
TYPICAL_CLOCK_MS = 5.0


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_server(tmp_path_factory.mktemp("llama")) as url:
        yield url


@pytest.fixture
async def lx(llama_url: str) -> AsyncIterator[Metered]:
    m = await start_metered(llama_url)
    yield m
    await m.proxy.stop()


@pytest.fixture
async def aclient(lx: Metered) -> AsyncIterator[openai.AsyncOpenAI]:
    """The async client, warmed by one request (its first call pays for imports and setup)."""
    client = openai.AsyncOpenAI(base_url=lx.url + "/v1", api_key="x", max_retries=0)
    await async_stream(client, 1)
    await lx.session()
    yield client
    await client.close()


def stream_request(max_tokens: int, include_usage: bool) -> dict[str, Any]:
    return {
        "model": MODEL_ALIAS,
        "messages": MESSAGES,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True} if include_usage else openai.omit,
    }


def sync_stream(client: openai.OpenAI, max_tokens: int, include_usage: bool = False) -> ClientView:
    """The sync client, read to the end the way it reads (it closes once it has ``[DONE]``)."""
    view = ClientView()
    stream = client.chat.completions.create(**stream_request(max_tokens, include_usage))
    return read_stream(view, stream)


async def async_stream(
    client: openai.AsyncOpenAI, max_tokens: int, include_usage: bool = False
) -> ClientView:
    view = ClientView()
    stream = await client.chat.completions.create(**stream_request(max_tokens, include_usage))
    return await read_async_stream(view, stream)


def assert_matches_client(s: LlmSession, seen: ClientView) -> None:
    assert s.outcome is Outcome.COMPLETED, (s.outcome, s.error)
    assert s.streamed and s.done_reason == seen.finish_reason == "length"
    # llama-cpp-python's server sends no usage in a stream (it ignores include_usage): the
    # proxy counts, exactly, the chunks that carried a token, and says it counted them.
    assert (s.completion_tokens, s.token_source) == (seen.content_chunks, "stream")
    assert s.prompt_tokens is None  # nobody reported it: unknown, not 0
    assert s.ttft_ms is not None and s.duration_ms is not None
    assert seen.ttft_ms is not None and seen.duration_ms is not None
    assert -CLOCK_MS < seen.ttft_ms - s.ttft_ms < CLOCK_MS
    assert -CLOCK_MS < seen.duration_ms - s.duration_ms < CLOCK_MS


def clock_gaps_ms(s: LlmSession, seen: ClientView) -> tuple[float, float]:
    assert seen.ttft_ms is not None and s.ttft_ms is not None
    assert seen.duration_ms is not None and s.duration_ms is not None
    return abs(seen.ttft_ms - s.ttft_ms), abs(seen.duration_ms - s.duration_ms)


async def test_sync_client_streams_read_to_the_end_are_completed_every_time(lx: Metered) -> None:
    client = openai.OpenAI(base_url=lx.url + "/v1", api_key="x", max_retries=0)
    await asyncio.to_thread(sync_stream, client, 1)  # warm: imports and connection setup
    await lx.session()
    gaps: list[tuple[float, float]] = []
    for i in range(30):  # the close-after-[DONE] race hit about one stream in three
        seen = await asyncio.to_thread(sync_stream, client, 6, include_usage=bool(i % 2))
        assert seen.content_chunks == 6  # the model emits one visible token per chunk
        s = await lx.session()
        assert_matches_client(s, seen)
        gaps.append(clock_gaps_ms(s, seen))
    client.close()
    assert lx.sessions.empty()
    assert statistics.median(g[0] for g in gaps) < TYPICAL_CLOCK_MS  # TTFT
    assert statistics.median(g[1] for g in gaps) < TYPICAL_CLOCK_MS  # duration


@pytest.mark.parametrize("include_usage", [False, True])
async def test_async_client_stream(
    lx: Metered, aclient: openai.AsyncOpenAI, include_usage: bool
) -> None:
    seen = await async_stream(aclient, 24, include_usage)
    s = await lx.session()
    assert_matches_client(s, seen)
    # Tokens/s of a counted stream spans the first to the last content chunk.
    assert s.mean_chunk_gap_ms is not None and s.tokens_per_second is not None
    assert s.tokens_per_second == pytest.approx(1000.0 / s.mean_chunk_gap_ms)
    assert s.chunk_gap_p50_ms is not None and s.chunk_gap_p99_ms is not None
    assert 0 <= s.chunk_gap_p50_ms <= s.chunk_gap_p99_ms
    assert len(s.chunk_gaps_ms) == seen.content_chunks - 1


@pytest.mark.parametrize("use_async", [False, True])
async def test_not_streamed_counts_come_from_the_server(
    lx: Metered, aclient: openai.AsyncOpenAI, use_async: bool
) -> None:
    client = openai.OpenAI(base_url=lx.url + "/v1", api_key="x", max_retries=0)

    async def ask() -> ChatCompletion:
        if use_async:
            return await aclient.chat.completions.create(
                model=MODEL_ALIAS, messages=MESSAGES, max_tokens=9
            )
        return await asyncio.to_thread(
            client.chat.completions.create, model=MODEL_ALIAS, messages=MESSAGES, max_tokens=9
        )

    await ask()  # warm: the client's first reply pays for its own setup
    await lx.session()
    t0 = time.perf_counter()
    reply = await ask()
    took_ms = (time.perf_counter() - t0) * 1e3
    client.close()
    s = await lx.session()
    assert reply.usage is not None
    assert s.outcome is Outcome.COMPLETED and not s.streamed
    assert (s.prompt_tokens, s.completion_tokens) == (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )
    assert s.completion_tokens == 9 and s.token_source == "backend"
    assert s.duration_ms is not None and -CLOCK_MS < took_ms - s.duration_ms < CLOCK_MS


async def test_client_cancel_mid_stream_is_cancelled_with_what_was_forwarded(
    lx: Metered, aclient: openai.AsyncOpenAI
) -> None:
    stream = await aclient.chat.completions.create(
        model=MODEL_ALIAS, messages=MESSAGES, max_tokens=N_CTX * 4, temperature=0, stream=True
    )
    await read_async_stream(ClientView(), stream, stop_after=3)
    await stream.close()  # the client leaves long before the server would finish
    s = await lx.session()
    assert s.outcome is Outcome.CANCELLED and s.token_source == "stream"
    assert s.completion_tokens is not None and 3 <= s.completion_tokens < N_CTX * 4


async def test_concurrent_streams_are_each_timed_on_their_own(
    lx: Metered, aclient: openai.AsyncOpenAI
) -> None:
    # The server answers one request at a time: the second waits, and its TTFT says so.
    seen = await asyncio.gather(*(async_stream(aclient, 40) for _ in range(2)))
    sessions = [await lx.session(), await lx.session()]
    assert len({s.id for s in sessions}) == 2
    by_ttft = sorted(sessions, key=lambda s: s.ttft_ms or 0.0)
    for s, client_view in zip(by_ttft, sorted(seen, key=lambda v: v.ttft_ms or 0.0), strict=True):
        assert_matches_client(s, client_view)
    first, second = by_ttft
    assert first.duration_ms is not None and second.ttft_ms is not None
    assert second.ttft_ms >= first.duration_ms - CLOCK_MS


async def test_context_overflow_is_an_error_with_the_servers_message(
    lx: Metered, aclient: openai.AsyncOpenAI
) -> None:
    long_prompt: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi " * N_CTX * 2}]
    with pytest.raises(openai.BadRequestError) as info:
        await aclient.chat.completions.create(model=MODEL_ALIAS, messages=long_prompt, max_tokens=8)
    s = await lx.session()
    assert (s.outcome, s.status_code) == (Outcome.ERROR, 400)
    assert s.error is not None and "maximum context length" in s.error
    assert s.error in str(info.value)


async def test_stream_that_ends_without_a_final_chunk_is_an_error(
    lx: Metered, aclient: openai.AsyncOpenAI
) -> None:
    # Streaming, llama-cpp-python's server answers an overflow with 200 and an empty stream.
    long_prompt: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi " * N_CTX * 2}]
    stream = await aclient.chat.completions.create(
        model=MODEL_ALIAS, messages=long_prompt, max_tokens=8, stream=True
    )
    assert [c async for c in stream] == []
    s = await lx.session()
    assert (s.outcome, s.status_code) == (Outcome.ERROR, 200)
    assert s.error == "the stream ended before its final chunk"
    assert (s.completion_tokens, s.token_source) == (0, "stream")


async def test_bad_body_is_an_error_with_the_servers_message(lx: Metered) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            lx.url + "/v1/chat/completions", json={"model": MODEL_ALIAS, "messages": "nope"}
        ) as resp,
    ):
        body = await resp.json()
    s = await lx.session()
    assert resp.status >= 400 and s.outcome is Outcome.ERROR and s.status_code == resp.status
    assert s.error == body["error"]["message"] and "valid list" in s.error


def test_tiny_model_is_written_by_the_tests(tmp_path: Path) -> None:
    from gguf import GGUFReader

    from tests.fakes.tiny_model import write_tiny_llama

    reader = GGUFReader(write_tiny_llama(tmp_path / "m.gguf"))
    assert reader.fields["general.architecture"].contents() == "llama"
    assert "tokenizer.chat_template" in reader.fields
