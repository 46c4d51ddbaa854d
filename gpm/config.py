"""Loading the configuration: defaults (gpm.settings), then a TOML file, then
``GPM_<SECTION>_<KEY>`` environment variables.

Every value remembers where it came from, so that ``gpm config`` can show it and an error can
name the key, the value and the source. Unknown keys and bad values are errors.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from gpm.model import Workload
from gpm.net import is_loopback
from gpm.paths import default_config_path
from gpm.settings import ClassifierRule, Config

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT = "default"


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names key, value and source."""

    def __init__(self, key: str, value: object, source: str, problem: str) -> None:
        self.key, self.value, self.source, self.problem = key, value, source, problem
        super().__init__(f"{key} = {value!r} (from {source}): {problem}")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The effective config and, for each ``section.key``, where its value came from."""

    config: Config
    sources: dict[str, str]
    file: Path | None


# Each section's dataclass, from Config's own fields: a new section needs nothing here.
_SECTION_TYPES: dict[str, type] = {f.name: type(getattr(Config(), f.name)) for f in fields(Config)}


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
