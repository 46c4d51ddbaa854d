"""Config precedence (defaults -> TOML -> env) and every error path."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpm.config import ConfigError, describe, load_config
from gpm.model import Workload

FULL_EXAMPLE = """
[service]
poll_interval_secs = 2
data_dir = "~/.local/share/gpm"
log_level = "info"
[gpu]
enable_nvml = true
fallback_to_nvidia_smi = false
nvml_library = ""
simulated_gpus = 0
[ollama]
enabled = true
enable_proxy = true
proxy_host = "127.0.0.1"
proxy_port = 11434
backend_url = "http://localhost:11435"
api_port = 11434
api_url = "http://localhost:11434"
store_prompts = false
[storage]
retention_days = 7
enable_parquet_archival = true
archive_dir = "~/.local/share/gpm/archive"
[telemetry]
enable_opentelemetry = true
otlp_endpoint = "http://localhost:4317"
enable_prometheus = true
metrics_host = "127.0.0.1"
metrics_port = 9090
[api]
host = "127.0.0.1"
port = 8010
dashboard_port = 8011
token = ""
[alerts]
temp_threshold_celsius = 85.0
memory_threshold_percent = 90.0
enable_desktop_notifications = false
webhook_url = ""
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_file(tmp_path: Path) -> None:
    loaded = load_config(env={"XDG_CONFIG_HOME": str(tmp_path)})
    cfg = loaded.config
    assert cfg.service.poll_interval_secs == 2.0
    assert cfg.api.port == 8010 and cfg.api.dashboard_port == 8011
    assert cfg.ollama.proxy_port == 11434 and cfg.ollama.backend_url == "http://localhost:11435"
    assert cfg.telemetry.metrics_port == 9090
    assert cfg.alerts.temp_threshold_celsius == 85.0
    assert cfg.ollama.store_prompts is False
    assert cfg.gpu.nvidia_smi_xml_interval_secs == 30.0
    assert all(v == "default" for _, _, v in describe(loaded))


def test_readme_example_is_accepted_and_paths_expand(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, FULL_EXAMPLE), env={"HOME": str(tmp_path)})
    assert loaded.config.service.data_dir == tmp_path / ".local/share/gpm"
    assert loaded.config.storage.archive_dir == tmp_path / ".local/share/gpm/archive"
    assert loaded.sources["api.port"] == str(tmp_path / "config.toml")


def test_env_overrides_file_and_vars_expand(tmp_path: Path) -> None:
    path = write(tmp_path, "[service]\npoll_interval_secs = 3\n[api]\nport = 9000\n")
    env = {
        "GPM_SERVICE_POLL_INTERVAL_SECS": "5",
        "GPM_SERVICE_DATA_DIR": "$DATA/gpm",
        "GPM_GPU_ENABLE_NVML": "false",
        "GPM_GPU_NVIDIA_SMI_XML_INTERVAL_SECS": "0",  # 0 (off) is allowed
        "DATA": str(tmp_path),
    }
    loaded = load_config(path, env=env)
    cfg = loaded.config
    assert cfg.service.poll_interval_secs == 5.0
    assert cfg.api.port == 9000
    assert cfg.gpu.enable_nvml is False
    assert cfg.gpu.nvidia_smi_xml_interval_secs == 0.0
    assert cfg.service.data_dir == tmp_path / "gpm"
    assert cfg.storage.archive_dir == tmp_path / "gpm" / "archive"  # follows data_dir
    assert loaded.sources["service.poll_interval_secs"] == "env GPM_SERVICE_POLL_INTERVAL_SECS"
    assert loaded.sources["api.port"] == str(path)


def test_gpm_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[api]\nport = 9100\n")
    assert load_config(env={"GPM_CONFIG": str(path)}).config.api.port == 9100
    assert (
        load_config(
            write(tmp_path, "[api]\nport = 9200\n"), env={"GPM_CONFIG": "/nope"}
        ).config.api.port
        == 9200
    )


def test_classifier_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[classifier.rules]]\npattern = "my-trainer"\nworkload = "ml_training"\n'
        '[[classifier.rules]]\npattern = "^blender$"\nfield = "name"\n'
        'workload = "general_compute"\n',
    )
    rules = load_config(path, env={}).config.classifier.rules
    assert [(r.pattern, r.workload, r.field) for r in rules] == [
        ("my-trainer", Workload.ML_TRAINING, "cmdline"),
        ("^blender$", Workload.GENERAL_COMPUTE, "name"),
    ]


@pytest.mark.parametrize(
    ("toml", "env", "key", "fragment"),
    [
        ("[service]\npoll_interval_secs = -1\n", {}, "service.poll_interval_secs", "between"),
        ("[service]\npoll_interval_secs = 'fast'\n", {}, "service.poll_interval_secs", "number"),
        ("[service]\nlog_level = 'loud'\n", {}, "service.log_level", "one of"),
        ("[service]\nbogus = 1\n", {}, "service.bogus", "unknown key"),
        ("[nonsense]\nx = 1\n", {}, "nonsense", "unknown section"),
        ("[api]\nport = 70000\n", {}, "api.port", "between 1 and 65535"),
        ("[api]\nport = true\n", {}, "api.port", "whole number"),
        ("[gpu]\nenable_nvml = 'yes'\n", {}, "gpu.enable_nvml", "true or false"),
        (
            "[gpu]\nnvidia_smi_xml_interval_secs = -1\n",
            {},
            "gpu.nvidia_smi_xml_interval_secs",
            "between 0 (off) and 86400",
        ),
        ("[ollama]\nbackend_url = 'localhost:11435'\n", {}, "ollama.backend_url", "URL"),
        ("[alerts]\nwebhook_url = 'ftp://x'\n", {}, "alerts.webhook_url", "URL"),
        (
            "[alerts]\nmemory_threshold_percent = 150\n",
            {},
            "alerts.memory_threshold_percent",
            "100",
        ),
        ("[storage]\nretention_days = -2\n", {}, "storage.retention_days", "0 or more"),
        ("[api]\nhost = '0.0.0.0'\n", {}, "api.token", "not loopback"),
        (
            "[[classifier.rules]]\npattern = '('\nworkload = 'gaming'\n",
            {},
            "classifier.rules[0].pattern",
            "invalid regular expression",
        ),
        (
            "[[classifier.rules]]\npattern = 'x'\nworkload = 'mining'\n",
            {},
            "classifier.rules[0].workload",
            "one of",
        ),
        ("", {"GPM_API_PORT": "eighty"}, "api.port", "whole number"),
        ("[energy]\nprice_per_kwh = -0.3\n", {}, "energy.price_per_kwh", "between 0 and 1000"),
        ("[energy]\ncurrency = ''\n", {}, "energy.currency", "1 to 8 characters"),
        ("", {"GPM_ENERGY_IDLE_MINUTES": "soon"}, "energy.idle_minutes", "a number"),
        ("", {"GPM_API_NOPE": "1"}, "api.nope", "unknown key"),
        ("", {"GPM_WHATEVER": "1"}, "GPM_WHATEVER", "unknown setting"),
        ("", {"GPM_GPU_ENABLE_NVML": "maybe"}, "gpu.enable_nvml", "true or false"),
    ],
)
def test_bad_values_name_key_value_and_source(
    tmp_path: Path, toml: str, env: dict[str, str], key: str, fragment: str
) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    err = info.value
    assert err.key == key
    assert fragment in str(err)
    expected_source = f"env {next(iter(env))}" if env else str(path)
    assert err.source == expected_source
    assert expected_source in str(err)


def test_unreadable_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(write(tmp_path, "[service\n"), env={})
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml", env={})


def test_token_is_masked_in_describe(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, "[api]\nhost = '0.0.0.0'\ntoken = 's3cret'\n"), env={})
    rows = {k: v for k, v, _ in describe(loaded)}
    assert rows["api.token"] == '"********"'
    assert "s3cret" not in repr(rows)


def test_energy_prices_are_optional(tmp_path: Path) -> None:
    default = load_config(write(tmp_path, ""), env={}).config.energy
    assert (default.price_per_kwh, default.grams_co2_per_kwh, default.currency) == (
        None,
        None,
        "USD",
    )
    set_ = load_config(
        write(tmp_path, "[energy]\nprice_per_kwh = 0.30\ncurrency = 'EUR'\n"),
        env={"GPM_ENERGY_GRAMS_CO2_PER_KWH": "380"},
    ).config.energy
    assert (set_.price_per_kwh, set_.currency, set_.grams_co2_per_kwh) == (0.30, "EUR", 380.0)
