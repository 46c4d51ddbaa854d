"""A fake Ollama speaking the exact wire format of tests/fixtures/ollama/WIRE.md.

It stands for a real ``ollama serve`` (``/api/chat``, ``/api/generate``, ``/api/ps``,
``/api/version``, blob uploads) on a free loopback port, for what only Ollama does; the OpenAI
side of the proxy is tested against a real server (tests/fakes/llama_server.py). Tests get one
from the ``fake`` fixture in tests/llm/conftest.py (``FakeOllama().start()`` / ``stop()``
elsewhere), usually behind the real proxy as ``px.fake``.

Each test sets ``fake.plan`` to shape the next replies: tokens and their timing, errors before or
during a stream, lines split across TCP writes or batched into one, a hang, garbage. The fake
records what it received and sets ``disconnected`` when a client (the proxy) drops a reply.
Output is deterministic (fixed timestamps and durations) so direct and proxied bytes can be
compared.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from gpm.net import bound_port

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ollama"
CREATED_AT = "2026-11-27T10:00:00.000000Z"
NOT_FOUND = "model 'nope' not found"
BIG_BODY = 4 * 1024 * 1024
BUSY = "server busy, please try again.  maximum pending requests exceeded"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def line(obj: dict[str, Any]) -> bytes:
    """One NDJSON line the way Go's encoder writes it (compact, newline-terminated)."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


@dataclass
class Plan:
    tokens: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    status: int = 200  # an error status is answered before any stream
    error: str = ""  # the message of that error
    midstream_error_after: int | None = None  # an error line after this many tokens
    split_lines: bool = False  # each line in two TCP writes
    batch_lines: bool = False  # all token lines in one write
    hang_after: int | None = None  # stop sending (never finish) after this many tokens
    hang_before_headers: bool = False
    drop_after: int | None = None  # close the connection abruptly after this many tokens
    garbage: bool = False  # a non-JSON line in the middle of the stream
    done_reason: str = "stop"
    # Final-chunk fields; generate-final.json's values unless overridden.
    final: dict[str, Any] = field(
        default_factory=lambda: {
            k: v for k, v in fixture("generate-final.json").items()
            if k.endswith(("_duration", "_count"))
        }
    )  # fmt: skip
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeOllama:
    def __init__(self) -> None:
        self.plan = Plan()
        self.models: list[dict[str, Any]] = []
        self.received: list[Received] = []
        self.disconnected = asyncio.Event()
        self.blob_bytes = 0
        self.blob_sha256 = ""
        self.big_bodies: list[tuple[int, str]] = []  # (size, sha256) of bodies too big to keep
        self.big_body_tail = b""
        self.port = 0
        self._runner: web.ServerRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.port = bound_port(site)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._route(request)
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnected.set()
            raise

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path.startswith("/api/blobs/"):
            return await self._blob(request)
        body = await self._read_body(request)
        headers = dict(request.headers)
        self.received.append(Received(request.method, request.path_qs, headers, body))
        if request.method != "POST" and request.path not in ("/api/ps", "/api/version"):
            return web.json_response({"error": "404 page not found"}, status=404)
        if request.path == "/api/ps":
            return web.json_response({"models": self.models})
        if request.path == "/api/version":
            return web.json_response({"version": "0.12.0"})
        plan = self.plan
        if plan.hang_before_headers:
            await asyncio.Event().wait()
        if len(body) < BIG_BODY:
            req = json.loads(body) if body else {}
        else:  # enough of a big body for the reply: its mode, if it is written at the end
            req = {"stream": b'"stream":false' not in self.big_body_tail}
        if plan.status >= 400:
            v1 = request.path.startswith("/v1/")
            err: Any = {"message": plan.error, "type": "api_error", "param": None, "code": None}
            return web.json_response(
                {"error": err if v1 else plan.error}, status=plan.status, headers=plan.headers
            )
        if request.path in ("/api/generate", "/api/chat"):
            return await self._native(request, req, plan)
        if request.path == "/api/embed":
            final = {k: v for k, v in plan.final.items() if k in (
                "total_duration", "load_duration", "prompt_eval_count")}  # fmt: skip
            return web.json_response({"model": req.get("model"), "embeddings": [[0.1, 0.2]],
                                      **final})  # fmt: skip
        if request.path == "/v1/chat/completions":
            return await self._openai(request, req, plan)
        return web.json_response({"error": "404 page not found"}, status=404)

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        """The body; one of BIG_BODY bytes or more is hashed and counted as it streams in, and
        only its head and tail kept (so a test's 100 MB upload costs the fake no memory either).
        """
        head = bytearray()
        tail = b""
        digest = hashlib.sha256()
        size = 0
        async for data in request.content.iter_any():
            size += len(data)
            digest.update(data)
            if len(head) < BIG_BODY:
                head += data[: BIG_BODY - len(head)]
            tail = (tail + data)[-4096:]
        if size >= BIG_BODY:
            self.big_bodies.append((size, digest.hexdigest()))
            self.big_body_tail = tail
        return bytes(head)

    async def _blob(self, request: web.BaseRequest) -> web.Response:
        if request.method == "HEAD":  # Ollama: 200 when it has the blob, else 404
            known = request.path.endswith(":" + self.blob_sha256) and bool(self.blob_sha256)
            return web.Response(status=200 if known else 404)
        digest = hashlib.sha256()
        size = 0
        async for data in request.content.iter_any():
            digest.update(data)
            size += len(data)
        self.blob_bytes, self.blob_sha256 = size, digest.hexdigest()
        return web.Response(status=201)

    def native_chunks(self, path: str, req: dict[str, Any], plan: Plan) -> list[bytes]:
        """The lines this plan sends, final chunk included (for tests to compare with)."""
        chat = path == "/api/chat"

        def chunk(text: str, done: bool) -> dict[str, Any]:
            obj: dict[str, Any] = {"model": req.get("model"), "created_at": CREATED_AT}
            if chat:
                obj["message"] = {"role": "assistant", "content": text}
            else:
                obj["response"] = text
            obj["done"] = done
            return obj

        if plan.done_reason in ("load", "unload"):
            final = chunk("", True)
            final["done_reason"] = plan.done_reason
            return [line(final)]
        lines = [line(chunk(t, False)) for t in plan.tokens]
        final = chunk("", True)
        final["done_reason"] = plan.done_reason
        final.update(plan.final)
        return [*lines, line(final)]

    async def _native(
        self, request: web.BaseRequest, req: dict[str, Any], plan: Plan
    ) -> web.StreamResponse:
        lines = self.native_chunks(request.path, req, plan)
        if req.get("stream") is False:
            whole = json.loads(lines[-1])
            text = "".join(json.loads(x).get("response", "") for x in lines[:-1])
            if request.path == "/api/chat":
                whole["message"]["content"] = "".join(
                    json.loads(x)["message"]["content"] for x in lines[:-1])  # fmt: skip
            else:
                whole["response"] = text
            return web.json_response(whole, headers=plan.headers)
        response = web.StreamResponse(
            headers={"Content-Type": "application/x-ndjson", **plan.headers}
        )
        await response.prepare(request)
        await asyncio.sleep(plan.first_token_delay)
        tokens, final = lines[:-1], lines[-1]
        if plan.garbage:
            tokens.insert(len(tokens) // 2, b"this is not json {\n")
        if plan.batch_lines:
            await response.write(b"".join(tokens))
            tokens = []
        for i, data in enumerate(tokens):
            if plan.hang_after is not None and i == plan.hang_after:
                await asyncio.Event().wait()
            if plan.drop_after is not None and i == plan.drop_after and request.transport:
                request.transport.abort()
                return response
            if plan.midstream_error_after is not None and i == plan.midstream_error_after:
                await response.write((FIXTURES / "midstream-error.ndjson").read_bytes())
                await response.write_eof()
                return response
            if i:
                await asyncio.sleep(plan.token_delay)
            await self._write(response, data, plan.split_lines)
        await self._write(response, final, plan.split_lines)
        await response.write_eof()
        return response

    @staticmethod
    async def _write(response: web.StreamResponse, data: bytes, split: bool) -> None:
        if not split:
            await response.write(data)
            return
        half = len(data) // 2
        await response.write(data[:half])
        await asyncio.sleep(0.005)  # pacing: make the halves separate TCP segments
        await response.write(data[half:])

    async def _openai(
        self, request: web.BaseRequest, req: dict[str, Any], plan: Plan
    ) -> web.StreamResponse:
        prompt, completion = 12, len(plan.tokens)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}  # fmt: skip
        base = {"id": "chatcmpl-1", "created": 1795000000, "model": req.get("model"),
                "system_fingerprint": "fp_ollama"}  # fmt: skip
        if req.get("stream") is not True:
            message = {"role": "assistant", "content": "".join(plan.tokens)}
            return web.json_response({
                **base, "object": "chat.completion", "usage": usage,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            })  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(plan.first_token_delay)

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            obj = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
            data = b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
            await self._write(response, data, plan.split_lines)

        # Like Ollama, vLLM and llama.cpp: a role-only first delta, then one delta per token.
        await send([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
        for i, token in enumerate(plan.tokens):
            if plan.hang_after is not None and i == plan.hang_after:
                await asyncio.Event().wait()
            if i:
                await asyncio.sleep(plan.token_delay)
            await send([{"index": 0, "delta": {"content": token}, "finish_reason": None}])
        await send([{"index": 0, "delta": {"role": "assistant", "content": ""},
                     "finish_reason": "stop"}])  # fmt: skip
        options = req.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            await send([], usage=usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
