"""Telemetry sinks: Prometheus ``/metrics`` and OpenTelemetry OTLP export.

Import the submodules directly; :mod:`gpm.telemetry.otlp` loads the OpenTelemetry SDK only when
an exporter starts.
"""
