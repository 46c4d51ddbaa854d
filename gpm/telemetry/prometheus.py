"""Prometheus ``/metrics``: GPU readings, LLM session histograms and GPM's own health.

GPU, model and health series are read from :class:`gpm.state.LiveState` at scrape time by a
custom collector, so a scrape always shows the latest snapshot and nothing is copied per poll.
Finished proxy sessions are pushed in through :meth:`MetricsExporter.observe_session`.
"""

from __future__ import annotations

import bisect
import gzip
import itertools
import math
import threading
from collections import Counter as TallyCounter
from collections.abc import Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector

from gpm.model import GpuSample, LlmSession, Outcome
from gpm.state import LiveState
from gpm.telemetry import CHUNK_GAP_SECONDS_BUCKETS, PERFORMANCE_KINDS, ModelLabels

if TYPE_CHECKING:
    from wsgiref.types import StartResponse

# NVML clock-event (throttle) reasons by the short names GPU sources report. Each gets a 0/1
# series so a dashboard can tell "not throttled" from "not reported"; a reason outside this list
# that a source does report is still exported.
KNOWN_THROTTLE_REASONS = (
    "gpu_idle",
    "applications_clocks_setting",
    "sw_power_cap",
    "hw_slowdown",
    "sync_boost",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
    "display_clock_setting",
)

# Local models run from ~1 tok/s (CPU offload) to a few hundred (small model, big GPU).
TOKENS_PER_SECOND_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500)
# A warm model answers in tens of ms; a cold start loads weights from disk for up to minutes.
TTFT_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
DURATION_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
TOKENS_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144)

UNCLASSIFIED = "unclassified"

_GPU_LABELS = ("gpu_id", "gpu_name", "gpu_uuid")


def _gpu_labels(g: GpuSample) -> list[str]:
    return [str(g.gpu_id), g.name or "", g.uuid or ""]


class _GpuFamilies:
    """Builds the per-GPU families; a reading that is None gets no sample at all."""

    def __init__(self) -> None:
        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=(*_GPU_LABELS, *extra))

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=(*_GPU_LABELS, *extra))

        self.up = gauge("gpm_gpu_up", "1 when the GPU could be read at the last poll, else 0.")
        self.info = GaugeMetricFamily(
            "gpm_gpu_info",
            "Constant 1, labelled with the GPU's identity.",
            labels=("gpu_id", "uuid", "name", "simulated"),
        )
        self.simple: list[tuple[GaugeMetricFamily, str]] = [
            (gauge("gpm_gpu_utilization_percent", "GPU (SM) utilization."), "utilization_percent"),
            (
                gauge("gpm_gpu_memory_utilization_percent", "Memory controller utilization."),
                "memory_utilization_percent",
            ),
            (gauge("gpm_gpu_memory_used_bytes", "GPU memory in use."), "memory_used_bytes"),
            (gauge("gpm_gpu_memory_total_bytes", "GPU memory size."), "memory_total_bytes"),
            (gauge("gpm_gpu_memory_free_bytes", "GPU memory free."), "memory_free_bytes"),
            (gauge("gpm_gpu_temperature_celsius", "GPU core temperature."), "temperature_celsius"),
            (gauge("gpm_gpu_power_watts", "Power draw."), "power_watts"),
            (gauge("gpm_gpu_power_limit_watts", "Enforced power limit."), "power_limit_watts"),
            (gauge("gpm_gpu_fan_percent", "Fan speed, percent of maximum."), "fan_percent"),
            (
                gauge("gpm_gpu_performance_state", "Performance state (P0 = 0 ... P15 = 15)."),
                "performance_state",
            ),
            (
                gauge("gpm_gpu_encoder_utilization_percent", "Video encoder utilization."),
                "encoder_utilization_percent",
            ),
            (
                gauge("gpm_gpu_decoder_utilization_percent", "Video decoder utilization."),
                "decoder_utilization_percent",
            ),
        ]
        self.clock = gauge("gpm_gpu_clock_mhz", "Current clock frequency.", ("clock",))
        self.pcie = gauge("gpm_gpu_pcie_bytes_per_second", "PCIe throughput.", ("direction",))
        self.throttle = gauge(
            "gpm_gpu_throttle_reason", "1 while the clock-event reason is active.", ("reason",)
        )
        self.energy = counter("gpm_gpu_energy_joules", "Energy used since the driver was loaded.")
        self.ecc = counter(
            "gpm_gpu_ecc_errors", "ECC errors since the driver was loaded.", ("type",)
        )
        self.proc_mem = GaugeMetricFamily(
            "gpm_gpu_process_memory_bytes",
            "GPU memory held by processes, by workload.",
            labels=("gpu_id", "workload"),
        )
        self.procs = GaugeMetricFamily(
            "gpm_gpu_processes",
            "Processes on the GPU, by workload.",
            labels=("gpu_id", "workload"),
        )

    def add(self, g: GpuSample) -> None:
        labels = _gpu_labels(g)
        # One labels dict shared by this GPU's gauges: the encoder formats it once per scrape.
        shared = dict(zip(_GPU_LABELS, labels, strict=True))
        self.up.add_sample(self.up.name, shared, 1.0 if g.up else 0.0)
        self.info.add_metric(
            [str(g.gpu_id), g.uuid or "", g.name or "", "true" if g.simulated else "false"], 1.0
        )
        for family, attr in self.simple:
            value = getattr(g, attr)
            if value is not None:
                family.add_sample(family.name, shared, float(value))
        for clock, mhz in (
            ("graphics", g.clock_graphics_mhz),
            ("sm", g.clock_sm_mhz),
            ("memory", g.clock_memory_mhz),
        ):
            if mhz is not None:
                self.clock.add_metric([*labels, clock], float(mhz))
        for direction, rate in (
            ("tx", g.pcie_tx_bytes_per_second),
            ("rx", g.pcie_rx_bytes_per_second),
        ):
            if rate is not None:
                self.pcie.add_metric([*labels, direction], float(rate))
        if g.throttle_reasons is not None:
            active = set(g.throttle_reasons)
            for reason in (
                *KNOWN_THROTTLE_REASONS,
                *sorted(active.difference(KNOWN_THROTTLE_REASONS)),
            ):
                self.throttle.add_sample(
                    self.throttle.name, {**shared, "reason": reason}, float(reason in active)
                )
        if g.energy_joules is not None:
            self.energy.add_metric(labels, g.energy_joules)
        for kind, errors in (
            ("corrected", g.ecc_errors_corrected),
            ("uncorrected", g.ecc_errors_uncorrected),
        ):
            if errors is not None:
                self.ecc.add_metric([*labels, kind], float(errors))
        if g.processes is not None:
            count: TallyCounter[str] = TallyCounter()
            memory: TallyCounter[str] = TallyCounter()
            for p in g.processes:
                workload = p.classification.workload.value if p.classification else UNCLASSIFIED
                count[workload] += 1
                memory[workload] += p.gpu_memory_bytes or 0
            for workload in sorted(count):
                self.procs.add_metric([str(g.gpu_id), workload], float(count[workload]))
                self.proc_mem.add_metric([str(g.gpu_id), workload], float(memory[workload]))

    def families(self) -> Iterator[Metric]:
        yield self.up
        yield self.info
        for family, _ in self.simple:
            yield family
        yield from (
            self.clock,
            self.pcie,
            self.throttle,
            self.energy,
            self.ecc,
            self.procs,
            self.proc_mem,
        )


class StateCollector(Collector):
    """Reads the live state at scrape time: GPUs, resident models, backend and GPM health."""

    def __init__(self, state: LiveState) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        state = self._state
        snapshot = state.snapshot
        gpus = _GpuFamilies()
        if snapshot is not None:
            for sample in snapshot.gpus:
                gpus.add(sample)
        yield from gpus.families()

        models = state.models
        yield GaugeMetricFamily(
            "gpm_llm_models_loaded", "Models resident in the LLM backend.", value=float(len(models))
        )
        vram = GaugeMetricFamily(
            "gpm_llm_model_vram_bytes", "VRAM held by a resident model.", labels=("model",)
        )
        for m in models:
            if m.vram_bytes is not None:
                vram.add_metric([m.name], float(m.vram_bytes))
        yield vram
        if state.backend_up is not None:
            yield GaugeMetricFamily(
                "gpm_llm_backend_up",
                "1 when the LLM backend answered its last poll.",
                value=1.0 if state.backend_up else 0.0,
            )
        yield from _health_families(state)


def _health_families(state: LiveState) -> Iterator[Metric]:
    health = state.health
    if health.last_poll_seconds is not None:
        yield GaugeMetricFamily(
            "gpm_poll_duration_seconds",
            "How long the last poll took.",
            value=health.last_poll_seconds,
        )
    if health.last_success_at is not None:
        yield GaugeMetricFamily(
            "gpm_last_successful_poll_timestamp_seconds",
            "When the last successful poll finished (epoch seconds).",
            value=health.last_success_at,
        )
    yield CounterMetricFamily("gpm_polls", "Polls finished.", value=health.polls)
    yield CounterMetricFamily(
        "gpm_polls_skipped",
        "Polls skipped because the previous one overran its slot.",
        value=health.polls_skipped,
    )
    errors = CounterMetricFamily(
        "gpm_collection_errors", "Collection errors, by kind.", labels=("kind",)
    )
    for kind, n in sorted(health.errors.items()):
        errors.add_metric([kind], float(n))
    yield errors


class Tally(Collector):
    """A labelled count that only goes up, updated from any thread.

    ``kind="unknown"`` keeps an original series name that ends in ``_count``
    (``gpm_llm_session_count``): prometheus_client would append ``_total`` to a counter, and
    promtool rejects a counter or gauge named ``*_count``, so it is exposed untyped. The series
    still only goes up, so ``rate()`` and ``increase()`` work on it.
    """

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...], kind: str) -> None:
        self.name, self.doc, self.labelnames, self.kind = name, doc, labelnames, kind
        self._counts: TallyCounter[tuple[str, ...]] = TallyCounter()
        self._lock = threading.Lock()

    def inc(self, labels: tuple[str, ...]) -> None:
        with self._lock:
            self._counts[labels] += 1

    def collect(self) -> Iterator[Metric]:
        family: Metric
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        else:
            family = UnknownMetricFamily(self.name, self.doc, labels=self.labelnames)
        with self._lock:
            items = sorted(self._counts.items())
        for labels, n in items:
            family.add_metric(list(labels), float(n))
        yield family


class _Child:
    """One label set: bucket counts, and the start of each of its lines (name and labels)."""

    __slots__ = ("count", "counts", "heads", "sum", "text")

    def __init__(self, heads: tuple[str, ...]) -> None:
        self.heads = heads  # one per bucket, then _count and _sum
        self.counts = [0] * (len(heads) - 2)
        self.sum = 0.0
        self.count = 0
        self.text: str | None = None


class LabelledHistogram(Collector):
    """A histogram whose rendered text is cached per label set.

    Sessions arrive a few times a second at most while a scrape renders thousands of bucket
    lines (50 models x 4 histograms), so each label set's lines are rebuilt only after it
    changed; this keeps a scrape in the low milliseconds.
    """

    def __init__(
        self, name: str, doc: str, labelnames: tuple[str, ...], buckets: Iterable[float]
    ) -> None:
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self._bounds = tuple(float(b) for b in buckets)
        self._le = (*(format_value(b) for b in self._bounds), "+Inf")
        self._children: dict[tuple[str, ...], _Child] = {}
        self._lock = threading.Lock()

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        self.observe_many(labels, (value,))

    def observe_many(self, labels: tuple[str, ...], values: Iterable[float]) -> None:
        """Observe several values under one lock (a session's every chunk gap)."""
        # A broken measurement must not poison _sum.
        good = [v for v in values if math.isfinite(v) and v >= 0]
        if not good:
            return
        bounds = self._bounds
        with self._lock:
            child = self._children.get(labels)
            if child is None:
                child = self._children[labels] = _Child(self._heads(labels))
            for value in good:
                child.counts[bisect.bisect_left(bounds, value)] += 1
                child.sum += value
                child.count += 1
            child.text = None

    def _cumulative(self, child: _Child) -> list[int]:
        return list(itertools.accumulate(child.counts))

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        with self._lock:
            for labels, child in sorted(self._children.items()):
                buckets = list(zip(self._le, map(float, self._cumulative(child)), strict=True))
                family.add_metric(list(labels), buckets, child.sum)
        yield family

    def text(self) -> str:
        parts = [f"# HELP {self.name} {_escape_help(self.doc)}\n# TYPE {self.name} histogram\n"]
        with self._lock:
            for _, child in sorted(self._children.items()):
                if child.text is None:
                    child.text = self._child_text(child)
                parts.append(child.text)
        return "".join(parts)

    def _heads(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        pairs = ",".join(
            f'{k}="{_escape_label(v)}"' for k, v in zip(self.labelnames, labels, strict=True)
        )
        name, lead = self.name, pairs + "," if pairs else ""
        brace = f"{{{pairs}}}" if pairs else ""
        return (
            *(f'{name}_bucket{{{lead}le="{le}"}} ' for le in self._le),
            f"{name}_count{brace} ",
            f"{name}_sum{brace} ",
        )

    def _child_text(self, child: _Child) -> str:
        values = (*map(str, self._cumulative(child)), str(child.count), format_value(child.sum))
        return "".join([f"{head}{v}\n" for head, v in zip(child.heads, values, strict=True)])


def format_value(v: float) -> str:
    """A sample value as both exposition formats spell it."""
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if v != v:
        return "NaN"
    return repr(float(v))


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


class LabelText:
    """Rendered ``{k="v",...}`` strings by label set, reused across scrapes.

    Label sets repeat (every GPU family carries the same gpu_id/name/uuid), and formatting them
    was most of a scrape's cost. The cache is cleared if it ever grows past ``limit``.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self._limit = limit
        self._cache: dict[tuple[tuple[str, str], ...], str] = {}

    def __call__(self, labels: dict[str, str]) -> str:
        key = tuple(labels.items())
        text = self._cache.get(key)
        if text is None:
            if len(self._cache) >= self._limit:
                self._cache.clear()
            pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in key)
            text = self._cache[key] = f"{{{pairs}}}" if pairs else ""
        return text


def encode_family(
    family: Metric, openmetrics: bool, label_text: LabelText, seen: dict[int, str]
) -> str:
    """One family in the classic text format or OpenMetrics (``_created`` samples dropped).

    ``seen`` maps ``id(labels)`` to its text for dicts shared between samples; it must live no
    longer than the families of one scrape, while those dicts (and so their ids) are alive.
    """
    name, kind = family.name, family.type
    if not openmetrics:
        if kind == "counter":
            name += "_total"
        elif kind == "unknown":
            kind = "untyped"
    lines = [f"# HELP {name} {_escape_help(family.documentation)}\n# TYPE {name} {kind}\n"]
    for s in family.samples:
        if s.name.endswith("_created"):
            continue
        labels = seen.get(id(s.labels))
        if labels is None:
            labels = seen[id(s.labels)] = label_text(s.labels)
        lines.append(f"{s.name}{labels} {format_value(s.value)}\n")
    return "".join(lines)


CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def wants_openmetrics(accept: str) -> bool:
    """True when the Accept header lists OpenMetrics (Prometheus prefers it when offered)."""
    return any(
        part.split(";")[0].strip() == "application/openmetrics-text" for part in accept.split(",")
    )


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
        self._histograms: tuple[LabelledHistogram, ...] = (
            self._tps,
            self._ttft,
            self._duration,
            self._chunk_gap,
            self._tokens,
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
        self._plain: tuple[Collector, ...] = (
            ProcessCollector(registry=None),
            PlatformCollector(registry=None),
            StateCollector(state),
            self._session_count,
            self._sessions,
        )
        self._label_text = LabelText()
        self.registry = CollectorRegistry()
        for collector in (*self._plain, *self._histograms):
            self.registry.register(collector)

    def observe_session(self, s: LlmSession) -> None:
        """Count a finished session; completed inference also feeds the histograms."""
        model = self._model_label(s.model)
        self._session_count.inc((model,))
        self._sessions.inc((model, s.outcome.value))
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
        """Bind and serve in a daemon thread; ``port`` then holds the bound port."""
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
