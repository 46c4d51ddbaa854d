"""A transparent HTTP proxy in front of Ollama that measures every generation passing through.

Every request, whatever its path and method, goes to the backend and back unchanged: status,
headers (less hop-by-hop ones), body bytes, streaming chunk by chunk as they arrive. Requests to
the generation endpoints are also metered into an :class:`~gpm.model.LlmSession`. Measuring never
gets in the way: a failure to parse or to deliver a session is logged once and the traffic flows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gpm.llm.members import TopLevelMembers
from gpm.llm.ollama import OllamaDialect
from gpm.llm.openai import OpenAiDialect
from gpm.llm.wire import Dialect, error_message, mark_error, parse_json, rate
from gpm.model import LlmSession, Outcome
from gpm.net import bound_port, is_loopback
from gpm.stats import percentile

# A request body up to this size is read whole before it is sent on, and parsed at once; a larger
# or longer one streams through, its few wanted members picked out on the way.
MAX_BUFFERED_REQUEST = 1024 * 1024
MAX_MODEL_NAME = 1024
MAX_KEPT_PROMPT = 1024 * 1024  # with store_prompts, a longer prompt in a large body is not kept
MAX_METERED_RESPONSE = 32 * 1024 * 1024  # non-streamed replies parsed for usage; larger: not
MAX_LINE = 8 * 1024 * 1024  # a response "line" longer than this is not a line: stop metering it
CONNECT_TIMEOUT_SECS = 10.0

_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Expect",
    )
)  # fmt: skip
# Headers aiohttp's client would add on its own; the client's own (or none) are sent instead.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_STREAM_TYPES = ("application/x-ndjson", "text/event-stream")

_OLLAMA = OllamaDialect()
_OPENAI = OpenAiDialect()

DIALECTS: dict[str, Dialect] = {
    "/api/generate": _OLLAMA,
    "/api/chat": _OLLAMA,
    "/api/embed": _OLLAMA,
    "/api/embeddings": _OLLAMA,
    "/v1/chat/completions": _OPENAI,
    "/v1/completions": _OPENAI,
    "/v1/embeddings": _OPENAI,
    "/v1/messages": _OPENAI,
}


class Meter:
    """Times one exchange and feeds its response lines to the dialect.

    Cheap per chunk once TTFT is known: a routine token line is counted without being parsed.
    What the backend sent decides the outcome, not who closed the socket: a stream whose terminal
    event reached the proxy is complete whatever the client does after it.
    """

    def __init__(
        self, dialect: Dialect, session: LlmSession, t0: float, store_prompts: bool
    ) -> None:
        self.session = session
        self._dialect = dialect
        self._t0 = t0
        self._store_prompts = store_prompts
        self._members: TopLevelMembers | None = None  # a large request body's wanted members
        self._parse_all = True  # until the first content is seen
        self._lines = False
        self._status = 0  # 0 until the backend answered
        self._tail = b""
        self._body: list[bytes] = []
        self._body_size = 0
        self._text: list[str] = []
        self._content_chunks = 0
        self._first: float | None = None  # first content chunk: the TTFT
        self._last: float | None = None
        self._gaps: list[float] = []
        self._done = False  # the backend's terminal event was read
        self._backend_ended = False  # the backend's reply reached its end

    # -- the request -----------------------------------------------------------------------

    def read_request(self, body: bytes) -> None:
        """A whole request body, read before it was sent on."""
        self._dialect.read_request(parse_json(body), self.session, self._store_prompts)

    def scan_request(self) -> TopLevelMembers:
        """A large request body streams on; what is needed is picked from it as it passes."""
        wanted = {"model": MAX_MODEL_NAME, "stream": 16}
        if self._store_prompts:
            wanted.update(dict.fromkeys(("prompt", "input", "messages"), MAX_KEPT_PROMPT))
        self._members = TopLevelMembers(wanted)
        return self._members

    def request_scanned(self) -> None:
        members, self._members = self._members, None
        if members is not None:
            self._dialect.read_request(members.result(), self.session, self._store_prompts)

    # -- the response ----------------------------------------------------------------------

    def response(self, status: int, content_type: str, now: float) -> None:
        self._status = status
        self.session.status_code = status
        self.session.ttfb_ms = (now - self._t0) * 1000.0
        self._lines = status < 400 and content_type.startswith(_STREAM_TYPES)

    def feed(self, data: bytes, now: float) -> None:
        if not self._lines:
            if self._body_size <= MAX_METERED_RESPONSE:
                self._body.append(data)
                self._body_size += len(data)
            return
        buf = self._tail + data if self._tail else data
        start = 0
        find = buf.find
        nl = find(b"\n", start)
        while nl >= 0:
            if nl > start and not self._done:
                self._line(buf[start:nl], now)
            start = nl + 1
            nl = find(b"\n", start)
        self._tail = buf[start:] if start < len(buf) else b""
        if len(self._tail) > MAX_LINE:
            self._tail = b""
            self._done = True  # not a line protocol after all: stop looking

    def backend_ended(self) -> None:
        self._backend_ended = True

    def _line(self, line: bytes, now: float) -> None:
        chunk = self._dialect.line(line, self.session, self._parse_all)
        content = chunk.content
        if content is not None:
            last = self._last
            if last is None:
                self._first = now
                self._parse_all = self._store_prompts
            else:
                self._gaps.append(now - last)
            self._last = now
            self._content_chunks += 1
            if self._store_prompts and content:
                self._text.append(content)
        if chunk.done:
            self._done = True

    def finish(self, now: float, cancelled: bool) -> LlmSession:
        s = self.session
        self.request_scanned()
        if self._lines and self._tail and not self._done:
            self._line(self._tail, now)
        if self._status and not self._lines:
            data = b"".join(self._body)
            if self._status >= 400:
                mark_error(s, error_message(parse_json(data)) or f"HTTP {self._status}")
            else:
                text = self._dialect.body(data, s)
                if text is not None:
                    self._text.append(text)
        s.streamed = self._lines or s.streamed
        s.duration_ms = (now - self._t0) * 1000.0
        if self._first is not None:
            s.ttft_ms = (self._first - self._t0) * 1000.0
        # The backend finished a stream once its terminal event (or its finish reason) arrived.
        terminal = self._done or s.done_reason is not None
        if s.outcome is Outcome.COMPLETED:
            if self._lines and not terminal:
                if cancelled:
                    s.outcome = Outcome.CANCELLED
                else:
                    mark_error(s, "the stream ended before its final chunk")
            elif cancelled and not self._lines and not self._backend_ended:
                s.outcome = Outcome.CANCELLED
        self._count_tokens(s, terminal)
        if self._store_prompts and self._text:
            s.response_text = "".join(self._text)
        return s

    def _count_tokens(self, s: LlmSession, terminal: bool) -> None:
        """The server's figures where it sent final ones; else what the stream carried."""
        final = terminal or not self._lines
        if self._lines and (s.completion_tokens is None or not final):
            s.completion_tokens = self._content_chunks
            s.token_source = "stream"
        elif s.completion_tokens is not None:
            s.token_source = "backend"
        first, last, n = self._first, self._last, self._content_chunks
        window = None if first is None or last is None else last - first
        if s.tokens_per_second is None or not final:
            tokens = s.completion_tokens
            s.tokens_per_second = rate(None if tokens is None else tokens - 1, window)
        if window is not None and n > 1:
            s.mean_chunk_gap_ms = window * 1000.0 / (n - 1)
        if self._gaps:
            s.chunk_gaps_ms = tuple(g * 1000.0 for g in self._gaps)
            s.chunk_gap_p50_ms = percentile(s.chunk_gaps_ms, 50)
            s.chunk_gap_p99_ms = percentile(s.chunk_gaps_ms, 99)


class LlmProxy:
    """Forwards everything to ``backend_url``; reports one LlmSession per generation request."""

    def __init__(
        self,
        backend_url: str,
        host: str,
        port: int,
        on_session: Callable[[LlmSession], None],
        *,
        on_start: Callable[[LlmSession], None] | None = None,
        store_prompts: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        self.backend_url = backend_url.rstrip("/")
        backend = URL(self.backend_url)
        if backend.scheme not in ("http", "https") or not backend.host:
            raise ValueError(f"backend_url must be an http(s) URL, got {backend_url!r}")
        self._backend_host = f"{backend.host}:{backend.port}" if backend.port else backend.host
        self.host = host
        self.port = port
        self._on_session = on_session
        self._on_start = on_start
        self._store_prompts = store_prompts
        self._log = logger or logging.getLogger(__name__)
        self._warned: set[str] = set()
        self._runner: web.ServerRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=CONNECT_TIMEOUT_SECS, sock_connect=CONNECT_TIMEOUT_SECS
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        server = web.Server(
            self._handle, handler_cancellation=True, auto_decompress=False, access_log=None
        )
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await self.stop()  # a port in use leaves no open client session behind
            raise
        self.port = bound_port(site)
        self._log.info("LLM proxy on http://%s:%d -> %s", self.host, self.port, self.backend_url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _warn_once(self, key: str, message: str, *args: object, trace: bool = True) -> None:
        """Log a recurring problem once (with its traceback when it is a bug), not per request."""
        if key not in self._warned:
            self._warned.add(key)
            self._log.warning(message, *args, exc_info=trace)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        t0 = time.perf_counter()
        started = time.time()
        dialect = DIALECTS.get(request.path) if request.method == "POST" else None
        meter: Meter | None = None
        data: Any = request.content if request.body_exists else None
        if dialect is not None:
            data, meter = await self._start_session(request, dialect, started, t0)
        assert self._client is not None
        try:
            upstream = await self._client.request(
                request.method,
                URL(self.backend_url + request.raw_path, encoded=True),
                headers=_request_headers(request, self._backend_host),
                data=data,
                allow_redirects=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._unreachable(exc, meter)
        except asyncio.CancelledError:
            self._deliver(meter, cancelled=True)
            raise
        return await self._relay(request, upstream, meter)

    async def _start_session(
        self, request: web.BaseRequest, dialect: Dialect, started: float, t0: float
    ) -> tuple[Any, Meter | None]:
        """Meter a request from its body: a small one is read whole, a large one streams."""
        try:
            session = LlmSession(
                id=uuid.uuid4().hex,
                model=None,
                endpoint=request.path,
                started_at=started,
                backend=dialect.backend,
                client="local" if is_loopback(request.remote or "127.0.0.1") else "remote",
            )
            meter: Meter | None = Meter(dialect, session, t0, self._store_prompts)
            if self._on_start is not None:
                self._on_start(session)
        except Exception:
            self._warn_once("request", "could not meter a request to %s", request.path)
            meter = None
        if not request.body_exists:
            return None, meter
        length = request.content_length
        if length is not None and length > MAX_BUFFERED_REQUEST:
            head, whole = b"", False
        else:
            head, whole = await _read_capped(request.content, MAX_BUFFERED_REQUEST)
        if meter is None:
            return (head if whole else _chain(head, request.content)), None
        if whole:
            self._meter(meter.read_request, head)
            return head, meter
        return self._scanned_body(head, request.content, meter), meter

    async def _scanned_body(
        self, head: bytes, rest: aiohttp.StreamReader, meter: Meter
    ) -> AsyncIterator[bytes]:
        """The body as it arrives, each piece also shown to the meter's member scanner."""
        members: TopLevelMembers | None = meter.scan_request()
        async for data in _chain(head, rest):
            if members is not None:
                try:
                    members.feed(data)
                except Exception:
                    self._warn_once("scan", "could not meter a large request body")
                    members = None
            yield data
        self._meter(meter.request_scanned)

    def _unreachable(self, exc: BaseException, meter: Meter | None) -> web.Response:
        reason = str(exc) or type(exc).__name__
        message = f"GPM proxy cannot reach the LLM backend at {self.backend_url}: {reason}"
        self._warn_once("unreachable", "%s", message, trace=False)
        if meter is not None:
            meter.session.outcome = Outcome.REJECTED
            meter.session.status_code = 502
            meter.session.error = message
            self._deliver(meter, cancelled=False)
        return web.Response(
            status=502, text=json.dumps({"error": message}), content_type="application/json"
        )

    async def _relay(
        self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, meter: Meter | None
    ) -> web.StreamResponse:
        cancelled = False
        finished = False
        try:
            response = web.StreamResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers=_response_headers(upstream.raw_headers),
            )
            if meter is not None:
                self._meter(meter.response, upstream.status, upstream.content_type,
                            time.perf_counter())  # fmt: skip
            await response.prepare(request)
            reader = upstream.content
            while True:
                try:
                    chunk = await reader.readany()
                except aiohttp.ClientError as exc:
                    self._broken_stream(request, meter, exc)
                    return response
                if not chunk:
                    if meter is not None:
                        meter.backend_ended()
                    break
                now = time.perf_counter()
                await response.write(chunk)
                if meter is not None:
                    self._meter(meter.feed, chunk, now)
            await response.write_eof()
            finished = True
            return response
        except asyncio.CancelledError:
            cancelled = True  # the client went away while we waited on the backend
            raise
        except ConnectionResetError:
            cancelled = True  # the client went away while we wrote to it
            return response
        finally:
            if finished:
                upstream.release()
            else:
                upstream.close()  # closing the connection is how Ollama learns to stop
            if meter is not None:
                self._deliver(meter, cancelled=cancelled)

    def _broken_stream(
        self, request: web.BaseRequest, meter: Meter | None, exc: BaseException
    ) -> None:
        """The backend dropped the stream: drop the client's too, so it sees a truncated reply."""
        self._warn_once("broken", "the LLM backend broke off a response: %s", exc, trace=False)
        if meter is not None:
            mark_error(meter.session, f"the backend broke off the response: {exc}")
        if request.transport is not None:
            request.transport.close()

    def _meter(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception:
            self._warn_once("meter", "could not meter an LLM response; traffic is unaffected")

    def _deliver(self, meter: Meter | None, *, cancelled: bool) -> None:
        if meter is None:
            return
        try:
            session = meter.finish(time.perf_counter(), cancelled)
            self._on_session(session)
        except Exception:
            self._warn_once("deliver", "could not record an LLM session; traffic is unaffected")


async def _read_capped(content: aiohttp.StreamReader, cap: int) -> tuple[bytes, bool]:
    """Up to a little over ``cap`` bytes; True when that was the whole body."""
    parts: list[bytes] = []
    size = 0
    while size <= cap:
        data = await content.readany()
        if not data:
            return b"".join(parts), True
        parts.append(data)
        size += len(data)
    return b"".join(parts), False


async def _chain(head: bytes, rest: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    if head:
        yield head
    async for data in rest.iter_any():
        yield data


def _connection_tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in value.split(",")} if value else set()


def _request_headers(request: web.BaseRequest, host: str) -> CIMultiDict[str]:
    drop = _HOP_BY_HOP | _connection_tokens(request.headers.get("Connection")) | {"host"}
    headers: CIMultiDict[str] = CIMultiDict()
    for key, value in request.headers.items():
        if key.lower() not in drop:
            headers.add(key, value)
    headers["Host"] = host
    return headers


def _response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for raw_key, raw_value in raw:
        headers.add(raw_key.decode("latin-1"), raw_value.decode("latin-1"))
    drop = _HOP_BY_HOP | _connection_tokens(headers.get("Connection"))
    for name in {k for k in headers if k.lower() in drop}:
        del headers[name]
    return headers
