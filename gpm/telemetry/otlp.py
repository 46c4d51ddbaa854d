"""OpenTelemetry OTLP/gRPC metric export under the hardware and GenAI semantic conventions.

GPU readings are observable instruments read from :class:`gpm.state.LiveState` when the SDK's
reader thread collects (what each GPU sample gives them: :mod:`gpm.telemetry.otlp_hardware`);
LLM sessions are recorded into histograms as they finish. Nothing here runs on the service's
event loop, and a collector that is down costs one log line, not a crash. The SDK (a heavy
import) is loaded in :meth:`OtlpExporter.start`.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpm import __version__
from gpm.model import GpuSample, LlmSession, Outcome
from gpm.state import LiveState
from gpm.telemetry import (
    CHUNK_GAP_SECONDS_BUCKETS,
    JOULES_PER_TOKEN_BUCKETS,
    PERFORMANCE_KINDS,
    ModelLabels,
)
from gpm.telemetry.otlp_hardware import (
    Observations,
    PcieTotals,
    catalog_instruments,
    catalog_reader,
    gpu_attributes,
    hw_status,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation
    from opentelemetry.sdk.metrics import MeterProvider

# Bucket boundaries the GenAI conventions recommend, plus overflow buckets: a local model's
# cold start (weights read from disk) can take minutes, which the recommended ones cannot tell
# apart from a 10 s answer.
TOKEN_USAGE_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
OPERATION_DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
    120,
    300,
    600,
)
TIME_TO_FIRST_TOKEN_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    30,
    60,
    120,
    300,
)
TIME_PER_OUTPUT_TOKEN_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5,
    10,
)

PROVIDER = "ollama"
_SDK_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"
# The SDK logs every retry and every failed export; GPM reports the outage once instead.
_SDK_NOISE = ("Transient error", "Failed to export", "Shutdown in progress")


def operation_name(s: LlmSession) -> str:
    """``gen_ai.operation.name`` for a proxied request."""
    if s.kind == "embedding" or "embed" in s.endpoint:
        return "embeddings"
    if "chat" in s.endpoint:
        return "chat"
    return "text_completion"


class _SilenceSdkRetries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(_SDK_NOISE))


@dataclass(frozen=True, slots=True)
class _LlmInstruments:
    token_usage: Histogram
    duration: Histogram
    ttft: Histogram
    tpot: Histogram
    chunk_gap: Histogram
    energy: Counter
    energy_per_token: Histogram


class OtlpExporter:
    """Pushes GPU and LLM metrics to an OTLP/gRPC collector every ``interval`` seconds."""

    def __init__(
        self,
        state: LiveState,
        *,
        endpoint: str,
        interval: float = 15.0,
        host_name: str | None = None,
        instance_id: str | None = None,
        logger: logging.Logger | None = None,
        model_label_limit: int = 50,
        stop_timeout: float = 3.0,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.state = state
        self.endpoint = endpoint
        self.interval = interval
        self.host_name = host_name or socket.gethostname()
        self.instance_id = instance_id or self.host_name
        self.log = logger or logging.getLogger(__name__)
        self.stop_timeout = stop_timeout
        self._model_label = ModelLabels(model_label_limit)
        self._pcie = PcieTotals()
        self._provider: MeterProvider | None = None
        self._otlp: Any = None
        self._filter = _SilenceSdkRetries()
        self._llm: _LlmInstruments | None = None  # while started

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Build the meter provider; the SDK's reader thread then exports every interval."""
        if self._provider is not None:
            raise RuntimeError("OTLP exporter already started")
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        self._otlp = OTLPMetricExporter(
            endpoint=self.endpoint,
            insecure=self.endpoint.startswith("http://"),
            timeout=min(10.0, max(1.0, self.interval)),
        )
        reader = PeriodicExportingMetricReader(
            _reporting_exporter(self._otlp, self.endpoint, self.interval, self.log),
            export_interval_millis=self.interval * 1000,
        )
        resource = Resource.create(
            {
                "service.name": "gpm",
                "service.version": __version__,
                "service.instance.id": self.instance_id,
                "host.name": self.host_name,
            }
        )
        logging.getLogger(_SDK_EXPORTER_LOGGER).addFilter(self._filter)
        self._provider = MeterProvider(
            resource=resource, metric_readers=[reader], views=_histogram_views()
        )
        self._create_instruments(self._provider)
        self.log.info("exporting OTLP metrics to %s every %gs", self.endpoint, self.interval)

    def stop(self) -> None:
        """Flush once and shut down, waiting at most about ``stop_timeout`` seconds.

        With the collector down the SDK's final export would retry for its whole timeout;
        past the bound the exporter is shut down under it, which aborts the retry wait.
        """
        provider, self._provider = self._provider, None
        if provider is None:
            return
        closer = threading.Thread(
            target=provider.shutdown,
            kwargs={"timeout_millis": self.stop_timeout * 1000},
            name="gpm-otlp-stop",
            daemon=True,
        )
        closer.start()
        closer.join(self.stop_timeout)
        if closer.is_alive():
            self._otlp.shutdown()
            closer.join(1.0)
        logging.getLogger(_SDK_EXPORTER_LOGGER).removeFilter(self._filter)
        self._llm = None

    # -- LLM sessions ----------------------------------------------------------------------

    def observe_session(self, s: LlmSession) -> None:
        """Record a finished session (thread-safe; dropped when not started)."""
        llm = self._llm
        if llm is None:
            return
        if s.kind not in PERFORMANCE_KINDS:
            return
        attrs = {
            "gen_ai.operation.name": operation_name(s),
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": self._model_label(s.model),
        }
        completed = s.outcome is Outcome.COMPLETED
        if s.duration_ms is not None:
            done = attrs if completed else {**attrs, "error.type": s.outcome.value}
            llm.duration.record(s.duration_ms / 1000.0, done)
        if s.energy_joules is not None:
            llm.energy.add(s.energy_joules, attrs)
        if not completed:
            return
        for token_type, count in (("input", s.prompt_tokens), ("output", s.completion_tokens)):
            if count is not None:
                llm.token_usage.record(count, {**attrs, "gen_ai.token.type": token_type})
        if s.ttft_ms is not None:
            llm.ttft.record(s.ttft_ms / 1000.0, attrs)
        per_token = _seconds_per_output_token(s)
        if per_token is not None:
            llm.tpot.record(per_token, attrs)
        for gap_ms in s.chunk_gaps_ms:
            llm.chunk_gap.record(gap_ms / 1000.0, attrs)
        if s.joules_per_token is not None:
            llm.energy_per_token.record(s.joules_per_token, attrs)

    # -- GPU instruments -------------------------------------------------------------------

    def _create_instruments(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("gpm", __version__)
        create = {
            "gauge": meter.create_observable_gauge,
            "updown": meter.create_observable_up_down_counter,
            "counter": meter.create_observable_counter,
        }
        for instrument, readings in catalog_instruments().items():
            create[instrument.kind](
                instrument.name, [self._callback(catalog_reader(readings))], instrument.unit,
                instrument.help,
            )  # fmt: skip
        meter.create_observable_up_down_counter(
            "hw.status",
            [self._callback(hw_status, readable_only=False)],
            "1",
            "1 for the GPU's health verdict (ok, degraded or failed), 0 for the others.",
        )
        meter.create_observable_counter(
            "hw.gpu.io",
            [self._callback(self._pcie_bytes)],
            "By",
            "Bytes the GPU received and sent over PCIe (integrated from sampled rates).",
        )
        meter.create_observable_counter(
            "gpm.workload.energy",
            [self._workload_energy],
            "J",
            "GPU energy attributed to processes, by workload class (gpm.workload).",
        )
        meter.create_observable_counter(
            "gpm.gpu.idle_energy",
            [self._callback(self._idle_energy)],
            "J",
            "GPU energy at the idle floor or with no process on the GPU.",
        )
        self._llm = _LlmInstruments(
            token_usage=meter.create_histogram(
                "gen_ai.client.token.usage", "{token}", "Input and output tokens per request."
            ),
            duration=meter.create_histogram(
                "gen_ai.client.operation.duration", "s", "Duration of requests through the proxy."
            ),
            ttft=meter.create_histogram(
                "gen_ai.server.time_to_first_token",
                "s",
                "Time to the first content chunk of successful responses (includes cold starts).",
            ),
            tpot=meter.create_histogram(
                "gen_ai.server.time_per_output_token",
                "s",
                "Time per output token after the first, for successful responses.",
            ),
            chunk_gap=meter.create_histogram(
                "gen_ai.client.operation.time_per_output_chunk",
                "s",
                "Time between consecutive content chunks of successful streams, per chunk after "
                "the first.",
            ),
            energy=meter.create_counter(
                "gpm.llm.energy", "J", "Energy of LLM sessions (their share of their GPUs')."
            ),
            energy_per_token=meter.create_histogram(
                "gpm.llm.energy_per_token",
                "J/{token}",
                "Energy per completion token of completed generations.",
            ),
        )

    def _workload_energy(self, _: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        for workload, joules in sorted(self.state.energy.by_workload.items()):
            yield Observation(joules, {"gpm.workload": workload})

    def _idle_energy(self, g: GpuSample) -> Observations:
        joules = self.state.energy.idle_by_gpu.get(g.gpu_id)
        if joules is not None:
            yield joules, {}

    def _callback(
        self,
        read: Callable[[GpuSample], Iterable[tuple[float, dict[str, str]]]],
        readable_only: bool = True,
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        """An instrument callback: one observation per reading of every GPU in the snapshot."""
        from opentelemetry.metrics import Observation

        def callback(_: CallbackOptions) -> Iterator[Observation]:
            snapshot = self.state.snapshot
            if snapshot is None:
                return
            for g in snapshot.gpus:
                if readable_only and not g.up:
                    continue
                base = gpu_attributes(g)
                for value, extra in read(g):
                    yield Observation(value, {**base, **extra})

        return callback

    def _pcie_bytes(self, g: GpuSample) -> Observations:
        hw_id = gpu_attributes(g)["hw.id"]
        for direction, rate in (
            ("receive", g.pcie_rx_bytes_per_second),
            ("transmit", g.pcie_tx_bytes_per_second),
        ):
            if rate is not None:
                total = self._pcie.update(hw_id, direction, rate, g.timestamp)
                yield total, {"network.io.direction": direction}


def _seconds_per_output_token(s: LlmSession) -> float | None:
    if s.tokens_per_second:
        return 1.0 / s.tokens_per_second
    if s.eval_duration_ms is not None and s.completion_tokens:
        return s.eval_duration_ms / 1000.0 / s.completion_tokens
    return None


def _histogram_views() -> list[Any]:
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    return [
        View(
            instrument_name=name,
            aggregation=ExplicitBucketHistogramAggregation(boundaries=[float(b) for b in bounds]),
        )
        for name, bounds in (
            ("gen_ai.client.token.usage", TOKEN_USAGE_BUCKETS),
            ("gen_ai.client.operation.duration", OPERATION_DURATION_BUCKETS),
            ("gen_ai.server.time_to_first_token", TIME_TO_FIRST_TOKEN_BUCKETS),
            ("gen_ai.server.time_per_output_token", TIME_PER_OUTPUT_TOKEN_BUCKETS),
            ("gen_ai.client.operation.time_per_output_chunk", CHUNK_GAP_SECONDS_BUCKETS),
            ("gpm.llm.energy_per_token", JOULES_PER_TOKEN_BUCKETS),
        )
    ]


def _reporting_exporter(inner: Any, endpoint: str, interval: float, log: logging.Logger) -> Any:
    """Wrap the OTLP exporter so an outage is logged once, and its recovery once.

    Defined here because the SDK base class is only imported once an exporter starts.
    """
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class Reporting(MetricExporter):
        def __init__(self) -> None:
            super().__init__(
                preferred_temporality=inner._preferred_temporality,
                preferred_aggregation=inner._preferred_aggregation,
            )
            self.failing = False

        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            result: MetricExportResult = inner.export(
                metrics_data, timeout_millis=timeout_millis, **kwargs
            )
            if result is MetricExportResult.SUCCESS:
                if self.failing:
                    log.info("OTLP export to %s works again", endpoint)
                self.failing = False
            elif not self.failing:
                self.failing = True
                log.warning(
                    "OTLP export to %s failed (is the collector running?); retrying every %gs "
                    "and logging again only when it recovers",
                    endpoint,
                    interval,
                )
            return result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return bool(inner.force_flush(timeout_millis))

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            inner.shutdown()

    return Reporting()
