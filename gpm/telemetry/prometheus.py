"""Prometheus ``/metrics``: the exporter, its HTTP endpoint and the LLM session histograms.

GPU, model, energy and health series come from the live state at scrape time
(:mod:`gpm.telemetry.prometheus_state`); finished proxy sessions and Xid errors are pushed in
through :meth:`MetricsExporter.observe_session` and :meth:`MetricsExporter.observe_gpu_event`.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.registry import Collector

from gpm.model import GpuEvent, LlmSession, Outcome
from gpm.state import LiveState
from gpm.telemetry import (
    CHUNK_GAP_SECONDS_BUCKETS,
    JOULES_PER_TOKEN_BUCKETS,
    PERFORMANCE_KINDS,
    ModelLabels,
)
from gpm.telemetry.exposition import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    LabelledHistogram,
    LabelText,
    Tally,
    encode_family,
    wants_openmetrics,
)
from gpm.telemetry.prometheus_state import StateCollector

if TYPE_CHECKING:
    from wsgiref.types import StartResponse

TOKENS_PER_SECOND_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500)
# A warm model answers in tens of ms; a cold start loads weights from disk for up to minutes.
TTFT_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
DURATION_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
TOKENS_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every few seconds would flood the log."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class MetricsExporter:
    """Serves ``/metrics`` on ``host:port``; every series comes from ``state`` or a session.

    ``registry`` holds the same collectors for prometheus_client's own encoders (tests compare
    against it); scrapes use :meth:`render`, which caches histogram text.
    """

    def __init__(
        self,
        state: LiveState,
        *,
        host: str = "127.0.0.1",
        port: int = 9090,
        model_label_limit: int = 50,
        legacy_names: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self._model_label = ModelLabels(model_label_limit)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tps = LabelledHistogram(
            "gpm_llm_tokens_per_second",
            "Decode rate of completed generations.",
            ("model",),
            TOKENS_PER_SECOND_BUCKETS,
        )
        self._ttft = LabelledHistogram(
            "gpm_llm_time_to_first_token_seconds",
            "Time from request to the first content chunk, measured at the proxy "
            "(includes model load on a cold start).",
            ("model",),
            TTFT_SECONDS_BUCKETS,
        )
        self._duration = LabelledHistogram(
            "gpm_llm_request_duration_seconds",
            "Duration of completed requests.",
            ("model",),
            DURATION_SECONDS_BUCKETS,
        )
        self._chunk_gap = LabelledHistogram(
            "gpm_llm_time_per_output_chunk_seconds",
            "Time between consecutive content chunks of completed streams (inter-token "
            "latency), one observation per chunk after the first.",
            ("model",),
            CHUNK_GAP_SECONDS_BUCKETS,
        )
        self._tokens = LabelledHistogram(
            "gpm_llm_tokens_per_request",
            "Tokens per completed request.",
            ("model", "type"),
            TOKENS_BUCKETS,
        )
        self._joules_per_token = LabelledHistogram(
            "gpm_llm_energy_per_token_joules",
            "Energy per completion token of completed generations.",
            ("model",),
            JOULES_PER_TOKEN_BUCKETS,
        )
        self._histograms: tuple[LabelledHistogram, ...] = (
            self._tps,
            self._ttft,
            self._duration,
            self._chunk_gap,
            self._tokens,
            self._joules_per_token,
        )
        # The original exporter's name, kept so dashboards built on it keep working. promtool's
        # lint rejects the abbreviated unit, so it can be switched off
        # (telemetry.prometheus_legacy_names = false); _seconds carries the same data.
        self._ttft_ms: LabelledHistogram | None = None
        if legacy_names:
            self._ttft_ms = LabelledHistogram(
                "gpm_llm_time_to_first_token_ms",
                "Time to first token in milliseconds (the original name; prefer "
                "gpm_llm_time_to_first_token_seconds).",
                ("model",),
                tuple(b * 1000 for b in TTFT_SECONDS_BUCKETS),
            )
            self._histograms += (self._ttft_ms,)
        self._session_count = Tally(
            "gpm_llm_session_count",
            "LLM proxy sessions finished, by model (gpm_llm_sessions_total summed over outcome).",
            ("model",),
            "unknown",
        )
        self._sessions = Tally(
            "gpm_llm_sessions",
            "LLM proxy sessions finished, by model and outcome.",
            ("model", "outcome"),
            "counter",
        )
        self._energy = Tally(
            "gpm_llm_energy_joules",
            "Energy of LLM sessions (their share of their GPUs' energy), by model.",
            ("model",),
            "counter",
        )
        self._xids = Tally(
            "gpm_gpu_xid_errors",
            "Xid errors the driver reported since GPM started, by GPU and Xid code.",
            ("gpu_id", "xid"),
            "counter",
        )
        self._plain: tuple[Collector, ...] = (
            ProcessCollector(registry=None),
            PlatformCollector(registry=None),
            StateCollector(state),
            self._session_count,
            self._sessions,
            self._energy,
            self._xids,
        )
        self._label_text = LabelText()
        self.registry = CollectorRegistry()
        for collector in (*self._plain, *self._histograms):
            self.registry.register(collector)

    def observe_gpu_event(self, e: GpuEvent) -> None:
        """Count an Xid error (from any thread)."""
        if e.kind == "xid":
            self._xids.inc((str(e.gpu_id), str(e.code)))

    def observe_session(self, s: LlmSession) -> None:
        """Count a finished session; completed inference also feeds the histograms."""
        model = self._model_label(s.model)
        self._session_count.inc((model,))
        self._sessions.inc((model, s.outcome.value))
        if s.energy_joules is not None:
            self._energy.inc((model,), s.energy_joules)
        if s.kind not in PERFORMANCE_KINDS or s.outcome is not Outcome.COMPLETED:
            return
        if s.tokens_per_second is not None:
            self._tps.observe((model,), s.tokens_per_second)
        if s.ttft_ms is not None:
            self._ttft.observe((model,), s.ttft_ms / 1000.0)
            if self._ttft_ms is not None:
                self._ttft_ms.observe((model,), s.ttft_ms)
        if s.duration_ms is not None:
            self._duration.observe((model,), s.duration_ms / 1000.0)
        if s.chunk_gaps_ms:
            self._chunk_gap.observe_many((model,), (g / 1000.0 for g in s.chunk_gaps_ms))
        if s.prompt_tokens is not None:
            self._tokens.observe((model, "prompt"), s.prompt_tokens)
        if s.completion_tokens is not None:
            self._tokens.observe((model, "completion"), s.completion_tokens)
        if s.joules_per_token is not None:
            self._joules_per_token.observe((model,), s.joules_per_token)

    def render(self, openmetrics: bool = False) -> bytes:
        """The whole exposition: classic text format, or OpenMetrics (ending in ``# EOF``)."""
        families = [family for collector in self._plain for family in collector.collect()]
        seen: dict[int, str] = {}
        parts = [encode_family(f, openmetrics, self._label_text, seen) for f in families]
        parts.extend(h.text() for h in self._histograms)
        if openmetrics:
            parts.append("# EOF\n")
        return "".join(parts).encode()

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found: metrics are at /metrics\n"]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        openmetrics = wants_openmetrics(environ.get("HTTP_ACCEPT", ""))
        body = self.render(openmetrics)
        headers = [("Content-Type", CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]

    def start(self) -> None:
        """Bind and serve in a daemon thread; ``port`` then holds the bound port.

        A thread of its own, so a scrape never waits behind the event loop; prometheus_client's
        ``start_http_server`` is the same kind of server but renders with ``generate_latest``
        (see gpm/telemetry/exposition.py for why this exporter renders itself).
        """
        if self._server is not None:
            raise RuntimeError("metrics exporter already started")
        server = make_server(self.host, self.port, self._app, _Server, _QuietHandler)
        self.port = server.server_port
        thread = threading.Thread(target=server.serve_forever, name="gpm-metrics", daemon=True)
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice or before ``start``."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
