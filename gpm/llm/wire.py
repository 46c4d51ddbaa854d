"""What every LLM wire dialect shares: the meaning of one response line, and reading replies.

A dialect (Ollama's native API, the OpenAI/Anthropic-compatible /v1 API) learns the model and
mode from a request body and tells the proxy, line by line, what the response meant. It is called
on the proxy's hot path, so a routine token line is recognised by a substring test and only parsed
when it can matter (the first content, the final chunk, an error, or when text is being kept).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Protocol

from gpm.model import LlmSession, Outcome


class Chunk(NamedTuple):
    """What one response line meant.

    ``content`` is None for a line that delivered nothing generated (a role-only delta, an empty
    chunk, usage, a terminal event), and a string when it carried generated content: the text, or
    "" for reasoning/thinking and tool-call arguments (or when the text was not read). Only lines
    with content count as tokens when the backend does not report its own count. ``done`` marks
    the backend's terminal event: nothing after it is read.
    """

    content: str | None
    done: bool


ROUTINE = Chunk("", False)  # a token chunk recognised without parsing it
IGNORED = Chunk(None, False)
END = Chunk(None, True)


class Dialect(Protocol):
    """How one family of endpoints names its model and reports its work."""

    backend: str

    def read_request(self, body: object, session: LlmSession, store_prompts: bool) -> None: ...

    def line(self, line: bytes, session: LlmSession, parse_all: bool) -> Chunk: ...

    def body(self, data: bytes, session: LlmSession) -> str | None: ...


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


def number(obj: dict[str, Any], key: str) -> float | None:
    """A numeric field (int or float), or None."""
    value = obj.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
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
