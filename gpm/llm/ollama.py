"""Ollama's native wire format (/api/generate, /api/chat, /api/embed): what the proxy reads.

Each dialect learns the model and streaming mode from the request body, and fills an LlmSession
from the response lines. It is called on the proxy's hot path, so a routine token line is
recognised by a substring test and only parsed when it can matter (the first content, the final
chunk, an error, or when the text is being kept).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from gpm.model import LlmSession, Outcome


class Chunk(NamedTuple):
    """What one response line meant: a data chunk, the text it delivered, the end of the reply.

    ``content`` is None for a chunk with nothing for the user, and a string (empty for thinking or
    a tool call) when it carries content.
    """

    counted: bool
    content: str | None
    done: bool


ROUTINE = Chunk(True, None, False)
IGNORED = Chunk(False, None, False)
END = Chunk(False, None, True)

_NOT_DONE = (b'"done":false', b'"done": false')


def error_message(obj: object) -> str | None:
    """The message of ``{"error": "..."}`` (native) or ``{"error": {"message": ...}}`` (/v1)."""
    if not isinstance(obj, dict):
        return None
    err = obj.get("error")
    if isinstance(err, str):
        return err
    if isinstance(err, dict):
        msg = err.get("message")
        return str(msg) if msg is not None else json.dumps(err)
    return None


def count(obj: dict[str, Any], key: str) -> int | None:
    """An integer field, or None when absent or not a number (absent means unknown, not 0)."""
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def rate(tokens: int | None, seconds: float | None) -> float | None:
    """Tokens per second, or None when either part is unknown or the time is not positive."""
    if tokens is None or seconds is None or seconds <= 0:
        return None
    return tokens / seconds


def parse_json(data: bytes) -> Any:
    """JSON, or None for anything that is not (garbage from a backend is passed on, not fatal)."""
    try:
        return json.loads(data)
    except ValueError:
        return None


def mark_error(session: LlmSession, message: str) -> None:
    session.outcome = Outcome.ERROR
    session.error = message


def read_object(data: bytes, session: LlmSession) -> tuple[dict[str, Any] | None, bool]:
    """The JSON object in ``data`` (None if it is not one) and whether it was an error reply,
    which is then recorded on the session."""
    obj = parse_json(data)
    if not isinstance(obj, dict):
        return None, False
    message = error_message(obj)
    if message is not None:
        mark_error(session, message)
        return None, True
    return obj, False


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


def _prompt_text(body: dict[str, Any]) -> str | None:
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return "\n".join(str(v) for v in value)
    messages = body.get("messages")
    if isinstance(messages, list):
        lines = []
        for msg in messages:
            if isinstance(msg, dict):
                content = msg.get("content")
                text = content if isinstance(content, str) else json.dumps(content)
                lines.append(f"{msg.get('role', '?')}: {text}")
        return "\n".join(lines)
    return None


def read_request_common(body: object, session: LlmSession, store_prompts: bool) -> dict[str, Any]:
    """Model and prompt from any JSON request body; returns the body as a dict ({} if not one)."""
    if not isinstance(body, dict):
        return {}
    model = body.get("model")
    session.model = model if isinstance(model, str) else None
    if store_prompts:
        session.prompt_text = _prompt_text(body)
    return body


class OllamaDialect:
    """The native API: NDJSON streams, streaming unless ``"stream": false``."""

    backend = "ollama"
    timed_by_proxy = False

    def read_request(self, body: object, session: LlmSession, store_prompts: bool) -> None:
        data = read_request_common(body, session, store_prompts)
        if session.endpoint.startswith("/api/embed"):
            session.kind = "embedding"
            session.streamed = False
        else:
            session.streamed = data.get("stream", True) is not False

    def line(self, line: bytes, session: LlmSession, parse_all: bool) -> Chunk:
        if not parse_all and (_NOT_DONE[0] in line or _NOT_DONE[1] in line):
            return ROUTINE
        obj, failed = read_object(line, session)
        if failed:
            return END
        if obj is None:
            return IGNORED
        done = obj.get("done") is True
        if done:
            self._final(obj, session)
        return Chunk(True, _content(obj), done)

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
