"""The shipped Grafana dashboard and Prometheus alert rules match what the exporter exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpm.telemetry.prometheus import MetricsExporter
from tests.telemetry.telemetry_data import live_state, session

GRAFANA = Path(__file__).resolve().parents[2] / "docs" / "grafana"
DASHBOARD = GRAFANA / "gpm-dashboard.json"
FLEET = GRAFANA / "gpm-fleet.json"
SELECTOR = re.compile(r"\b((?:gpm|process|python)_[A-Za-z0-9_]*)(\{[^}]*\})?")
RULES = GRAFANA / "gpm-alerts.rules.yml"
OUR_PREFIXES = ("gpm_", "process_", "python_")
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)"
)


def exposed_names() -> set[str]:
    """Every series name a fully populated exporter exposes (histogram suffixes included)."""
    exp = MetricsExporter(live_state())
    exp.observe_session(session())
    return {
        s.name
        for family in text_string_to_metric_families(exp.render().decode())
        for s in family.samples
    }


def referenced_names(expr: str) -> set[str]:
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return {w for w in words if w.startswith(OUR_PREFIXES)}


def dashboard_exprs(node: Any) -> Iterator[str]:
    """Every PromQL string in the dashboard: panel targets and template variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            promql = key in ("expr", "definition") or (key == "query" and "(" in str(value))
            if promql and isinstance(value, str):
                yield value
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


def test_dashboard_only_queries_exposed_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = list(dashboard_exprs(dashboard))
    assert len(exprs) > 20
    names = exposed_names()
    used = set().union(*(referenced_names(e) for e in exprs))
    assert used - names == set()
    # The dashboard shows every GPU metric family, not just a few.
    gpu_families = {n for n in names if n.startswith("gpm_gpu_")}
    assert (
        gpu_families
        - used
        - {"gpm_gpu_info", "gpm_gpu_memory_free_bytes", "gpm_gpu_memory_utilization_percent"}
        == set()
    )


@pytest.mark.parametrize("path", [DASHBOARD, FLEET], ids=["host", "fleet"])
def test_dashboard_panels_have_unique_ids_and_a_datasource(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"  # imports without edits
    for p in dashboard["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"], p["title"]


def test_every_host_dashboard_query_filters_by_instance() -> None:
    """On a fleet, every series the host dashboard draws is one of the chosen hosts'."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = [v["name"] for v in dashboard["templating"]["list"]]
    assert variables.index("host") < variables.index("instance")  # host picks the instances
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for expr in exprs:
        for name, selector in SELECTOR.findall(expr):
            assert 'instance=~"$instance"' in selector, f"{name} in {expr}"
        for by in re.findall(r"by \(([^)]*)\)", expr):
            assert "instance" in by, expr  # hosts are never summed together


def test_fleet_dashboard_filters_by_host_and_queries_exposed_metrics() -> None:
    fleet = json.loads(FLEET.read_text())
    exprs = list(dashboard_exprs(fleet))
    targets = [t["expr"] for p in fleet["panels"] for t in p["targets"]]
    assert len(targets) >= 10
    assert all("$host" in e for e in targets)
    used = set().union(*(referenced_names(e) for e in exprs))
    assert used - exposed_names() == set()
    assert {"gpm_host_info", "gpm_gpu_processes", "gpm_llm_energy_joules_total"} <= used


def test_alert_rules_only_query_exposed_metrics() -> None:
    exprs = re.findall(r"expr: \|?\n?((?:.+\n)+?)\s+for:", RULES.read_text())
    assert len(exprs) == 7
    assert set().union(*(referenced_names(e) for e in exprs)) - exposed_names() == set()


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'gpm_host_info{{instance="box",host="gpu-box",version="0.2.0"}}'
        values: '1x1500'
      - series: 'gpm_gpu_temperature_celsius{{instance="box",gpu_id="0",gpu_name="RTX"}}'
        values: '70 88 88 88 88'
      - series: 'gpm_gpu_up{{instance="box",gpu_id="1"}}'
        values: '1 0 0 0 0'
      - series: 'gpm_gpu_memory_used_bytes{{instance="box",gpu_id="0"}}'
        values: '95x10'
      - series: 'gpm_gpu_memory_total_bytes{{instance="box",gpu_id="0"}}'
        values: '100x10'
      - series: 'gpm_last_successful_poll_timestamp_seconds{{instance="box"}}'
        values: '0 60 60 60 60 60 60'
    alert_rule_test:
      - eval_time: 2m
        alertname: GpmGpuHot
        exp_alerts: []
      - eval_time: 3m
        alertname: GpmGpuHot
        exp_alerts:
          - exp_labels: {{severity: warning, instance: box, host: gpu-box, gpu_id: "0",
                          gpu_name: RTX}}
      - eval_time: 2m
        alertname: GpmGpuDown
        exp_alerts:
          - exp_labels: {{severity: critical, instance: box, host: gpu-box, gpu_id: "1"}}
      - eval_time: 6m
        alertname: GpmGpuMemoryNearlyFull
        exp_alerts:
          - exp_labels: {{severity: warning, instance: box, host: gpu-box, gpu_id: "0"}}
      - eval_time: 1m
        alertname: GpmPollStalled
        exp_alerts: []
      - eval_time: 3m
        alertname: GpmPollStalled
        exp_alerts:
          - exp_labels: {{severity: critical, instance: box, host: gpu-box}}
  - interval: 1m
    input_series:  # 10 fast answers a minute for a day, then an hour of slow ones
      - series: 'gpm_host_info{{instance="box",host="gpu-box",version="0.2.0"}}'
        values: '1x1500'
      - series: 'gpm_llm_time_to_first_token_seconds_bucket{{instance="box",model="m",le="0.25"}}'
        values: '0+10x1400 14000x60'
      - series: 'gpm_llm_time_to_first_token_seconds_bucket{{instance="box",model="m",le="5.0"}}'
        values: '0+10x1460'
      - series: 'gpm_llm_time_to_first_token_seconds_bucket{{instance="box",model="m",le="+Inf"}}'
        values: '0+10x1460'
      - series: 'gpm_llm_time_to_first_token_seconds_count{{instance="box",model="m"}}'
        values: '0+10x1460'
    alert_rule_test:
      - eval_time: 1390m
        alertname: GpmLlmTimeToFirstTokenRegression
        exp_alerts: []
      - eval_time: 1450m
        alertname: GpmLlmTimeToFirstTokenRegression
        exp_alerts:
          - exp_labels: {{severity: warning, instance: box, host: gpu-box, model: m}}
  - interval: 1m
    input_series:  # the fleet: box2 stops answering after 2 minutes; box's GPU 0 idles with
      - series: 'up{{instance="box2",job="gpm"}}'  # memory held for 40 minutes, GPU 1 works
        values: '1 1 0x10'
      - series: 'gpm_host_info{{instance="box2",job="gpm",host="other-box"}}'
        values: '1 1'
      - series: 'gpm_host_info{{instance="box",host="gpu-box"}}'
        values: '1x45'
      - series: 'gpm_gpu_utilization_percent{{instance="box",gpu_id="0"}}'
        values: '2x45'
      - series: 'gpm_gpu_processes{{instance="box",gpu_id="0",workload="llm_inference"}}'
        values: '1x45'
      - series: 'gpm_gpu_utilization_percent{{instance="box",gpu_id="1"}}'
        values: '90x45'
      - series: 'gpm_gpu_processes{{instance="box",gpu_id="1",workload="ml_training"}}'
        values: '1x45'
    alert_rule_test:
      - eval_time: 3m
        alertname: GpmHostDown
        exp_alerts: []
      - eval_time: 5m
        alertname: GpmHostDown
        exp_alerts:
          - exp_labels: {{severity: critical, instance: box2, job: gpm, host: other-box}}
      - eval_time: 20m
        alertname: GpmGpuIdleWithMemoryHeld
        exp_alerts: []
      - eval_time: 40m
        alertname: GpmGpuIdleWithMemoryHeld
        exp_alerts:
          - exp_labels: {{severity: warning, instance: box, host: gpu-box, gpu_id: "0"}}
"""


def without_annotations(rules: str) -> str:
    """The rules minus their annotation blocks, so the unit tests need not repeat the prose."""
    kept, skipping = [], False
    for line in rules.splitlines():
        indent = len(line) - len(line.lstrip())
        if line.strip() == "annotations:":
            skipping, block_indent = True, indent
            continue
        if skipping and (not line.strip() or indent > block_indent):
            continue
        skipping = False
        kept.append(line)
    return "\n".join(kept) + "\n"


@needs_promtool
def test_alerts_fire_on_matching_series(tmp_path: Path) -> None:
    """promtool's rule unit tests: each alert fires when, and only when, it should."""
    rules = tmp_path / "rules.yml"
    rules.write_text(without_annotations(RULES.read_text()))
    spec = tmp_path / "rules_test.yml"
    spec.write_text(RULE_TESTS.format(rules=json.dumps(str(rules))))
    result = subprocess.run(
        ["promtool", "test", "rules", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
