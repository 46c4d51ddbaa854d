"""Ollama's native wire format (/api/generate, /api/chat, /api/embed): what the proxy reads.

NDJSON lines; the final one (``"done": true``) carries the server's own token counts and
durations in nanoseconds.
"""

from __future__ import annotations

from typing import Any

from gpm.llm.wire import (
    END,
    IGNORED,
    ROUTINE,
    Chunk,
    count,
    rate,
    read_object,
    read_request_common,
)
from gpm.model import LlmSession

_NOT_DONE = (b'"done":false', b'"done": false')
# A not-done line with an empty string in it may carry no content: it is parsed even on the cheap
# path, so that it is not counted (one substring scan; a regex search would cost more).
_EMPTY = b'""'


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


class OllamaDialect:
    """The native API: NDJSON streams, streaming unless ``"stream": false``."""

    backend = "ollama"

    def read_request(self, body: object, session: LlmSession, store_prompts: bool) -> None:
        data = read_request_common(body, session, store_prompts)
        if session.endpoint.startswith("/api/embed"):
            session.kind = "embedding"
            session.streamed = False
        else:
            session.streamed = data.get("stream", True) is not False

    def line(self, line: bytes, session: LlmSession, parse_all: bool) -> Chunk:
        if not parse_all and (_NOT_DONE[0] in line or _NOT_DONE[1] in line) and _EMPTY not in line:
            return ROUTINE
        obj, failed = read_object(line, session)
        if failed:
            return END
        if obj is None:
            return IGNORED
        done = obj.get("done") is True
        if done:
            self._final(obj, session)
        return Chunk(_content(obj), done)

    def body(self, data: bytes, session: LlmSession) -> str | None:
        obj, _ = read_object(data, session)
        if obj is None:
            return None
        self._final(obj, session)
        return _content(obj)

    @staticmethod
    def _final(obj: dict[str, Any], s: LlmSession) -> None:
        reason = obj.get("done_reason")
        s.done_reason = reason if isinstance(reason, str) else None
        if s.done_reason in ("load", "unload"):
            s.kind = s.done_reason
        s.prompt_tokens = count(obj, "prompt_eval_count")
        s.prompt_cached_tokens = count(obj, "prompt_eval_cached_count")
        s.completion_tokens = count(obj, "eval_count")
        prompt_ns = count(obj, "prompt_eval_duration")
        eval_ns = count(obj, "eval_duration")
        s.load_duration_ms = _ms(count(obj, "load_duration"))
        s.prompt_eval_duration_ms = _ms(prompt_ns)
        s.eval_duration_ms = _ms(eval_ns)
        s.tokens_per_second = rate(s.completion_tokens, None if eval_ns is None else eval_ns / 1e9)
        processed = s.prompt_tokens
        if processed is not None and s.prompt_cached_tokens is not None:
            processed -= s.prompt_cached_tokens
        s.prefill_tokens_per_second = rate(
            processed, None if prompt_ns is None else prompt_ns / 1e9
        )


def _content(obj: dict[str, Any]) -> str | None:
    """The text a native chunk delivers; "" for thinking or tool calls; None for nothing."""
    response = obj.get("response")
    if isinstance(response, str) and response:
        return response
    if obj.get("thinking"):
        return ""
    message = obj.get("message")
    if isinstance(message, dict):
        content = message.get("content")
        if isinstance(content, str) and content:
            return content
        if message.get("thinking") or message.get("tool_calls"):
            return ""
    return None
