"""A real Prometheus server scrapes the exporter and answers PromQL with the known values."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpm.telemetry.prometheus import MetricsExporter
from tests.conftest import free_port, wait_for
from tests.telemetry.telemetry_data import live_state, session

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is not installed (apt-get install prometheus)"
)


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
    assert PROMETHEUS is not None
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: gpm\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter.port}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def query(base: str, promql: str) -> list[dict[str, object]] | None:
    """The instant-vector result, or None while Prometheus is not answering yet."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
    except (urllib.error.URLError, ConnectionError):
        return None
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def value_of(base: str, promql: str, timeout: float = 30.0) -> float:
    """Poll until the query returns a sample (Prometheus needs a scrape or two); its value."""
    result = wait_for(lambda: query(base, promql), timeout=timeout, interval=0.2, what=promql)
    assert len(result) == 1, result
    sample = result[0]["value"]
    assert isinstance(sample, list)
    return float(sample[1])


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
