"""Which chunks count as tokens and which event ends a stream, per dialect, on captured replies.

Each capture in tests/fixtures/llm is a real server's stream (sources in tests/fixtures/README.md).
The meter is fed it as the proxy feeds it, then finished as the proxy finishes it: with the
client still there, or gone (``cancelled``) after the whole reply or part of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpm.llm.proxy import DIALECTS, Meter
from gpm.model import LlmSession, Outcome

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "llm"
SSE = "text/event-stream"


def sse(name: str) -> bytes:
    """A capture as the bytes of a text/event-stream body (.jsonl: one data payload a line)."""
    text = (FIXTURES / name).read_text()
    if name.endswith(".sse"):
        return text.encode() + (b"" if text.endswith("\n") else b"\n")
    events = [f"data: {line}\n\n" for line in text.splitlines() if line.strip()]
    return "".join(events).encode()


def without_usage(body: bytes) -> bytes:
    """The stream as a server that reports no usage (nor llama.cpp timings) would send it."""

    def strip(line: bytes) -> bytes:
        if not line.startswith(b"data: {"):
            return line
        obj = json.loads(line[6:])
        obj.pop("usage", None)
        obj.pop("timings", None)
        if isinstance(obj.get("message"), dict):
            obj["message"].pop("usage", None)
        return b"data: " + json.dumps(obj).encode() + b"\n"

    return b"".join(strip(line) for line in body.splitlines(keepends=True))


def metered(endpoint: str, body: bytes, *, cancelled: bool = False) -> LlmSession:
    session = LlmSession(id="x", model=None, endpoint=endpoint, started_at=0.0)
    meter = Meter(DIALECTS[endpoint], session, 0.0, store_prompts=False)
    meter.response(200, SSE, 0.01)
    for i, line in enumerate(body.splitlines(keepends=True)):
        meter.feed(line, 0.02 + i * 0.01)
    if not cancelled:
        meter.backend_ended()
    return meter.finish(1.0, cancelled=cancelled)


# (capture, endpoint, chunks that carried generated content, the server's count, finish reason)
COMPLETE = [
    ("openai-gpt41nano-stream.trimmed.jsonl", "/v1/chat/completions", 3, 300, "stop"),
    ("deepseek-reasoner-toolcall.chunks.jsonl", "/v1/chat/completions", 50, 83, "tool_calls"),
    ("qwen3max-toolcall-usage.chunks.jsonl", "/v1/chat/completions", 4, 22, "tool_calls"),
    ("llamacpp-chat-stream-tail.sse", "/v1/chat/completions", 1, 22, "stop"),
    ("anthropic-messages-stream-tooluse.sse", "/v1/messages", 6, 65, "tool_use"),
]


@pytest.mark.parametrize(("name", "endpoint", "content", "reported", "reason"), COMPLETE)
def test_complete_stream_takes_the_servers_count(
    name: str, endpoint: str, content: int, reported: int, reason: str
) -> None:
    s = metered(endpoint, sse(name))
    assert (s.outcome, s.done_reason) == (Outcome.COMPLETED, reason)
    assert (s.completion_tokens, s.token_source) == (reported, "backend")


@pytest.mark.parametrize(("name", "endpoint", "content", "reported", "reason"), COMPLETE)
def test_without_usage_one_token_per_content_chunk(
    name: str, endpoint: str, content: int, reported: int, reason: str
) -> None:
    # The same stream from a server that sends no usage: role-only, empty, finish and usage
    # chunks never count; text, reasoning and tool-call arguments do.
    s = metered(endpoint, without_usage(sse(name)))
    assert s.outcome is Outcome.COMPLETED
    assert (s.completion_tokens, s.token_source, s.prompt_tokens) == (content, "stream", None)
    # Counted tokens/s spans the first to the last content chunk (10 ms apart per line here).
    if content > 1:
        assert s.tokens_per_second == pytest.approx(1000.0 / s.mean_chunk_gap_ms)  # type: ignore[operator]


@pytest.mark.parametrize(("name", "endpoint", "content", "reported", "reason"), COMPLETE)
def test_client_leaving_after_the_terminal_event_is_not_a_cancel(
    name: str, endpoint: str, content: int, reported: int, reason: str
) -> None:
    s = metered(endpoint, sse(name), cancelled=True)
    assert (s.outcome, s.completion_tokens) == (Outcome.COMPLETED, reported)


def test_client_leaving_before_the_terminal_event_is_a_cancel_with_what_it_got() -> None:
    # The first six events of a vLLM stream: a role-only delta, then five tokens.
    s = metered("/v1/chat/completions", sse("vllm-chat-stream-head.sse"), cancelled=True)
    assert s.outcome is Outcome.CANCELLED
    assert (s.completion_tokens, s.token_source) == (5, "stream")


def test_stream_ending_without_its_terminal_event_is_an_error() -> None:
    s = metered("/v1/chat/completions", sse("vllm-chat-stream-head.sse"))
    assert (s.outcome, s.error) == (Outcome.ERROR, "the stream ended before its final chunk")


def test_cancel_mid_anthropic_stream_counts_what_was_sent() -> None:
    events = sse("anthropic-messages-stream-tooluse.sse").split(b"\n\n")
    head = b"\n\n".join(events[:5]) + b"\n\n"  # message_start, block start, ping, two texts
    s = metered("/v1/messages", head, cancelled=True)
    assert (s.outcome, s.completion_tokens, s.token_source) == (Outcome.CANCELLED, 2, "stream")
    assert s.prompt_tokens == 377  # message_start reported it


def test_llamacpp_timings_give_the_servers_clocks() -> None:
    s = metered("/v1/chat/completions", sse("llamacpp-chat-stream-tail.sse"))
    assert (s.prompt_tokens, s.completion_tokens) == (28, 22)
    assert (s.prompt_eval_duration_ms, s.eval_duration_ms) == (447.926, 1317.711)
    assert s.tokens_per_second == pytest.approx(22 / 1.317711)
    assert s.prefill_tokens_per_second == pytest.approx(28 / 0.447926)


def test_llamacpp_timings_on_every_chunk_are_running_totals() -> None:
    body = sse("llamacpp-chat-stream-timings-per-chunk.sse")
    s = metered("/v1/chat/completions", body, cancelled=True)
    # Cut off mid-stream: the two reasoning chunks count, the server's running total does not.
    assert (s.outcome, s.completion_tokens, s.token_source) == (Outcome.CANCELLED, 2, "stream")
    assert (s.prompt_cached_tokens, s.prompt_tokens) == (7, 17)  # prompt_n + cache_n


def test_llamacpp_non_streamed_timings() -> None:
    session = LlmSession(id="x", model=None, endpoint="/v1/chat/completions", started_at=0.0)
    meter = Meter(DIALECTS["/v1/chat/completions"], session, 0.0, store_prompts=False)
    meter.response(200, "application/json", 0.01)
    meter.feed((FIXTURES / "llamacpp-chat-nonstream-reasoning.json").read_bytes(), 0.5)
    meter.backend_ended()
    s = meter.finish(0.6, cancelled=True)  # the reply was whole: not a cancel
    assert (s.outcome, s.prompt_tokens, s.completion_tokens) == (Outcome.COMPLETED, 63, 381)
    assert (s.token_source, s.prompt_cached_tokens) == ("backend", 0)
    assert s.tokens_per_second == pytest.approx(381 / 10.707933)


def test_ollama_tool_call_chunk_counts_and_the_final_chunk_does_not() -> None:
    tool = json.loads((Path(FIXTURES).parent / "ollama" / "chat-toolcall-chunk.json").read_text())
    final = json.loads((Path(FIXTURES).parent / "ollama" / "chat-final.json").read_text())
    empty = {**tool, "message": {"role": "assistant", "content": ""}}
    lines = [json.dumps(o).encode() + b"\n" for o in (empty, tool, tool, final)]
    session = LlmSession(id="x", model=None, endpoint="/api/chat", started_at=0.0)
    meter = Meter(DIALECTS["/api/chat"], session, 0.0, store_prompts=False)
    meter.response(200, "application/x-ndjson", 0.01)
    for i, line in enumerate(lines[:3]):
        meter.feed(line, 0.1 * (i + 1))
    s = meter.finish(0.5, cancelled=True)
    assert (s.outcome, s.completion_tokens, s.token_source) == (Outcome.CANCELLED, 2, "stream")
