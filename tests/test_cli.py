"""The ``gpm`` command line: version, config, status, and clear failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import GpmProcess


def test_version(gpm_process: Callable[..., GpmProcess]) -> None:
    result = gpm_process().run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("gpm 0.")


def test_config_shows_values_and_sources(
    gpm_process: Callable[..., GpmProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[alerts]\ntemp_threshold_celsius = 80\n")
    result = gpm_process(GPM_API_PORT="18010").run("config", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"temp_threshold_celsius = 80.0  # {cfg}" in lines
    assert "port = 18010  # env GPM_API_PORT" in lines
    assert "memory_threshold_percent = 90.0  # default" in lines


def test_unknown_key_in_file_exits_2(
    gpm_process: Callable[..., GpmProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[api]\nprot = 1\n")
    result = gpm_process().run("status", "--config", str(cfg))
    assert result.returncode == 2
    assert "api.prot" in result.stderr and str(cfg) in result.stderr


def test_bad_usage_exits_2(gpm_process: Callable[..., GpmProcess]) -> None:
    result = gpm_process().run("status", "--bogus")
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_status_demo_json_has_the_contract_shape(gpm_process: Callable[..., GpmProcess]) -> None:
    result = gpm_process().run("status", "--demo", "--json")
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert snap["source"] == "simulated"
    gpu = snap["gpus"][0]
    for key in (
        "gpu_id",
        "uuid",
        "name",
        "simulated",
        "up",
        "utilization_percent",
        "memory_used_bytes",
        "memory_total_bytes",
        "temperature_celsius",
        "power_watts",
        "power_limit_watts",
        "fan_percent",
        "processes",
    ):
        assert key in gpu
    assert gpu["simulated"] is True
    proc = gpu["processes"][0]
    assert set(proc) >= {"pid", "name", "workload", "gpu_memory_bytes"}
    assert proc["workload"] in ("gaming", "llm_inference", "ml_training", "general_compute")


def test_status_table_without_gpu(gpm_process: Callable[..., GpmProcess], tmp_path: Path) -> None:
    result = gpm_process(GPM_GPU_NVML_LIBRARY=str(tmp_path / "nope.so")).run("status")
    assert result.returncode == 0, result.stderr
    assert "source: none" in result.stdout
    assert "No NVIDIA GPU found" in result.stdout + result.stderr


def test_sessions_without_database_says_what_to_do(gpm_process: Callable[..., GpmProcess]) -> None:
    result = gpm_process().run("sessions")
    assert result.returncode == 1
    assert "gpm run" in result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_sessions_bad_since_exits_2(gpm_process: Callable[..., GpmProcess]) -> None:
    result = gpm_process().run("sessions", "--since", "yesterday-ish")
    assert result.returncode == 2
    assert "--since" in result.stderr
