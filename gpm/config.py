"""Configuration: defaults, then a TOML file, then ``GPM_<SECTION>_<KEY>`` environment variables.

Every value remembers where it came from, so that ``gpm config`` can show it and an error can
name the key, the value and the source. Unknown keys and bad values are errors.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gpm.model import Workload
from gpm.net import is_loopback
from gpm.paths import default_config_path, default_data_dir

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT = "default"


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names key, value and source."""

    def __init__(self, key: str, value: object, source: str, problem: str) -> None:
        self.key, self.value, self.source, self.problem = key, value, source, problem
        super().__init__(f"{key} = {value!r} (from {source}): {problem}")


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    poll_interval_secs: float = 2.0
    data_dir: Path = field(default_factory=default_data_dir)
    log_level: str = "info"
    host_name: str = ""  # this machine's name in the fleet; empty: its hostname
    url: str = ""  # where people reach this GPM's dashboard; empty: http://<host_name>:<api.port>


@dataclass(frozen=True, slots=True)
class GpuConfig:
    enable_nvml: bool = True
    fallback_to_nvidia_smi: bool = False
    nvml_library: str = ""
    simulated_gpus: int = 0
    nvidia_smi_path: str = "nvidia-smi"
    nvidia_smi_timeout_secs: float = 5.0
    nvidia_smi_xml_interval_secs: float = 30.0  # nvidia-smi -q -x (memory health, MIG); 0: off
    # NVML samples PCIe throughput for about 20 ms per direction: 40 ms of every GPU's read.
    pcie_throughput: bool = True


@dataclass(frozen=True, slots=True)
class OllamaConfig:
    enabled: bool = True
    enable_proxy: bool = True
    proxy_host: str = "127.0.0.1"
    proxy_port: int = 11434
    backend_url: str = "http://localhost:11435"
    api_port: int = 11434
    api_url: str = "http://localhost:11434"
    store_prompts: bool = False
    ps_poll_interval_secs: float = 5.0


@dataclass(frozen=True, slots=True)
class StorageConfig:
    retention_days: float = 7.0
    enable_parquet_archival: bool = True
    archive_dir: Path = field(default_factory=lambda: default_data_dir() / "archive")
    archive_interval_secs: float = 3600.0


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    enable_opentelemetry: bool = True
    otlp_endpoint: str = "http://localhost:4317"
    otlp_export_interval_secs: float = 15.0
    enable_prometheus: bool = True
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9090
    prometheus_legacy_names: bool = True  # also gpm_llm_time_to_first_token_ms


@dataclass(frozen=True, slots=True)
class ApiConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8010
    dashboard_port: int = 8011
    token: str = ""


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    temp_threshold_celsius: float = 85.0
    memory_threshold_percent: float = 90.0
    enable_desktop_notifications: bool = False
    webhook_url: str = ""
    hysteresis_celsius: float = 3.0
    hysteresis_percent: float = 3.0
    min_duration_secs: float = 10.0
    poll_stall_secs: float = 30.0


@dataclass(frozen=True, slots=True)
class EnergyConfig:
    price_per_kwh: float | None = None  # None: cost is not shown
    currency: str = "USD"
    grams_co2_per_kwh: float | None = None  # None: carbon is not shown
    idle_minutes: float = 15.0  # idle with memory held this long is reported as waste


@dataclass(frozen=True, slots=True)
class FleetConfig:
    prometheus_url: str = ""  # empty: no fleet view
    bearer_token: str = ""
    username: str = ""  # basic auth, with password
    password: str = ""
    cache_secs: float = 5.0
    timeout_secs: float = 5.0


@dataclass(frozen=True, slots=True)
class ClassifierRule:
    """A user rule: a regular expression on a process field mapped to a workload."""

    pattern: str
    workload: Workload
    field: str = "cmdline"  # "cmdline" or "name"


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    rules: tuple[ClassifierRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    service: ServiceConfig = field(default_factory=ServiceConfig)
    gpu: GpuConfig = field(default_factory=GpuConfig)
    ollama: OllamaConfig = field(default_factory=OllamaConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    @property
    def database_path(self) -> Path:
        return self.service.data_dir / "gpm.db"

    @property
    def host_name(self) -> str:
        """The name this GPM gives its machine on /metrics, OTLP and the API."""
        return self.service.host_name or socket.gethostname()

    @property
    def url(self) -> str:
        """This GPM's dashboard, as the fleet page links to it."""
        return self.service.url or f"http://{self.host_name}:{self.api.port}"


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The effective config and, for each ``section.key``, where its value came from."""

    config: Config
    sources: dict[str, str]
    file: Path | None


_SECTION_TYPES = {
    "service": ServiceConfig,
    "gpu": GpuConfig,
    "ollama": OllamaConfig,
    "storage": StorageConfig,
    "telemetry": TelemetryConfig,
    "api": ApiConfig,
    "alerts": AlertsConfig,
    "energy": EnergyConfig,
    "fleet": FleetConfig,
    "classifier": ClassifierConfig,
}


def _field_kind(section: str, key: str) -> type:
    hints = {"bool": bool, "int": int, "float": float, "float | None": float, "str": str}
    hints["Path"] = Path
    for f in fields(_SECTION_TYPES[section]):
        if f.name == key:
            return hints.get(str(f.type), str)
    raise KeyError(key)


def _expand(raw: str, env: Mapping[str, str]) -> Path:
    """``~`` and ``$VAR``/``${VAR}`` from the given environment (unknown vars stay as written)."""

    def var(m: re.Match[str]) -> str:
        return env.get(m.group(1) or m.group(2), m.group(0))

    text = re.sub(r"\$(?:\{(\w+)\}|(\w+))", var, raw)
    if text.startswith("~") and env.get("HOME"):
        text = env["HOME"] + text[1:]
    return Path(os.path.expanduser(text))


def _coerce(
    kind: type, raw: object, key: str, source: str, from_env: bool, env: Mapping[str, str]
) -> object:
    """Turn a TOML or environment value into the field's type, or raise ConfigError."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if from_env and isinstance(raw, str):
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        raise ConfigError(key, raw, source, "expected true or false")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if from_env and isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise ConfigError(key, raw, source, "expected a whole number")
    if kind is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if from_env and isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                pass
        raise ConfigError(key, raw, source, "expected a number")
    if not isinstance(raw, str):
        raise ConfigError(key, raw, source, "expected a string")
    if kind is Path:
        if not raw.strip():
            raise ConfigError(key, raw, source, "expected a path, got an empty string")
        return _expand(raw, env)
    return raw


# (key, lowest, highest, what the error says): numeric keys that must lie in a closed range.
_RANGES: tuple[tuple[str, float, float, str], ...] = (
    ("service.poll_interval_secs", 0.1, 3600, "must be between 0.1 and 3600 seconds"),
    ("gpu.simulated_gpus", 0, 64, "must be between 0 and 64"),
    ("gpu.nvidia_smi_timeout_secs", 0.1, 600, "must be between 0.1 and 600 seconds"),
    ("gpu.nvidia_smi_xml_interval_secs", 0, 86400, "must be between 0 (off) and 86400 seconds"),
    ("ollama.proxy_port", 1, 65535, "a port must be between 1 and 65535"),
    ("ollama.api_port", 1, 65535, "a port must be between 1 and 65535"),
    ("ollama.ps_poll_interval_secs", 0.1, 3600, "must be between 0.1 and 3600 seconds"),
    ("storage.retention_days", 0, 36500, "must be 0 or more (days)"),
    ("storage.archive_interval_secs", 1, 7 * 86400, "must be between 1 s and a week"),
    ("telemetry.metrics_port", 1, 65535, "a port must be between 1 and 65535"),
    ("telemetry.otlp_export_interval_secs", 0.1, 3600, "must be between 0.1 and 3600 seconds"),
    ("api.port", 1, 65535, "a port must be between 1 and 65535"),
    ("api.dashboard_port", 1, 65535, "a port must be between 1 and 65535"),
    ("alerts.temp_threshold_celsius", 1, 150, "must be between 1 and 150"),
    ("alerts.memory_threshold_percent", 1, 100, "must be between 1 and 100"),
    ("alerts.hysteresis_celsius", 0, 50, "must be between 0 and 50"),
    ("alerts.hysteresis_percent", 0, 50, "must be between 0 and 50"),
    ("alerts.min_duration_secs", 0, 86400, "must be between 0 and 86400 seconds"),
    ("alerts.poll_stall_secs", 1, 86400, "must be between 1 and 86400 seconds"),
    ("energy.price_per_kwh", 0, 1000, "must be between 0 and 1000 (per kWh)"),
    ("energy.grams_co2_per_kwh", 0, 5000, "must be between 0 and 5000 (grams per kWh)"),
    ("energy.idle_minutes", 0.1, 10080, "must be between 0.1 and 10080 minutes"),
    ("fleet.cache_secs", 0.5, 3600, "must be between 0.5 and 3600 seconds"),
    ("fleet.timeout_secs", 0.5, 120, "must be between 0.5 and 120 seconds"),
)
# URL keys, and whether an empty string (off) is allowed.
_URLS = (
    ("ollama.backend_url", False),
    ("ollama.api_url", False),
    ("telemetry.otlp_endpoint", False),
    ("alerts.webhook_url", True),
    ("service.url", True),
    ("fleet.prometheus_url", True),
)


def _validate(cfg: Config, src: Mapping[str, str]) -> None:
    def get(key: str) -> Any:
        section, name = key.split(".")
        return getattr(getattr(cfg, section), name)

    for key, low, high, problem in _RANGES:
        value = get(key)
        if value is not None and not low <= value <= high:
            raise ConfigError(key, value, src.get(key, DEFAULT), problem)
    for key, empty_ok in _URLS:
        value = get(key)
        if not (empty_ok and value == "") and not re.match(r"^https?://[^\s/]+", value):
            raise ConfigError(
                key, value, src.get(key, DEFAULT), "expected an http:// or https:// URL"
            )
    currency = cfg.energy.currency
    if not 1 <= len(currency.strip()) <= 8:
        raise ConfigError(
            "energy.currency", currency, src.get("energy.currency", DEFAULT),
            "expected a currency code or symbol of 1 to 8 characters, e.g. USD, EUR or €",
        )  # fmt: skip
    if cfg.service.log_level not in LOG_LEVELS:
        raise ConfigError(
            "service.log_level",
            cfg.service.log_level,
            src.get("service.log_level", DEFAULT),
            f"must be one of {', '.join(LOG_LEVELS)}",
        )
    if not is_loopback(cfg.api.host) and not cfg.api.token:
        raise ConfigError(
            "api.token",
            "",
            src.get("api.host", DEFAULT),
            f"api.host is {cfg.api.host!r}, not loopback: set a token "
            "(clients then send 'Authorization: Bearer <token>')",
        )


def _parse_rules(raw: object, source: str) -> tuple[ClassifierRule, ...]:
    if not isinstance(raw, list):
        raise ConfigError(
            "classifier.rules",
            raw,
            source,
            "expected a list of tables ([[classifier.rules]] with pattern, workload and field)",
        )
    rules = []
    for i, item in enumerate(raw):
        key = f"classifier.rules[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(key, item, source, "expected a table")
        unknown = set(item) - {"pattern", "workload", "field"}
        if unknown:
            raise ConfigError(
                f"{key}.{sorted(unknown)[0]}",
                item[sorted(unknown)[0]],
                source,
                "unknown key (expected pattern, workload, field)",
            )
        pattern, workload, fld = (
            item.get("pattern"),
            item.get("workload"),
            item.get("field", "cmdline"),
        )
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{key}.pattern", pattern, source, "expected a regular expression")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"{key}.pattern", pattern, source, f"invalid regular expression: {exc}"
            ) from None
        if workload not in {w.value for w in Workload}:
            raise ConfigError(
                f"{key}.workload",
                workload,
                source,
                f"must be one of {', '.join(w.value for w in Workload)}",
            )
        if fld not in ("cmdline", "name"):
            raise ConfigError(f"{key}.field", fld, source, "must be 'cmdline' or 'name'")
        rules.append(ClassifierRule(pattern=pattern, workload=Workload(workload), field=fld))
    return tuple(rules)


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Build the effective config; ``path`` wins over ``GPM_CONFIG`` and the default file."""
    env = os.environ if env is None else env
    values: dict[str, dict[str, object]] = {name: {} for name in _SECTION_TYPES}
    sources: dict[str, str] = {}

    file: Path | None
    if path is not None:
        file = Path(path).expanduser()
        required = True
    elif env.get("GPM_CONFIG"):
        file = Path(env["GPM_CONFIG"]).expanduser()
        required = True
    else:
        file = default_config_path()
        required = False

    if file is not None and (required or file.exists()):
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(
                "config file", str(file), "command line or GPM_CONFIG", "file not found"
            ) from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError("config file", str(file), str(file), f"cannot read: {exc}") from None
        _apply_file(data, str(file), values, sources, env)
    else:
        file = None

    _apply_env(env, values, sources)

    sections: dict[str, object] = {}
    for name, cls in _SECTION_TYPES.items():
        try:
            sections[name] = cls(**values[name])
        except TypeError as exc:  # pragma: no cover - guarded by key checks above
            raise ConfigError(name, values[name], "config", str(exc)) from None
    cfg = Config(**sections)  # type: ignore[arg-type]
    if "storage.archive_dir" not in sources and "service.data_dir" in sources:
        cfg = dataclasses.replace(
            cfg,
            storage=dataclasses.replace(cfg.storage, archive_dir=cfg.service.data_dir / "archive"),
        )
        sources["storage.archive_dir"] = "default (data_dir/archive)"
    _validate(cfg, sources)
    return LoadedConfig(config=cfg, sources=sources, file=file)


def _apply_file(
    data: Mapping[str, object],
    source: str,
    values: dict[str, dict[str, object]],
    sources: dict[str, str],
    env: Mapping[str, str],
) -> None:
    for section, body in data.items():
        if section not in _SECTION_TYPES:
            raise ConfigError(
                section, body, source, f"unknown section (known: {', '.join(_SECTION_TYPES)})"
            )
        if not isinstance(body, dict):
            raise ConfigError(section, body, source, "expected a [section] table")
        for key, raw in body.items():
            full = f"{section}.{key}"
            if section == "classifier":
                if key != "rules":
                    raise ConfigError(full, raw, source, "unknown key (known: rules)")
                values[section][key] = _parse_rules(raw, source)
            else:
                try:
                    kind = _field_kind(section, key)
                except KeyError:
                    known = ", ".join(f.name for f in fields(_SECTION_TYPES[section]))
                    raise ConfigError(full, raw, source, f"unknown key (known: {known})") from None
                values[section][key] = _coerce(kind, raw, full, source, False, env)
            sources[full] = source


def _apply_env(
    env: Mapping[str, str], values: dict[str, dict[str, object]], sources: dict[str, str]
) -> None:
    for name, raw in env.items():
        if not name.startswith("GPM_") or name == "GPM_CONFIG":
            continue
        rest = name[4:].lower()
        section = next((s for s in _SECTION_TYPES if rest.startswith(s + "_")), None)
        source = f"env {name}"
        if section is None:
            raise ConfigError(
                name,
                raw,
                source,
                f"unknown setting (expected GPM_<SECTION>_<KEY>, sections: "
                f"{', '.join(s.upper() for s in _SECTION_TYPES)})",
            )
        key = rest[len(section) + 1 :]
        full = f"{section}.{key}"
        if section == "classifier":
            raise ConfigError(
                full, raw, source, "classifier rules can only be set in the TOML file"
            )
        try:
            kind = _field_kind(section, key)
        except KeyError:
            raise ConfigError(full, raw, source, "unknown key") from None
        values[section][key] = _coerce(kind, raw, full, source, True, env)
        sources[full] = source


def describe(loaded: LoadedConfig) -> list[tuple[str, str, str]]:
    """Rows of (key, value as TOML, source) for every setting, for ``gpm config``."""
    rows = []
    for name, cls in _SECTION_TYPES.items():
        section = getattr(loaded.config, name)
        for f in fields(cls):
            key = f"{name}.{f.name}"
            value = getattr(section, f.name)
            if name == "classifier":
                shown = (
                    "["
                    + ", ".join(
                        f"{{pattern = {r.pattern!r}, workload = {r.workload.value!r}, "
                        f"field = {r.field!r}}}"
                        for r in value
                    )
                    + "]"
                )
            else:
                shown = _toml_value(value, secret=f.name in _SECRETS)
            rows.append((key, shown, loaded.sources.get(key, DEFAULT)))
    return rows


_SECRETS = frozenset({"token", "bearer_token", "password"})  # masked by ``gpm config``


def _toml_value(value: object, secret: bool = False) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if secret and text:
        return '"********"'
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
