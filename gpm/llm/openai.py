"""The OpenAI-compatible (/v1/chat/completions, /v1/completions, /v1/embeddings) and
Anthropic-compatible (/v1/messages) wire formats, as Ollama, llama.cpp, vLLM and others serve them.

Token counts come from ``usage`` (sent in a stream only with ``stream_options.include_usage``,
and not by every server even then) or Anthropic's ``message_start``/``message_delta`` usage.
llama.cpp's server adds ``timings`` (prompt_n, prompt_ms, predicted_n, predicted_ms, cache_n):
the server's own prefill and decode clocks, read like Ollama's durations. Without them the proxy
times the stream itself.
"""

from __future__ import annotations

import re
from typing import Any

from gpm.llm.wire import (
    END,
    IGNORED,
    ROUTINE,
    Chunk,
    count,
    number,
    rate,
    read_object,
    read_request_common,
)
from gpm.model import LlmSession

# Stream events that only carry a token: recognised without parsing once TTFT is known.
_ROUTINE_MARKS = (b'"finish_reason":null', b'"finish_reason": null', b'"content_block_delta"')
_MATTERS = (b'"usage"', b'"error"')
# A delta that may carry nothing generated: parsed even on the cheap path, so it is not counted.
_MAYBE_EMPTY = re.compile(rb'"(?:content|text|partial_json)": ?(?:""|null)|"delta": ?\{\}')


class OpenAiDialect:
    """/v1 endpoints: not streamed unless ``"stream": true``; streams are Server-Sent Events."""

    backend = "openai"

    def read_request(self, body: object, session: LlmSession, store_prompts: bool) -> None:
        data = read_request_common(body, session, store_prompts)
        session.streamed = data.get("stream") is True
        if session.endpoint == "/v1/embeddings":
            session.kind = "embedding"

    def line(self, line: bytes, session: LlmSession, parse_all: bool) -> Chunk:
        if not line.startswith(b"data:"):
            return IGNORED  # "event:", ":" comments, "id:"
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return END
        if (
            not parse_all
            and any(mark in payload for mark in _ROUTINE_MARKS)
            and not any(mark in payload for mark in _MATTERS)
            and _MAYBE_EMPTY.search(payload) is None
        ):
            return ROUTINE
        obj, failed = read_object(payload, session)
        if failed:
            return END
        if obj is None:
            return IGNORED
        if "choices" in obj:
            return self._chat_chunk(obj, session)
        return self._anthropic_event(obj, session)

    def body(self, data: bytes, session: LlmSession) -> str | None:
        obj, _ = read_object(data, session)
        if obj is None:
            return None
        _usage(obj.get("usage"), session)
        _timings(obj.get("timings"), session)
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            _finish(choice.get("finish_reason"), session)
            msg = choice.get("message")
            text = msg.get("content") if isinstance(msg, dict) else choice.get("text")
            return text if isinstance(text, str) else None
        _finish(obj.get("stop_reason"), session)
        blocks = obj.get("content")
        if isinstance(blocks, list):
            return "".join(
                b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)
            )
        return None

    @staticmethod
    def _chat_chunk(obj: dict[str, Any], session: LlmSession) -> Chunk:
        _usage(obj.get("usage"), session)
        _timings(obj.get("timings"), session)
        content: str | None = None
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            _finish(choice.get("finish_reason"), session)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                text = delta.get("content")
                if isinstance(text, str) and text:
                    content = (content or "") + text
                elif any(delta.get(k) for k in ("reasoning", "reasoning_content", "tool_calls")):
                    content = content or ""
            text = choice.get("text")  # /v1/completions
            if isinstance(text, str) and text:
                content = (content or "") + text
        return Chunk(content, False)

    @staticmethod
    def _anthropic_event(obj: dict[str, Any], session: LlmSession) -> Chunk:
        kind = obj.get("type")
        if kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                _usage(message.get("usage"), session)
            return IGNORED
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return IGNORED
            text = delta.get("text")
            if isinstance(text, str) and text:
                return Chunk(text, False)
            if delta.get("thinking") or delta.get("partial_json"):
                return ROUTINE
            return IGNORED
        if kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict):
                _finish(delta.get("stop_reason"), session)
            _usage(obj.get("usage"), session)
            return IGNORED
        if kind == "message_stop":
            return END
        return IGNORED


def _finish(reason: object, session: LlmSession) -> None:
    if isinstance(reason, str) and reason:
        session.done_reason = reason


def _usage(usage: object, session: LlmSession) -> None:
    """Token counts from OpenAI (prompt/completion_tokens) or Anthropic (input/output_tokens)."""
    if not isinstance(usage, dict):
        return
    prompt = count(usage, "prompt_tokens")
    if prompt is None:
        prompt = count(usage, "input_tokens")
    completion = count(usage, "completion_tokens")
    if completion is None:
        completion = count(usage, "output_tokens")
    if prompt is not None:
        session.prompt_tokens = prompt
    if completion is not None:
        session.completion_tokens = completion
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        cached = count(details, "cached_tokens")
        if cached is not None:
            session.prompt_cached_tokens = cached


def _timings(timings: object, session: LlmSession) -> None:
    """llama.cpp's ``timings``: the server's prefill and decode clocks and its token counts.

    Their counts equal ``usage``'s where both are sent; ``prompt_n`` counts only the prompt
    tokens processed, so the prompt is ``prompt_n + cache_n``. A server that sends ``timings``
    on every chunk sends running totals: the last one read wins.
    """
    if not isinstance(timings, dict):
        return
    prompt_n = count(timings, "prompt_n")
    predicted_n = count(timings, "predicted_n")
    cache_n = count(timings, "cache_n")
    prompt_ms = number(timings, "prompt_ms")
    predicted_ms = number(timings, "predicted_ms")
    if cache_n is not None:
        session.prompt_cached_tokens = cache_n
    if prompt_n is not None:
        session.prompt_tokens = prompt_n + (cache_n or 0)
    if predicted_n is not None:
        session.completion_tokens = predicted_n
    session.prompt_eval_duration_ms = prompt_ms
    session.eval_duration_ms = predicted_ms
    session.prefill_tokens_per_second = rate(
        prompt_n, None if prompt_ms is None else prompt_ms / 1000.0
    )
    session.tokens_per_second = rate(
        predicted_n, None if predicted_ms is None else predicted_ms / 1000.0
    )
