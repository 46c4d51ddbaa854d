"""``gpm run --demo``: a simulated Ollama and a client that talks to it through the real proxy.

The sessions a demo records are real proxy measurements of simulated traffic: ``DemoBackend``
streams plausible NDJSON/SSE at a model-like pace, and ``DemoTraffic`` sends requests to the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from gpm.net import bound_port


@dataclass(frozen=True, slots=True)
class DemoModel:
    name: str
    size_bytes: int
    seconds_per_token: float
    prefill_tokens_per_second: float
    load_seconds: float
    context_length: int


DEMO_MODELS = (
    DemoModel("llama3.2:3b", 3_338_801_664, 0.022, 900.0, 0.6, 4096),
    DemoModel("qwen2.5:0.5b", 994_156_032, 0.008, 3000.0, 0.25, 4096),
)
_TEXT = (
    "The GPU keeps the model weights in memory while it decodes one token at a time, and each "
    "step reads every weight once, so memory bandwidth sets the pace more than raw compute does."
)
_WORDS = _TEXT.split(" ")
KEEP_ALIVE_SECS = 300.0
WARM_LOAD_SECS = 0.004


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class DemoBackend:
    """An in-process fake Ollama on 127.0.0.1; ``time_scale`` < 1 makes it faster (tests)."""

    def __init__(self, *, time_scale: float = 1.0, seed: int | None = None) -> None:
        self.time_scale = time_scale
        self.port = 0
        self._rng = random.Random(seed)
        self._resident: dict[str, float] = {}  # model name -> expiry (epoch seconds)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/generate", self._native)
        app.router.add_post("/api/chat", self._native)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_get("/api/version", self._version)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = bound_port(site)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _model(self, name: object) -> DemoModel | None:
        return next((m for m in DEMO_MODELS if m.name == name), None)

    async def _read(self, request: web.Request) -> tuple[dict[str, Any], DemoModel] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "invalid JSON body"}, status=400)
        if not isinstance(body, dict) or not body.get("model"):
            return web.json_response({"error": "model is required"}, status=400)
        model = self._model(body["model"])
        if model is None:
            return web.json_response({"error": f"model '{body['model']}' not found"}, status=404)
        return body, model

    async def _warm_up(self, model: DemoModel, prompt_tokens: int) -> tuple[float, float]:
        """Simulated load and prefill; returns their durations in seconds."""
        now = time.time()
        load = WARM_LOAD_SECS  # Ollama reports a few ms of "load" for a resident model too
        if self._resident.get(model.name, 0.0) < now:
            load = model.load_seconds * self.time_scale
        prefill = prompt_tokens / model.prefill_tokens_per_second * self.time_scale
        await asyncio.sleep(load + prefill)
        self._resident[model.name] = time.time() + KEEP_ALIVE_SECS
        return load, prefill

    def _tokens(self) -> list[str]:
        n = self._rng.randint(12, len(_WORDS))
        start = self._rng.randint(0, len(_WORDS) - n)
        return [w + " " for w in _WORDS[start : start + n]]

    async def _native(self, request: web.Request) -> web.StreamResponse:
        parsed = await self._read(request)
        if isinstance(parsed, web.Response):
            return parsed
        body, model = parsed
        chat = request.path == "/api/chat"
        prompt_tokens = 20 + self._rng.randint(0, 200)
        begin = time.perf_counter()
        load, prefill = await self._warm_up(model, prompt_tokens)
        tokens = self._tokens()

        def chunk(text: str, done: bool) -> dict[str, Any]:
            obj: dict[str, Any] = {"model": model.name, "created_at": _iso(time.time())}
            if chat:
                obj["message"] = {"role": "assistant", "content": text}
            else:
                obj["response"] = text
            obj["done"] = done
            return obj

        eval_start = time.perf_counter()
        streamed = body.get("stream", True) is not False
        response: web.StreamResponse | None = None
        if streamed:
            response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
            await response.prepare(request)
        for token in tokens:
            await asyncio.sleep(model.seconds_per_token * self.time_scale)
            if response is not None:
                await response.write(_line(chunk(token, False)))
        final = chunk("" if streamed else "".join(tokens), True)
        final.update(
            done_reason="stop",
            total_duration=int((time.perf_counter() - begin) * 1e9),
            load_duration=int(load * 1e9),
            prompt_eval_count=prompt_tokens,
            prompt_eval_duration=int(prefill * 1e9),
            eval_count=len(tokens),
            eval_duration=int((time.perf_counter() - eval_start) * 1e9),
        )
        final = {k: v for k, v in final.items() if v is not None}
        if response is None:
            return web.json_response(final)
        await response.write(_line(final))
        await response.write_eof()
        return response

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        parsed = await self._read(request)
        if isinstance(parsed, web.Response):
            return parsed
        body, model = parsed
        prompt_tokens = 20 + self._rng.randint(0, 200)
        await self._warm_up(model, prompt_tokens)
        tokens = self._tokens()
        ident = f"chatcmpl-{self._rng.randint(1, 999)}"
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(tokens),
            "total_tokens": prompt_tokens + len(tokens),
        }
        base = {"id": ident, "created": int(time.time()), "model": model.name}
        if body.get("stream") is not True:
            for _ in tokens:
                await asyncio.sleep(model.seconds_per_token * self.time_scale)
            message = {"role": "assistant", "content": "".join(tokens)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            obj = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
            await response.write(b"data: " + json.dumps(obj, separators=(",", ":")).encode())
            await response.write(b"\n\n")

        for token in tokens:
            await asyncio.sleep(model.seconds_per_token * self.time_scale)
            delta = {"role": "assistant", "content": token}
            await send([{"index": 0, "delta": delta, "finish_reason": None}])
        await send([{"index": 0, "delta": {"role": "assistant", "content": ""},
                     "finish_reason": "stop"}])  # fmt: skip
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            await send([], usage=usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _ps(self, request: web.Request) -> web.Response:
        now = time.time()
        models = [
            {
                "name": m.name, "model": m.name, "size": m.size_bytes, "digest": "0" * 64,
                "details": {"format": "gguf"}, "expires_at": _iso(self._resident[m.name]),
                "size_vram": m.size_bytes, "context_length": m.context_length,
            }
            for m in DEMO_MODELS
            if self._resident.get(m.name, 0.0) > now
        ]  # fmt: skip
        return web.json_response({"models": models})

    async def _tags(self, request: web.Request) -> web.Response:
        models = [
            {"name": m.name, "model": m.name, "size": m.size_bytes, "digest": "0" * 64}
            for m in DEMO_MODELS
        ]
        return web.json_response({"models": models})

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.0.0-demo"})


_REQUESTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("/api/chat", "llama3.2:3b",
     {"messages": [{"role": "user", "content": "Why is the sky blue?"}]}),
    ("/api/generate", "qwen2.5:0.5b", {"prompt": "Name three GPU metrics."}),
    ("/api/chat", "qwen2.5:0.5b",
     {"messages": [{"role": "user", "content": "Hello"}], "stream": False}),
    ("/v1/chat/completions", "llama3.2:3b",
     {"messages": [{"role": "user", "content": "Summarise CUDA."}], "stream": True,
      "stream_options": {"include_usage": True}}),
)  # fmt: skip


class DemoTraffic:
    """Sends one request through the proxy every ``interval`` seconds (with some jitter)."""

    def __init__(
        self,
        proxy_url: str,
        interval: float,
        *,
        seed: int | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.proxy_url = proxy_url.rstrip("/")
        self.interval = interval
        self._rng = random.Random(seed)
        self._log = logger or logging.getLogger(__name__)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gpm-demo-traffic")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as client:
            while True:
                await self.send_one(client)
                await asyncio.sleep(self.interval * self._rng.uniform(0.5, 1.5))

    async def send_one(self, client: aiohttp.ClientSession) -> int | None:
        """One request, read to the end; returns the status, or None when it failed."""
        path, model, extra = self._rng.choice(_REQUESTS)
        try:
            async with client.post(self.proxy_url + path, json={"model": model, **extra}) as r:
                await r.read()
                status = r.status
        except aiohttp.ClientError as exc:
            if not self._failing:
                self._log.warning("demo traffic cannot reach %s: %s", self.proxy_url, exc)
            self._failing = True
            return None
        self._failing = False
        return status
