"""Line parsing on its own: the cheap path skips routine chunks, the rest is read exactly."""

from __future__ import annotations

import json
from collections.abc import Mapping

from gpm.llm.ollama import OllamaDialect
from gpm.llm.openai import OpenAiDialect
from gpm.llm.wire import ROUTINE
from gpm.model import LlmSession, Outcome


def session(endpoint: str) -> LlmSession:
    return LlmSession(id="x", model=None, endpoint=endpoint, started_at=0.0)


def sse(obj: Mapping[str, object]) -> bytes:
    return b"data: " + json.dumps(obj).encode()


def test_routine_native_chunk_is_not_parsed_once_ttft_is_known() -> None:
    s = session("/api/chat")
    line = b'{"model":"m","message":{"role":"assistant","content":"x"},"done":false}'
    assert OllamaDialect().line(line, s, parse_all=False) is ROUTINE
    assert OllamaDialect().line(line, s, parse_all=True).content == "x"


def test_native_thinking_and_tool_calls_count_as_content() -> None:
    d, s = OllamaDialect(), session("/api/chat")
    thinking = b'{"message":{"role":"assistant","content":"","thinking":"hm"},"done":false}'
    tool = b'{"message":{"role":"assistant","content":"","tool_calls":[{"f":1}]},"done":false}'
    empty = b'{"message":{"role":"assistant","content":""},"done":false}'
    assert d.line(thinking, s, True).content == ""
    assert d.line(tool, s, True).content == ""
    assert d.line(empty, s, True).content is None


def test_anthropic_messages_stream() -> None:
    d, s = OpenAiDialect(), session("/v1/messages")
    d.read_request({"model": "m", "stream": True, "messages": []}, s, False)
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 9}}}
    delta = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}
    end = {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
           "usage": {"output_tokens": 5}}  # fmt: skip
    assert d.line(sse(start), s, True).content is None
    assert d.line(sse(delta), s, True).content == "Hi"
    assert d.line(sse(delta), s, False) is ROUTINE
    d.line(sse(end), s, False)
    assert d.line(sse({"type": "message_stop"}), s, False).done
    assert (s.prompt_tokens, s.completion_tokens, s.done_reason) == (9, 5, "end_turn")
    assert s.streamed and s.model == "m"


def test_v1_stream_error_and_completions_text() -> None:
    d, s = OpenAiDialect(), session("/v1/completions")
    chunk = {"choices": [{"index": 0, "text": "abc", "finish_reason": None}]}
    assert d.line(sse(chunk), s, True).content == "abc"
    err = {"error": {"message": "boom", "type": "api_error", "param": None, "code": None}}
    assert d.line(sse(err), s, False).done
    assert (s.outcome, s.error) == (Outcome.ERROR, "boom")


def test_v1_absent_stream_means_not_streamed() -> None:
    s = session("/v1/chat/completions")
    OpenAiDialect().read_request({"model": "m"}, s, False)
    assert s.streamed is False
    n = session("/api/generate")
    OllamaDialect().read_request({"model": "m"}, n, False)
    assert n.streamed is True
