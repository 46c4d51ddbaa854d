"""Official client libraries work through the proxy unchanged, and their sessions are metered."""

from __future__ import annotations

import ollama
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from gpm.model import Outcome
from tests.fakes.fake_ollama import NOT_FOUND, fixture
from tests.llm.harness import ClientView, Proxied, read_async_stream

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
OLLAMA_MESSAGES = [{"role": "user", "content": "hi"}]


async def test_ollama_chat_streaming(px: Proxied) -> None:
    px.fake.plan.first_token_delay = 0.2
    client = ollama.AsyncClient(host=px.url)
    parts = [
        part async for part in await client.chat("llama3.2", messages=OLLAMA_MESSAGES, stream=True)
    ]
    assert "".join(p.message.content or "" for p in parts) == "Hello, world!"
    assert parts[-1].done and parts[-1].eval_count == fixture("generate-final.json")["eval_count"]
    s = await px.session()
    final = fixture("generate-final.json")
    assert s.outcome is Outcome.COMPLETED and s.streamed
    assert s.tokens_per_second == final["eval_count"] / final["eval_duration"] * 1e9
    assert s.ttft_ms is not None and 200 <= s.ttft_ms < 1200


async def test_ollama_generate_not_streaming(px: Proxied) -> None:
    reply = await ollama.AsyncClient(host=px.url).generate("llama3.2", "hi", stream=False)
    assert reply.response == "Hello, world!" and reply.done
    s = await px.session()
    assert (s.endpoint, s.streamed, s.outcome) == ("/api/generate", False, Outcome.COMPLETED)
    assert s.prompt_tokens == fixture("generate-final.json")["prompt_eval_count"]


async def test_ollama_error_reaches_the_client(px: Proxied) -> None:
    px.fake.plan.status, px.fake.plan.error = 404, NOT_FOUND
    with pytest.raises(ollama.ResponseError) as info:
        await ollama.AsyncClient(host=px.url).chat("nope", messages=OLLAMA_MESSAGES)
    assert info.value.status_code == 404 and NOT_FOUND in info.value.error
    s = await px.session()
    assert (s.outcome, s.error) == (Outcome.ERROR, NOT_FOUND)


def openai_client(px: Proxied) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=px.url + "/v1", api_key="x", max_retries=0)


@pytest.mark.parametrize("include_usage", [True, False])
async def test_openai_streaming(px: Proxied, include_usage: bool) -> None:
    px.fake.plan.first_token_delay = 0.2
    px.fake.plan.token_delay = 0.02
    stream = await openai_client(px).chat.completions.create(
        model="llama3.2",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True} if include_usage else openai.omit,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello, world!"
    s = await px.session()
    assert (s.backend, s.endpoint, s.streamed) == ("openai", "/v1/chat/completions", True)
    assert s.outcome is Outcome.COMPLETED and s.done_reason == "stop"
    assert s.ttft_ms is not None and 200 <= s.ttft_ms < 1200
    # Without usage the proxy counts the 4 token chunks (not the role-only first delta, not
    # the finish chunk) and says so; the prompt, which nobody reported, stays unknown.
    assert s.completion_tokens == 4
    assert s.token_source == ("backend" if include_usage else "stream")
    assert s.prompt_tokens == (12 if include_usage else None)
    # 3 tokens after the first, over the stream's own span (>= 3 gaps of 20 ms)
    assert s.tokens_per_second is not None and 0 < s.tokens_per_second <= 3 / 0.06 + 1e-6


async def test_openai_not_streaming(px: Proxied) -> None:
    reply = await openai_client(px).chat.completions.create(model="llama3.2", messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello, world!"
    s = await px.session()
    assert s.streamed is False and (s.prompt_tokens, s.completion_tokens) == (12, 4)
    assert s.done_reason == "stop" and s.tokens_per_second is None


async def test_openai_error_shape(px: Proxied) -> None:
    px.fake.plan.status, px.fake.plan.error = 404, NOT_FOUND
    with pytest.raises(openai.NotFoundError):
        await openai_client(px).chat.completions.create(model="nope", messages=MESSAGES)
    s = await px.session()
    assert (s.outcome, s.error, s.status_code) == (Outcome.ERROR, NOT_FOUND, 404)


async def test_openai_prompt_and_reply_text_only_when_stored(px_prompts: Proxied) -> None:
    stream = await openai_client(px_prompts).chat.completions.create(
        model="llama3.2",
        messages=MESSAGES,
        stream=True,
    )
    _ = [c async for c in stream]
    s = await px_prompts.session()
    assert s.prompt_text == "user: hi" and s.response_text == "Hello, world!"


async def test_openai_client_cancel_after_k_chunks_counts_k(px: Proxied) -> None:
    px.fake.plan.tokens = ["a", "b", "c", "d", "e"]
    px.fake.plan.hang_after = 3  # the backend would go on; the client leaves first
    stream = await openai_client(px).chat.completions.create(
        model="llama3.2", messages=MESSAGES, stream=True
    )
    await read_async_stream(ClientView(), stream, stop_after=3)
    await stream.close()
    s = await px.session()
    # The role-only first delta is not a token: exactly the three the client read.
    assert (s.outcome, s.completion_tokens, s.token_source) == (Outcome.CANCELLED, 3, "stream")
