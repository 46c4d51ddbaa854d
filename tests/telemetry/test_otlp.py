"""OTLP export over real gRPC to a fake collector on the official opentelemetry-proto service."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from gpm import __version__
from gpm.model import GpuSample, MigDevice, Outcome, Snapshot
from gpm.state import LiveState
from gpm.telemetry.otlp import (
    TIME_TO_FIRST_TOKEN_BUCKETS,
    TOKEN_USAGE_BUCKETS,
    OtlpExporter,
)
from tests.conftest import free_port, wait_for
from tests.fakes.fake_otlp_collector import Collector, start_collector
from tests.telemetry.telemetry_data import live_state, session

UUID0 = "GPU-00000000-aaaa-bbbb-cccc-dddddddddddd"


@pytest.fixture
def receiver() -> Iterator[tuple[int, Collector]]:
    port = free_port()
    server, rec = start_collector(port)
    yield port, rec
    server.stop(grace=None)


def attrs(kvs: Any) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in kvs:
        assert isinstance(kv, KeyValue)
        kind = kv.value.WhichOneof("value")
        assert kind is not None, kv
        out[kv.key] = getattr(kv.value, kind)
    return out


def points(metric: Any) -> list[Any]:
    return list(getattr(metric, metric.WhichOneof("data")).data_points)


def point(metric: Any, **want: object) -> Any:
    hits = [p for p in points(metric) if want.items() <= attrs(p.attributes).items()]
    assert len(hits) == 1, (metric.name, want, [attrs(p.attributes) for p in points(metric)])
    return hits[0]


def number(p: Any) -> float:
    return float(p.as_double if p.WhichOneof("value") == "as_double" else p.as_int)


EXPECTED = {
    "hw.gpu.utilization": "1",
    "hw.gpu.memory.utilization": "1",
    "hw.gpu.memory.usage": "By",
    "hw.gpu.memory.limit": "By",
    "hw.gpu.io": "By",
    "hw.temperature": "Cel",
    "hw.power": "W",
    "hw.energy": "J",
    "hw.errors": "{error}",
    "hw.status": "1",
    "hw.fan.speed_ratio": "1",
    "gen_ai.client.token.usage": "{token}",
    "gen_ai.client.operation.duration": "s",
    "gen_ai.server.time_to_first_token": "s",
    "gen_ai.server.time_per_output_token": "s",
    "gen_ai.client.operation.time_per_output_chunk": "s",
    "gpm.llm.energy": "J",
    "gpm.llm.energy_per_token": "J/{token}",
    "gpm.workload.energy": "J",
    "gpm.gpu.idle_energy": "J",
}


def test_exports_gpu_and_genai_metrics(receiver: tuple[int, Collector]) -> None:
    port, rec = receiver
    exp = OtlpExporter(
        live_state(), endpoint=f"http://127.0.0.1:{port}", interval=0.2, host_name="test-host"
    )
    exp.start()
    try:
        exp.observe_session(session("qwen2:0.5b", ttft_ms=250.0, tokens_per_second=50.0))
        exp.observe_session(session("qwen2:0.5b", kind="load", ttft_ms=90_000.0))
        exp.observe_session(session("qwen2:0.5b", outcome=Outcome.ERROR, duration_ms=100.0))
        exp.observe_session(
            session("nomic-embed-text", kind="embedding", endpoint="/api/embed", ttft_ms=None)
        )
        metrics = wait_for(
            lambda: rec.metrics_with(EXPECTED), timeout=20, what="every instrument in one export"
        )
    finally:
        exp.stop()

    with rec.lock:
        resource = attrs(rec.requests[-1].resource_metrics[0].resource.attributes)
    assert resource["service.name"] == "gpm"
    assert resource["service.version"] == __version__
    assert resource["host.name"] == "test-host"
    assert resource["service.instance.id"] == "test-host"  # the service passes a stable uuid
    assert {name: metrics[name].unit for name in EXPECTED} == EXPECTED

    gpu0 = {"hw.id": UUID0, "hw.type": "gpu", "hw.vendor": "nvidia"}
    assert number(point(metrics["hw.temperature"], **gpu0)) == 65.0
    assert attrs(point(metrics["hw.temperature"], **gpu0).attributes)["hw.model"] == (
        "NVIDIA GeForce RTX 4090"
    )
    util = metrics["hw.gpu.utilization"]
    assert number(point(util, **gpu0, **{"hw.gpu.task": "general"})) == pytest.approx(0.40)
    assert number(point(util, **gpu0, **{"hw.gpu.task": "decoder"})) == pytest.approx(0.05)
    assert number(point(metrics["hw.gpu.memory.usage"], **gpu0)) == 8 * 2**30
    assert number(point(metrics["hw.gpu.memory.limit"], **gpu0)) == 24 * 2**30
    assert number(point(metrics["hw.gpu.memory.utilization"], **gpu0)) == pytest.approx(1 / 3)
    assert metrics["hw.energy"].sum.is_monotonic
    assert number(point(metrics["hw.energy"], **gpu0)) == 123_456.0
    assert number(point(metrics["hw.errors"], **gpu0, **{"error.type": "corrected"})) == 3
    io = point(metrics["hw.gpu.io"], **gpu0, **{"network.io.direction": "receive"})
    assert number(io) == 0  # one snapshot: no time has passed over which to integrate
    # The lost GPU reports a failed status and no readings.
    assert number(point(metrics["hw.status"], **{"hw.id": "gpu2", "hw.state": "failed"})) == 1
    assert number(point(metrics["hw.status"], **{"hw.id": UUID0, "hw.state": "ok"})) == 1
    assert not [
        p for p in points(metrics["hw.temperature"]) if attrs(p.attributes)["hw.id"] == "gpu2"
    ]

    chat = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": "qwen2:0.5b",
    }
    usage = metrics["gen_ai.client.token.usage"]
    out = point(usage, **chat, **{"gen_ai.token.type": "output"})
    assert (out.count, out.sum) == (1, 298)
    assert list(out.explicit_bounds) == [float(b) for b in TOKEN_USAGE_BUCKETS]
    ttft = point(metrics["gen_ai.server.time_to_first_token"], **chat)
    assert (ttft.count, ttft.sum) == (1, pytest.approx(0.25))  # the load session is left out
    assert list(ttft.explicit_bounds) == [float(b) for b in TIME_TO_FIRST_TOKEN_BUCKETS]
    assert 300.0 in ttft.explicit_bounds  # room for cold starts
    tpot = point(metrics["gen_ai.server.time_per_output_token"], **chat)
    assert tpot.sum == pytest.approx(1 / 50)
    # Every gap between content chunks of the one completed stream, none of the others.
    gaps = point(metrics["gen_ai.client.operation.time_per_output_chunk"], **chat)
    assert (gaps.count, gaps.sum) == (3, pytest.approx(0.09))
    energy = point(metrics["gpm.llm.energy"], **chat)
    assert number(energy) == 2 * 596.0  # the completed and the failed session
    per_token = point(metrics["gpm.llm.energy_per_token"], **chat)
    assert (per_token.count, per_token.sum) == (1, pytest.approx(2.0))
    workload = point(metrics["gpm.workload.energy"], **{"gpm.workload": "llm_inference"})
    assert number(workload) == 3500.0
    assert number(point(metrics["gpm.gpu.idle_energy"], **gpu0)) == 1000.0
    duration = metrics["gen_ai.client.operation.duration"]
    assert point(duration, **chat, **{"error.type": "error"}).sum == pytest.approx(0.1)
    embed = point(duration, **{"gen_ai.operation.name": "embeddings"})
    assert attrs(embed.attributes)["gen_ai.request.model"] == "nomic-embed-text"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, pred: Callable[[logging.LogRecord], bool]) -> list[str]:
        return [r.getMessage() for r in list(self.records) if pred(r)]


@pytest.fixture
def sdk_log() -> Iterator[Records]:
    """Everything the SDK's OTLP exporter logs that gets past GPM's filter."""
    logger = logging.getLogger("opentelemetry.exporter.otlp.proto.grpc.exporter")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_collector_down_is_logged_once_then_recovery(sdk_log: Records) -> None:
    port = free_port()
    ours, log = Records(), logging.getLogger("test.gpm.otlp")
    log.addHandler(ours)
    log.setLevel(logging.INFO)
    exp = OtlpExporter(live_state(), endpoint=f"http://127.0.0.1:{port}", interval=0.2, logger=log)
    exp.start()
    server = None
    try:
        # Each failed export reconnects, which the SDK logs at debug: wait for several.
        wait_for(
            lambda: len(sdk_log.messages(lambda r: "Reinitializing" in r.msg)) >= 3,
            timeout=30,
            what="three failed exports",
        )
        warnings = ours.messages(lambda r: r.levelno >= logging.WARNING)
        assert len(warnings) == 1
        assert f"127.0.0.1:{port}" in warnings[0]
        assert sdk_log.messages(lambda r: r.levelno >= logging.WARNING) == []

        server, rec = start_collector(port)
        wait_for(lambda: rec.metrics(), timeout=30, what="export after the collector came up")
        wait_for(
            lambda: ours.messages(lambda r: "works again" in r.getMessage()),
            timeout=10,
            what="recovery logged",
        )
        assert len(ours.messages(lambda r: r.levelno >= logging.WARNING)) == 1
    finally:
        exp.stop()
        if server is not None:
            server.stop(grace=None)
        log.removeHandler(ours)


def test_stop_is_bounded_when_the_collector_hangs() -> None:
    """A collector that accepts TCP but never answers would hold the final export for 10 s."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes handshakes; nobody ever answers
        port = silent.getsockname()[1]
        exp = OtlpExporter(
            live_state(), endpoint=f"http://127.0.0.1:{port}", interval=30, stop_timeout=1.0
        )
        exp.start()
        began = time.monotonic()
        exp.stop()
        assert time.monotonic() - began < 3.0
        exp.stop()  # twice is harmless


def test_sessions_before_start_or_after_stop_are_dropped_quietly() -> None:
    exp = OtlpExporter(live_state(), endpoint="http://127.0.0.1:9", interval=1)
    exp.observe_session(session())
    exp.stop()
    with pytest.raises(ValueError, match="interval"):
        OtlpExporter(live_state(), endpoint="http://127.0.0.1:9", interval=0)


def test_pcie_rates_integrate_into_byte_totals() -> None:
    from gpm.telemetry.otlp_hardware import PcieTotals

    totals = PcieTotals()
    assert totals.update("gpu0", "receive", 100.0, 10.0) == 0
    assert totals.update("gpu0", "receive", 100.0, 12.0) == 200
    assert totals.update("gpu0", "receive", 999.0, 12.0) == 200  # same snapshot read twice
    assert totals.update("gpu0", "receive", 50.0, 13.0) == 250
    assert totals.update("gpu0", "transmit", 50.0, 13.0) == 0


def test_mig_devices_are_hardware_of_their_own(receiver: tuple[int, Collector]) -> None:
    """Each MIG device's memory goes out under its own ``hw.id``, with its GPU as ``hw.parent``;
    the GPU's own point stays the GPU's."""
    gib = 2**30
    gpu = GpuSample(
        0, time.time(), uuid="GPU-a100", name="NVIDIA A100-SXM4-80GB",
        memory_used_bytes=30 * gib, memory_total_bytes=80 * gib,
        mig_devices=(MigDevice(0, "MIG-aaaa", "3g.40gb", 1, 0, 20 * gib, 40 * gib),
                     MigDevice(1, None, None, 9, 0, None, 10 * gib)),
    )  # fmt: skip
    port, rec = receiver
    state = LiveState()
    state.snapshot = Snapshot(gpu.timestamp, "nvml", (gpu,))
    exp = OtlpExporter(state, endpoint=f"http://127.0.0.1:{port}", interval=0.2)
    exp.start()
    try:
        want = {"hw.gpu.memory.usage": "By", "hw.gpu.memory.limit": "By"}
        metrics = wait_for(lambda: rec.metrics_with(want), timeout=20, what="memory metrics")
    finally:
        exp.stop()
    usage, limit = metrics["hw.gpu.memory.usage"], metrics["hw.gpu.memory.limit"]
    assert number(point(usage, **{"hw.id": "GPU-a100"})) == 30 * gib
    mig0 = point(usage, **{"hw.id": "MIG-aaaa", "hw.parent": "GPU-a100"})
    assert number(mig0) == 20 * gib
    assert attrs(mig0.attributes)["hw.model"] == "3g.40gb"
    assert number(point(limit, **{"hw.id": "GPU-a100/mig1", "hw.name": "gpu0/mig1"})) == 10 * gib
    assert [attrs(p.attributes)["hw.id"] for p in points(usage)] == ["GPU-a100", "MIG-aaaa"]
