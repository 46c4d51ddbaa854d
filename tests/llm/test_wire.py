"""The proxy forwards bytes, status and headers exactly, and meters native streams correctly."""

from __future__ import annotations

import json

import aiohttp
import pytest

from gpm.model import Outcome
from tests.fakes.fake_ollama import BUSY, NOT_FOUND, FakeOllama, fixture
from tests.llm.harness import Proxied

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "secret prompt"}]}


async def fetch(
    url: str, path: str, body: object, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as client,
        client.post(url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
@pytest.mark.parametrize("shape", ["plain", "split", "batched"])
async def test_native_stream_is_byte_identical_and_metered(
    px: Proxied, path: str, shape: str
) -> None:
    px.fake.plan.split_lines = shape == "split"
    px.fake.plan.batch_lines = shape == "batched"
    body = {"model": "llama3.2", "prompt": "p"} if path == "/api/generate" else CHAT
    direct = await fetch(px.fake.url, path, body)
    proxied = await fetch(px.url, path, body)
    assert proxied[0] == direct[0] == 200
    assert proxied[2] == direct[2]
    assert proxied[1]["Content-Type"] == "application/x-ndjson"

    s = await px.session()
    final = fixture("generate-final.json")
    assert (s.model, s.endpoint, s.outcome, s.kind) == (
        "llama3.2",
        path,
        Outcome.COMPLETED,
        "generation",
    )
    assert s.streamed is True  # no "stream" field means streaming
    assert s.prompt_tokens == final["prompt_eval_count"]
    assert s.completion_tokens == final["eval_count"]
    assert s.tokens_per_second == final["eval_count"] / final["eval_duration"] * 1e9
    assert (
        s.prefill_tokens_per_second
        == final["prompt_eval_count"] / final["prompt_eval_duration"] * 1e9
    )
    assert s.load_duration_ms == final["load_duration"] / 1e6
    assert s.eval_duration_ms == final["eval_duration"] / 1e6
    assert s.done_reason == "stop"
    assert s.ttft_ms is not None and s.ttfb_ms is not None and s.duration_ms is not None
    assert s.ttfb_ms <= s.ttft_ms <= s.duration_ms
    assert s.client == "local"
    assert s.prompt_text is None and s.response_text is None
    assert s.status_code == 200


async def test_prefill_rate_counts_only_uncached_prompt_tokens(px: Proxied) -> None:
    px.fake.plan.final = {
        "prompt_eval_count": 100,
        "prompt_eval_cached_count": 60,
        "prompt_eval_duration": 20_000_000,
        "eval_count": 4,
        "eval_duration": 40_000_000,
    }
    await fetch(px.url, "/api/chat", CHAT)
    s = await px.session()
    assert s.prompt_cached_tokens == 60
    assert s.prefill_tokens_per_second == pytest.approx(40 / 0.02)
    assert s.tokens_per_second == pytest.approx(100.0)


async def test_absent_fields_stay_none(px: Proxied) -> None:
    px.fake.plan.final = {"eval_count": 3}  # a server that left the rest out (Ollama's cloud)
    px.fake.plan.tokens = ["a", "b", "c"]
    px.fake.plan.token_delay = 0.05
    await fetch(px.url, "/api/generate", {"model": "m", "prompt": "p"})
    s = await px.session()
    assert (s.completion_tokens, s.token_source) == (3, "backend")
    assert s.prompt_tokens is None and s.eval_duration_ms is None
    assert s.prefill_tokens_per_second is None and s.load_duration_ms is None
    assert s.cold_start is None and s.ttft_other_ms is None
    # No decode time from the server: tokens/s is the proxy's, over the content chunks' span.
    assert s.tokens_per_second is not None and 0 < s.tokens_per_second <= 2 / 0.1 + 1e-6


async def test_first_empty_chunk_is_not_the_first_token(px: Proxied) -> None:
    px.fake.plan.tokens = ["", "", "Hi"]
    px.fake.plan.token_delay = 0.15
    await fetch(px.url, "/api/chat", CHAT)
    s = await px.session()
    assert s.ttft_ms is not None and s.ttft_ms >= 290
    # One chunk carried content: no gap between content chunks to measure.
    assert s.mean_chunk_gap_ms is None and s.chunk_gap_p50_ms is None


async def test_ttft_follows_the_backend_first_token_delay(px: Proxied) -> None:
    px.fake.plan.first_token_delay = 0.3
    await fetch(px.url, "/api/chat", CHAT)
    s = await px.session()
    assert s.ttft_ms is not None and 300 <= s.ttft_ms < 1300


async def test_not_streamed_when_stream_false(px: Proxied) -> None:
    status, headers, body = await fetch(px.url, "/api/chat", {**CHAT, "stream": False})
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["message"]["content"] == "Hello, world!"
    s = await px.session()
    assert s.streamed is False and s.outcome is Outcome.COMPLETED
    assert s.completion_tokens == fixture("generate-final.json")["eval_count"]
    assert s.ttft_ms is None


@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "model is required"), (404, NOT_FOUND), (499, "canceled"), (503, BUSY)],
)
async def test_error_status_body_and_headers_pass_through(
    px: Proxied, status: int, message: str
) -> None:
    px.fake.plan.status, px.fake.plan.error = status, message
    px.fake.plan.headers = {"X-Backend": "yes"}
    direct = await fetch(px.fake.url, "/api/chat", CHAT)
    proxied = await fetch(px.url, "/api/chat", CHAT)
    assert proxied[0] == status and proxied[2] == direct[2]
    assert proxied[1]["X-Backend"] == "yes"
    assert proxied[1]["Content-Type"].startswith("application/json")
    s = await px.session()  # only the proxied request is metered
    assert (s.outcome, s.error, s.status_code) == (Outcome.ERROR, message, status)
    assert px.sessions.empty()


async def test_midstream_error_line(px: Proxied) -> None:
    px.fake.plan.midstream_error_after = 2
    direct = await fetch(px.fake.url, "/api/chat", CHAT)
    proxied = await fetch(px.url, "/api/chat", CHAT)
    assert proxied[0] == 200 and proxied[2] == direct[2]
    assert proxied[2].endswith(b'{"error":"an error was encountered while running the model"}\n')
    s = await px.session()
    assert s.outcome is Outcome.ERROR
    assert s.error == "an error was encountered while running the model"
    assert (s.completion_tokens, s.token_source) == (2, "stream")  # what the client received


async def test_garbage_passes_through_untouched(px: Proxied) -> None:
    px.fake.plan.garbage = True
    direct = await fetch(px.fake.url, "/api/generate", {"model": "m", "prompt": "p"})
    proxied = await fetch(px.url, "/api/generate", {"model": "m", "prompt": "p"})
    assert b"this is not json {" in proxied[2] and proxied[2] == direct[2]
    s = await px.session()
    assert s.outcome is Outcome.COMPLETED  # the final chunk still came
    assert s.completion_tokens == fixture("generate-final.json")["eval_count"]


async def test_load_and_unload_replies_are_control_calls(px: Proxied) -> None:
    for reason in ("load", "unload"):
        px.fake.plan.done_reason = reason
        await fetch(px.url, "/api/generate", {"model": "m", "keep_alive": 0})
        s = await px.session()
        assert (s.kind, s.done_reason, s.ttft_ms, s.tokens_per_second) == (
            reason,
            reason,
            None,
            None,
        )


async def test_embed_is_an_embedding(px: Proxied) -> None:
    await fetch(px.url, "/api/embed", {"model": "all-minilm", "input": "x"})
    s = await px.session()
    assert s.kind == "embedding" and s.streamed is False
    assert s.prompt_tokens == fixture("generate-final.json")["prompt_eval_count"]


async def test_headers_both_ways_and_host_rewritten(px: Proxied) -> None:
    px.fake.plan.headers = {"X-Backend": "b1"}
    status, headers, _ = await fetch(px.url, "/api/chat", CHAT, **{"X-Client": "c1"})
    assert status == 200 and headers["X-Backend"] == "b1"
    got = px.fake.received[-1].headers
    assert got["X-Client"] == "c1"
    assert got["Host"] == f"127.0.0.1:{px.fake.port}"
    assert "Accept-Encoding" in got  # the client's own, not one added by the proxy


async def test_other_paths_and_methods_pass_through(px: Proxied) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(px.url + "/api/version") as r:
            assert r.status == 200 and await r.json() == {"version": "0.12.0"}
        async with client.delete(px.url + "/api/delete", json={"model": "x"}) as r:
            assert r.status == 404
        async with client.get(px.url + "/api/chat?x=1") as r:
            assert r.status == 404
    assert [(x.method, x.path) for x in px.fake.received] == [
        ("GET", "/api/version"),
        ("DELETE", "/api/delete"),
        ("GET", "/api/chat?x=1"),
    ]
    assert px.sessions.empty()  # none of these is a generation


async def test_store_prompts_off_and_on(px: Proxied, px_prompts: Proxied) -> None:
    await fetch(px.url, "/api/chat", CHAT)
    off = await px.session()
    assert off.prompt_text is None and off.response_text is None
    await fetch(px_prompts.url, "/api/chat", CHAT)
    on = await px_prompts.session()
    assert on.prompt_text is not None and "secret prompt" in on.prompt_text
    assert on.response_text == "Hello, world!"


async def test_fixture_final_chunk_shape(fake: FakeOllama) -> None:
    chat = fixture("chat-final.json")
    assert chat["done"] is True and chat["eval_count"] == 15
