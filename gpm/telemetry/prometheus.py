"""Prometheus ``/metrics``: GPU readings, LLM session histograms and GPM's own health.

GPU, model and health series are read from :class:`gpm.state.LiveState` at scrape time by a
custom collector, so a scrape always shows the latest snapshot and nothing is copied per poll.
Finished proxy sessions are pushed in through :meth:`MetricsExporter.observe_session`.
"""

from __future__ import annotations

import gzip
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
    Metric,
)
from prometheus_client.registry import Collector

from gpm import catalog
from gpm.catalog import PromFamily
from gpm.gpu import clock_events
from gpm.health import VERDICTS
from gpm.model import MIG_READINGS, GpuEvent, GpuSample, LlmSession, Outcome
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

if TYPE_CHECKING:
    from wsgiref.types import StartResponse

# NVML clock-event (throttle) reasons by the short names GPU sources report. Each gets a 0/1
# series so a dashboard can tell "not throttled" from "not reported"; a reason outside this list
# that a source does report is still exported.
KNOWN_THROTTLE_REASONS = clock_events.NAMES

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
    """Builds the per-GPU families; a reading that is None gets no sample at all.

    One family per catalog family, in catalog order; a family shared by several readings (clock,
    PCIe, ECC) tells them apart by its label.
    """

    def __init__(self) -> None:
        self.up = GaugeMetricFamily(
            "gpm_gpu_up",
            "1 when the GPU could be read at the last poll, else 0.",
            labels=_GPU_LABELS,
        )
        self.info = GaugeMetricFamily(
            "gpm_gpu_info",
            "Constant 1, labelled with the GPU's identity.",
            labels=("gpu_id", "uuid", "name", "simulated"),
        )
        self.readings: dict[PromFamily, Metric] = {}
        # (reading, its family, the sample name, its label and value in that family)
        self._exported: list[tuple[str, Metric, str, str | None, str | None]] = []
        for r in catalog.READINGS:
            f = r.prom
            if f is None:
                continue
            if f not in self.readings:
                kind = CounterMetricFamily if f.counter else GaugeMetricFamily
                labels = (*_GPU_LABELS, f.label) if f.label else _GPU_LABELS
                self.readings[f] = kind(f.name, f.help or r.help, labels=labels)
            out = self.readings[f]
            sample = f"{out.name}_total" if f.counter else out.name
            self._exported.append((r.name, out, sample, f.label, r.prom_label))
        self.health = GaugeMetricFamily(
            "gpm_gpu_health",
            "1 for the GPU's health verdict (ok, degraded, failed), 0 for the other two.",
            labels=(*_GPU_LABELS, "state"),
        )
        self.nvlink_up = GaugeMetricFamily(
            "gpm_gpu_nvlink_up",
            "1 while the NVLink link is active, 0 while it is down.",
            labels=(*_GPU_LABELS, "link"),
        )
        self.nvlink_errors = CounterMetricFamily(
            "gpm_gpu_nvlink_link_errors",
            "NVLink errors of one link, by kind (crc, replay, recovery).",
            labels=(*_GPU_LABELS, "link", "type"),
        )
        self.throttle = GaugeMetricFamily(
            "gpm_gpu_throttle_reason",
            "1 while the clock-event reason is active.",
            labels=(*_GPU_LABELS, "reason"),
        )
        self.proc_mem = GaugeMetricFamily(
            "gpm_gpu_process_memory_bytes",
            "GPU memory held by processes, by workload (and MIG device, in MIG mode).",
            labels=("gpu_id", "workload", "mig_instance"),
        )
        self.procs = GaugeMetricFamily(
            "gpm_gpu_processes",
            "Processes on the GPU, by workload (and MIG device, in MIG mode).",
            labels=("gpu_id", "workload", "mig_instance"),
        )
        # Each MIG device reading is a family of its own, never summed into the GPU's.
        self.mig = [
            GaugeMetricFamily(
                f"gpm_mig_{name}",
                f"{catalog.BY_NAME[name].help} (MIG device)",
                labels=(*_GPU_LABELS, "mig_instance", "mig_uuid", "mig_profile"),
            )
            for name in MIG_READINGS
        ]

    def add(self, g: GpuSample) -> None:
        labels = _gpu_labels(g)
        # One labels dict shared by this GPU's unlabelled families: encoded once per scrape.
        shared = dict(zip(_GPU_LABELS, labels, strict=True))
        self.up.add_sample(self.up.name, shared, 1.0 if g.up else 0.0)
        self.info.add_metric(
            [str(g.gpu_id), g.uuid or "", g.name or "", "true" if g.simulated else "false"], 1.0
        )
        readings = g.readings
        for name, out, sample, label, label_value in self._exported:
            value = readings.get(name)
            if value is None:
                continue
            if label is None or label_value is None:
                out.add_sample(sample, shared, float(value))
            else:
                out.add_sample(sample, {**shared, label: label_value}, float(value))
        for link in g.nvlinks or ():
            at = {**shared, "link": str(link.link)}
            self.nvlink_up.add_sample(self.nvlink_up.name, at, 1.0 if link.active else 0.0)
            for kind, value in (
                ("crc", link.crc_errors),
                ("replay", link.replay_errors),
                ("recovery", link.recovery_errors),
            ):
                if value is not None:
                    self.nvlink_errors.add_sample(
                        f"{self.nvlink_errors.name}_total", {**at, "type": kind}, float(value)
                    )
        if g.health is not None:
            for state in VERDICTS:
                value = 1.0 if state == g.health else 0.0
                self.health.add_sample(self.health.name, {**shared, "state": state}, value)
        if g.throttle_reasons is not None:
            active = set(g.throttle_reasons)
            for reason in (
                *KNOWN_THROTTLE_REASONS,
                *sorted(active.difference(KNOWN_THROTTLE_REASONS)),
            ):
                self.throttle.add_sample(
                    self.throttle.name, {**shared, "reason": reason}, float(reason in active)
                )
        for m in g.mig_devices or ():
            at = {**shared, "mig_instance": str(m.index), "mig_uuid": m.uuid or ""}
            at["mig_profile"] = m.profile or ""
            for family, name in zip(self.mig, MIG_READINGS, strict=True):
                value = getattr(m, name)
                if value is not None:
                    family.add_sample(family.name, at, float(value))
        if g.processes is not None:
            count: TallyCounter[tuple[str, str]] = TallyCounter()
            memory: TallyCounter[tuple[str, str]] = TallyCounter()
            for p in g.processes:
                workload = p.classification.workload.value if p.classification else UNCLASSIFIED
                where = (workload, "" if p.mig_index is None else str(p.mig_index))
                count[where] += 1
                memory[where] += p.gpu_memory_bytes or 0
            for where in sorted(count):
                self.procs.add_metric([str(g.gpu_id), *where], float(count[where]))
                self.proc_mem.add_metric([str(g.gpu_id), *where], float(memory[where]))

    def families(self) -> Iterator[Metric]:
        yield self.up
        yield self.info
        yield from self.readings.values()
        yield from (self.health, self.nvlink_up, self.nvlink_errors, self.throttle)
        yield from (self.procs, self.proc_mem)
        yield from self.mig


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
        if state.host is not None:
            h = state.host
            info = GaugeMetricFamily(
                "gpm_host_info",
                "Constant 1, labelled with the machine's name (service.host_name), its GPM's "
                "dashboard, and GPM's and the driver's versions.",
                labels=("host", "version", "driver_version", "cuda_version", "url"),
            )
            versions = [h.driver_version or "", h.cuda_version or "", h.url or ""]
            info.add_metric([h.host, h.version, *versions], 1.0)
            yield info
        yield from _energy_families(state)
        yield from _health_families(state)


def _energy_families(state: LiveState) -> Iterator[Metric]:
    """Energy since GPM started, by workload and idle per GPU (docs/energy.md)."""
    energy = state.energy
    workloads = CounterMetricFamily(
        "gpm_workload_energy_joules",
        "GPU energy attributed to processes, by workload class (unattributed: process list "
        "unknown).",
        labels=("workload",),
    )
    for workload, joules in sorted(energy.by_workload.items()):
        workloads.add_metric([workload], joules)
    yield workloads
    idle = CounterMetricFamily(
        "gpm_gpu_idle_energy_joules",
        "GPU energy at the idle floor or with no process on the GPU.",
        labels=("gpu_id",),
    )
    for gpu_id, joules in sorted(energy.idle_by_gpu.items()):
        idle.add_metric([str(gpu_id)], joules)
    yield idle


def _health_families(state: LiveState) -> Iterator[Metric]:
    health = state.health
    if health.last_poll_seconds is not None:
        yield GaugeMetricFamily(
            "gpm_poll_duration_seconds",
            "How long the last poll took.",
            value=health.last_poll_seconds,
        )
    if health.phase_seconds:
        phases = GaugeMetricFamily(
            "gpm_poll_phase_seconds",
            "How long each phase of the last poll took: gpus (reading them), classify "
            "(processes and health), record (energy, storage, alerts).",
            labels=("phase",),
        )
        for phase, seconds in health.phase_seconds.items():
            phases.add_metric([phase], seconds)
        yield phases
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
        if s.tokens_per_joule:
            self._joules_per_token.observe((model,), 1 / s.tokens_per_joule)

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
