"""A real Prometheus server scrapes the exporter and answers PromQL with the known values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpm.telemetry.prometheus import MetricsExporter
from tests.fakes.prometheus_server import needs_prometheus, query, run_prometheus, value_of
from tests.telemetry.telemetry_data import live_state, session

pytestmark = needs_prometheus


@pytest.fixture
def exporter() -> Iterator[MetricsExporter]:
    exp = MetricsExporter(live_state(), port=0)
    for _ in range(3):
        exp.observe_session(session("qwen2:0.5b"))
    exp.start()
    yield exp
    exp.stop()


@pytest.fixture
def prometheus(tmp_path: Path, exporter: MetricsExporter) -> Iterator[str]:
    with run_prometheus(tmp_path, f"127.0.0.1:{exporter.port}") as base:
        yield base


def test_prometheus_scrapes_known_values(prometheus: str) -> None:
    assert value_of(prometheus, 'gpm_gpu_temperature_celsius{gpu_id="0"}', timeout=60) == 65
    assert value_of(prometheus, 'up{job="gpm"}') == 1
    checks = {
        'gpm_gpu_utilization_percent{gpu_id="1"}': 41,
        'gpm_gpu_memory_used_bytes{gpu_id="0"}': 8 * 2**30,
        'gpm_gpu_up{gpu_id="2"}': 0,
        'gpm_gpu_energy_joules_total{gpu_id="0"}': 123_456,
        'gpm_llm_session_count{model="qwen2:0.5b"}': 3,
        'gpm_llm_sessions_total{model="qwen2:0.5b",outcome="completed"}': 3,
        'gpm_llm_time_to_first_token_seconds_count{model="qwen2:0.5b"}': 3,
        'gpm_llm_tokens_per_second_bucket{model="qwen2:0.5b",le="75.0"}': 3,
        "gpm_llm_models_loaded": 2,
        "gpm_polls_skipped_total": 1,
        'gpm_collection_errors_total{kind="nvml"}': 2,
    }
    for promql, expected in checks.items():
        assert value_of(prometheus, promql) == expected, promql
    # Only the readable GPUs have a temperature series: nothing invented for the lost one.
    assert query(prometheus, 'gpm_gpu_temperature_celsius{gpu_id="2"}') == []
