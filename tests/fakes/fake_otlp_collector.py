"""A fake OpenTelemetry collector: a gRPC OTLP metrics receiver that keeps what it is sent.

It stands for the collector (an OpenTelemetry Collector, Grafana Alloy, ...) that GPM's OTLP
exporter pushes metrics to: the official opentelemetry-proto ``MetricsService``, served by
grpcio on a loopback port, so the exporter talks real OTLP/gRPC. tests/telemetry/test_otlp.py
starts one, points an ``OtlpExporter`` at it and waits for an export::

    server, collector = start_collector(port)
    ...
    metrics = wait_for(lambda: collector.metrics_with(EXPECTED), what="one full export")
    server.stop(grace=None)

Starting it late, on a port the exporter already uses, stands for a collector coming back.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)


class Collector(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Keeps every export request it is sent (``requests``, read under ``lock``)."""

    def __init__(self) -> None:
        self.requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.lock = threading.Lock()

    def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        with self.lock:
            self.requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def metrics(self) -> dict[str, Any]:
        """The newest export's metrics by name (cumulative: it holds everything so far)."""
        with self.lock:
            if not self.requests:
                return {}
            request = self.requests[-1]
        return {
            m.name: m
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }

    def metrics_with(self, names: Collection[str]) -> dict[str, Any] | None:
        """The newest export's metrics once every one of ``names`` is in it."""
        metrics = self.metrics()
        return metrics if set(names) <= metrics.keys() else None


def start_collector(port: int) -> tuple[grpc.Server, Collector]:
    """A collector listening on 127.0.0.1:``port``; stop the server with ``stop(grace=None)``."""
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        collector, server
    )
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    server.start()
    return server, collector
