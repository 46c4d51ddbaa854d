"""GPM's settings: each section of the config file as a frozen dataclass with its defaults.

What the settings are lives here; how they are read (file, environment, validation) is
gpm.config. The sections' field names and types are the config file's keys and value types.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from gpm.model import Workload
from gpm.paths import default_data_dir


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
