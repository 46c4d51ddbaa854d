"""The /metrics exposition: names, values, bounds, formats and the HTTP endpoint."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from gpm.model import GpuProcess, GpuSample, MigDevice, Outcome, Snapshot
from gpm.state import LiveState
from gpm.telemetry.prometheus import MetricsExporter
from tests.telemetry.telemetry_data import live_state, session

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def series(text: str, openmetrics: bool = False) -> Series:
    """Every gpm_* sample as {(name, sorted labels): value}."""
    parse = parse_openmetrics if openmetrics else parse_text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parse(text)
        if family.name.startswith("gpm_")
        for s in family.samples
        if not s.name.endswith("_created")
    }


def value(all_series: Series, name: str, **labels: str) -> float | None:
    """The one sample of ``name`` whose labels include ``labels``."""
    hits = [v for (n, ls), v in all_series.items() if n == name and set(labels.items()) <= set(ls)]
    assert len(hits) <= 1, f"{name}{labels} matches {len(hits)} series"
    return hits[0] if hits else None


@pytest.fixture
def exporter() -> MetricsExporter:
    exp = MetricsExporter(live_state())
    exp.observe_session(session("qwen2:0.5b", ttft_ms=130.0, tokens_per_second=62.0))
    exp.observe_session(session("qwen2:0.5b", kind="load", ttft_ms=90_000.0))
    exp.observe_session(session("llama3:8b", outcome=Outcome.ERROR))
    return exp


def test_gpu_readings_are_exported_under_their_names(exporter: MetricsExporter) -> None:
    s = series(exporter.render().decode())
    assert value(s, "gpm_gpu_temperature_celsius", gpu_id="0") == 65.0
    assert value(s, "gpm_gpu_utilization_percent", gpu_id="1") == 41.0
    assert value(s, "gpm_gpu_memory_used_bytes", gpu_id="0") == 8 * 2**30
    assert value(s, "gpm_gpu_memory_total_bytes", gpu_id="0") == 24 * 2**30
    assert value(s, "gpm_gpu_power_watts", gpu_id="0") == 250.5
    assert value(s, "gpm_gpu_clock_mhz", gpu_id="0", clock="memory") == 10501
    assert value(s, "gpm_gpu_pcie_bytes_per_second", gpu_id="0", direction="rx") == 3e6
    assert value(s, "gpm_gpu_energy_joules_total", gpu_id="0") == 123_456.0
    assert value(s, "gpm_gpu_ecc_errors_total", gpu_id="0", type="corrected") == 3
    assert value(s, "gpm_gpu_throttle_reason", gpu_id="0", reason="sw_power_cap") == 1
    assert value(s, "gpm_gpu_throttle_reason", gpu_id="0", reason="hw_slowdown") == 0
    assert value(s, "gpm_gpu_up", gpu_id="0") == 1
    uuid = "GPU-00000000-aaaa-bbbb-cccc-dddddddddddd"
    assert value(s, "gpm_gpu_temperature_celsius", gpu_uuid=uuid) == 65.0
    assert value(s, "gpm_gpu_info", gpu_id="0", uuid=uuid, simulated="false") == 1


def test_a_lost_gpu_reports_down_and_no_invented_zeros(exporter: MetricsExporter) -> None:
    s = series(exporter.render().decode())
    assert value(s, "gpm_gpu_up", gpu_id="2") == 0
    lost = {name for (name, labels), _ in s.items() if ("gpu_id", "2") in labels}
    assert lost == {"gpm_gpu_up", "gpm_gpu_info"}


def test_processes_are_aggregated_by_workload_without_pids(exporter: MetricsExporter) -> None:
    s = series(exporter.render().decode())
    assert value(s, "gpm_gpu_processes", gpu_id="0", workload="llm_inference") == 1
    assert value(s, "gpm_gpu_processes", gpu_id="0", workload="unclassified") == 1
    assert value(s, "gpm_gpu_process_memory_bytes", gpu_id="0", workload="llm_inference") == (
        2 * 2**28
    )
    assert not any("pid" in dict(labels) for _, labels in s)


def test_mig_devices_are_series_of_their_own() -> None:
    """Each MIG device gets its own labelled series, and processes are counted per instance: a
    query over the GPU's series never adds instances up into nonsense."""
    gib = 2**30
    gpu = GpuSample(
        0, 1.0, uuid="GPU-a100", name="NVIDIA A100-SXM4-80GB",
        memory_used_bytes=30 * gib, memory_total_bytes=80 * gib,
        mig_devices=(
            MigDevice(0, "MIG-aaaa", "3g.40gb", 1, 0, 20 * gib, 40 * gib),
            MigDevice(1, "MIG-bbbb", "1g.10gb", 9, 0, 5 * gib, 10 * gib),
        ),
        processes=(GpuProcess(4242, gpu_memory_bytes=19 * gib, mig_index=0),
                   GpuProcess(5151, gpu_memory_bytes=4 * gib, mig_index=1)),
    )  # fmt: skip
    state = LiveState()
    state.snapshot = Snapshot(1.0, "nvml", (gpu,))
    s = series(MetricsExporter(state).render().decode())
    assert value(s, "gpm_gpu_memory_used_bytes", gpu_id="0") == 30 * gib
    used = "gpm_mig_memory_used_bytes"
    assert value(s, used, mig_instance="0", mig_uuid="MIG-aaaa", mig_profile="3g.40gb") == 20 * gib
    assert value(s, "gpm_mig_memory_total_bytes", mig_instance="1") == 10 * gib
    assert value(s, "gpm_mig_utilization_percent", mig_instance="0") is None  # unknown: no series
    assert value(s, "gpm_gpu_process_memory_bytes", mig_instance="1") == 4 * gib
    assert value(s, "gpm_gpu_processes", mig_instance="0") == 1


def test_energy_metrics(exporter: MetricsExporter) -> None:
    s = series(exporter.render().decode())
    q = "qwen2:0.5b"
    # Every session with energy counts, the load and the failed one too; J/token only for
    # completed generations (596 J / 298 tokens).
    assert value(s, "gpm_llm_energy_joules_total", model=q) == 2 * 596.0
    assert value(s, "gpm_llm_energy_per_token_joules_count", model=q) == 1
    assert value(s, "gpm_llm_energy_per_token_joules_sum", model=q) == pytest.approx(2.0)
    assert value(s, "gpm_workload_energy_joules_total", workload="llm_inference") == 3500.0
    assert value(s, "gpm_gpu_idle_energy_joules_total", gpu_id="1") == 900.0


def test_llm_metrics(exporter: MetricsExporter) -> None:
    s = series(exporter.render().decode())
    q = "qwen2:0.5b"
    # The load session is counted but stays out of the performance histograms.
    assert value(s, "gpm_llm_session_count", model=q) == 2
    assert value(s, "gpm_llm_sessions_total", model=q, outcome="completed") == 2
    assert value(s, "gpm_llm_sessions_total", model="llama3:8b", outcome="error") == 1
    assert value(s, "gpm_llm_time_to_first_token_seconds_count", model=q) == 1
    assert value(s, "gpm_llm_time_to_first_token_seconds_sum", model=q) == pytest.approx(0.13)
    assert value(s, "gpm_llm_time_to_first_token_seconds_bucket", model=q, le="0.1") == 0
    assert value(s, "gpm_llm_time_to_first_token_seconds_bucket", model=q, le="0.25") == 1
    assert value(s, "gpm_llm_tokens_per_second_bucket", model=q, le="+Inf") == 1
    assert value(s, "gpm_llm_tokens_per_request_sum", model=q, type="completion") == 298
    assert value(s, "gpm_llm_request_duration_seconds_sum", model=q) == pytest.approx(4.8)
    # Inter-token latency: one observation per gap between content chunks (20, 30, 40 ms).
    gap = "gpm_llm_time_per_output_chunk_seconds"
    assert value(s, f"{gap}_count", model=q) == 3
    assert value(s, f"{gap}_sum", model=q) == pytest.approx(0.09)
    assert value(s, f"{gap}_bucket", model=q, le="0.025") == 1
    assert value(s, f"{gap}_count", model="llama3:8b") is None
    # A failed request has no performance samples.
    assert value(s, "gpm_llm_tokens_per_second_count", model="llama3:8b") is None
    assert value(s, "gpm_llm_models_loaded") == 2
    assert value(s, "gpm_llm_model_vram_bytes", model="model1:7b") == 5 * 2**30
    assert value(s, "gpm_llm_backend_up") == 1


def test_health_metrics(exporter: MetricsExporter) -> None:
    s = series(exporter.render().decode())
    assert value(s, "gpm_poll_duration_seconds") == 0.012
    assert value(s, "gpm_last_successful_poll_timestamp_seconds") == 1_795_780_800.0
    assert value(s, "gpm_collection_errors_total", kind="nvml") == 2
    assert value(s, "gpm_polls_skipped_total") == 1
    text = exporter.render().decode()
    assert "\nprocess_cpu_seconds_total " in text
    assert "\npython_info{" in text


def test_prompt_text_never_reaches_the_exposition(exporter: MetricsExporter) -> None:
    assert b"secret prompt" not in exporter.render()
    assert b"secret prompt" not in exporter.render(openmetrics=True)


def test_empty_state_renders_without_gpu_series() -> None:
    s = series(MetricsExporter(LiveState()).render().decode())
    assert not any(name.startswith("gpm_gpu_") for name, _ in s)
    assert value(s, "gpm_llm_backend_up") is None  # proxy off: not polled, not "down"
    assert value(s, "gpm_llm_models_loaded") == 0


def test_model_labels_are_capped() -> None:
    exp = MetricsExporter(LiveState(), model_label_limit=3)
    for i in range(6):
        exp.observe_session(session(f"model-{i}"))
    exp.observe_session(session("model-0"))
    s = series(exp.render().decode())
    counts = {dict(ls)["model"]: v for (n, ls), v in s.items() if n == "gpm_llm_session_count"}
    assert counts == {"model-0": 2, "model-1": 1, "model-2": 1, "other": 3}


def test_our_encoder_matches_prometheus_client(exporter: MetricsExporter) -> None:
    """The fast renderer says exactly what prometheus_client's encoders say, in both formats."""
    reference = series(generate_latest(exporter.registry).decode())
    assert series(exporter.render().decode()) == reference
    assert series(exporter.render(openmetrics=True).decode(), openmetrics=True) == reference


def test_histogram_ignores_non_finite_values() -> None:
    exp = MetricsExporter(LiveState())
    exp.observe_session(session("m", tokens_per_second=float("nan")))
    s = series(exp.render().decode())
    assert value(s, "gpm_llm_tokens_per_second_count", model="m") is None
    assert value(s, "gpm_llm_time_to_first_token_seconds_count", model="m") == 1


def test_concurrent_sessions_are_all_counted() -> None:
    exp = MetricsExporter(LiveState())
    start = threading.Barrier(4)

    def feed() -> None:
        start.wait()
        for _ in range(250):
            exp.observe_session(session("m"))
            exp.render()

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = series(exp.render().decode())
    assert value(s, "gpm_llm_session_count", model="m") == 1000
    assert value(s, "gpm_llm_tokens_per_second_count", model="m") == 1000
    assert value(s, "gpm_llm_tokens_per_second_sum", model="m") == 62_000


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)"
)
def test_promtool_accepts_the_exposition() -> None:
    exp = MetricsExporter(live_state(), legacy_names=False)
    exp.observe_session(session("qwen2:0.5b", ttft_ms=130.0, tokens_per_second=62.0))
    exp.observe_session(session("llama3:8b", outcome=Outcome.ERROR))
    assert b"gpm_llm_time_to_first_token_ms" not in exp.render()
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=exp.render(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert result.stdout + result.stderr == b""


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)"
)
def test_legacy_ttft_ms_name_is_the_only_lint(exporter: MetricsExporter) -> None:
    """The original gpm_llm_time_to_first_token_ms stays by default, in milliseconds."""
    text = exporter.render().decode()
    s = series(text)
    model = "qwen2:0.5b"
    assert value(s, "gpm_llm_time_to_first_token_ms_count", model=model) == 1
    assert value(s, "gpm_llm_time_to_first_token_seconds_count", model=model) == 1
    assert value(s, "gpm_llm_time_to_first_token_ms_sum", model=model) == 130.0
    assert value(s, "gpm_llm_time_to_first_token_ms_bucket", model=model, le="250.0") == 1
    assert value(s, "gpm_llm_time_to_first_token_ms_bucket", model=model, le="100.0") == 0
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
    )
    complaints = (result.stdout + result.stderr).decode().strip().splitlines()
    assert complaints == [
        "gpm_llm_time_to_first_token_ms metric names should not contain abbreviated units"
    ]


@pytest.fixture
def served(exporter: MetricsExporter) -> Iterator[MetricsExporter]:
    exporter.port = 0
    exporter.start()
    try:
        yield exporter
    finally:
        exporter.stop()


def fetch(
    exp: MetricsExporter, path: str = "/metrics", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{exp.port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_http_serves_text_format_by_default(served: MetricsExporter) -> None:
    status, headers, body = fetch(served)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert value(series(body.decode()), "gpm_gpu_temperature_celsius", gpu_id="0") == 65.0


def test_http_negotiates_openmetrics(served: MetricsExporter) -> None:
    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    status, headers, body = fetch(served, Accept=accept, **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n")
    s = series(text, openmetrics=True)
    assert value(s, "gpm_gpu_temperature_celsius", gpu_id="0") == 65.0
    assert value(s, "gpm_llm_session_count", model="qwen2:0.5b") == 2


def test_http_unknown_path_is_404(served: MetricsExporter) -> None:
    status, _, body = fetch(served, "/nope")
    assert status == 404
    assert b"/metrics" in body


def test_stop_releases_the_port(exporter: MetricsExporter) -> None:
    exporter.port = 0
    exporter.start()
    port = exporter.port
    assert port != 0
    with pytest.raises(RuntimeError, match="already started"):
        exporter.start()
    exporter.stop()
    exporter.stop()
    again = MetricsExporter(LiveState(), port=port)
    again.start()  # the port is free again
    again.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
