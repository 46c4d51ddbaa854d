"""Every GPU reading, declared once.

A reading's entry says what it is (name, unit, help, integer or not, gauge or counter), how
Prometheus and OpenTelemetry name it, and whether charts keep it in the rollups. The model
(:class:`gpm.model.GpuSample`), the SQLite columns and their migration, the JSON view and its
pydantic schema, the Prometheus and OTLP exporters and the chart rollups all follow from this
table, so adding a reading means adding a line here and reading it in a GPU source.

Readings that need code keep it, next to the code that exports them: throttle reasons and
processes (lists, not numbers), PCIe byte totals in OTLP (integrated from the sampled rates in
``gpm/telemetry/otlp.py``), and GPU state (``up``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PromFamily:
    """A Prometheus metric family; several readings can share one, told apart by a label."""

    name: str
    help: str = ""  # empty: the help of the family's one reading
    label: str | None = None  # the label that tells the family's readings apart
    counter: bool = False


@dataclass(frozen=True, slots=True)
class OtelInstrument:
    """An OpenTelemetry instrument (``kind``: gauge, updown or counter), maybe shared."""

    name: str
    unit: str
    help: str
    kind: str = "gauge"


@dataclass(frozen=True, slots=True)
class Reading:
    """One GPU reading.

    ``name`` is the GpuSample attribute, the SQLite column and the JSON key. ``prom_label`` is this
    reading's value of its family's label; ``otel_attributes`` its attributes on a shared
    instrument, ``otel_scale`` what turns the reading into the instrument's unit (percent -> 1).
    A reading with ``sql`` is derived from others, never stored: the expression computes it from
    a ``gpu_metrics`` row, and the model has a property of the same name.
    """

    name: str
    unit: str
    help: str
    integer: bool = False
    prom: PromFamily | None = None
    prom_label: str | None = None
    otel: OtelInstrument | None = None
    otel_attributes: dict[str, str] = field(default_factory=dict)
    otel_scale: float = 1.0
    charted: bool = False  # kept in the chart rollups; offered by /api/chart
    digits: int | None = None  # decimals in JSON, where a computed value has noise beyond them
    sql: str | None = None

    @property
    def stored(self) -> bool:
        return self.sql is None

    @property
    def sql_type(self) -> str:
        return "INTEGER" if self.integer else "REAL"


UTILIZATION = OtelInstrument(
    "hw.gpu.utilization", "1", "Fraction of time the GPU spent on each task."
)
TEMPERATURE = OtelInstrument(
    "hw.temperature", "Cel", "GPU temperature (the core, unless hw.sensor_location says otherwise)."
)
CLOCK = PromFamily("gpm_gpu_clock_mhz", "Current clock frequency.", label="clock")
PCIE = PromFamily("gpm_gpu_pcie_bytes_per_second", "PCIe throughput.", label="direction")
ECC = PromFamily(
    "gpm_gpu_ecc_errors", "ECC errors since the driver was loaded.", label="type", counter=True
)
ECC_LIFETIME = PromFamily(
    "gpm_gpu_ecc_errors_lifetime",
    "ECC errors over the GPU's life (NVML's aggregate counts, kept across driver reloads).",
    label="type",
    counter=True,
)
REMAPPED_ROWS = PromFamily(
    "gpm_gpu_remapped_rows", "Memory rows remapped to spares, by the error that caused it.", "type"
)
RETIRED_PAGES = PromFamily(
    "gpm_gpu_retired_pages", "Memory pages retired (GPUs before Ampere), by cause.", "cause"
)
NVLINK_LINKS = PromFamily("gpm_gpu_nvlink_links", "NVLink links, by state.", label="state")
NVLINK_ERRORS = PromFamily(
    "gpm_gpu_nvlink_errors", "NVLink errors over all links, by kind.", label="type", counter=True
)
ECC_OTEL = OtelInstrument(
    "hw.errors", "{error}", "ECC errors since the driver was loaded.", kind="counter"
)

READINGS: tuple[Reading, ...] = (
    Reading(
        "utilization_percent", "%", "GPU (SM) utilization.",
        prom=PromFamily("gpm_gpu_utilization_percent"),
        otel=UTILIZATION, otel_attributes={"hw.gpu.task": "general"}, otel_scale=0.01,
        charted=True,
    ),
    Reading(
        "memory_percent", "%", "GPU memory in use, percent of its size.",
        otel=OtelInstrument("hw.gpu.memory.utilization", "1", "Fraction of GPU memory used."),
        otel_scale=0.01, charted=True, digits=2,
        sql="100.0 * memory_used_bytes / NULLIF(memory_total_bytes, 0)",
    ),
    Reading(
        "memory_utilization_percent", "%", "Memory controller utilization.",
        prom=PromFamily("gpm_gpu_memory_utilization_percent"),
    ),
    Reading(
        "memory_used_bytes", "By", "GPU memory in use.", integer=True,
        prom=PromFamily("gpm_gpu_memory_used_bytes"),
        otel=OtelInstrument("hw.gpu.memory.usage", "By", "GPU memory used.", kind="updown"),
        charted=True,
    ),
    Reading(
        "memory_total_bytes", "By", "GPU memory size.", integer=True,
        prom=PromFamily("gpm_gpu_memory_total_bytes"),
        otel=OtelInstrument("hw.gpu.memory.limit", "By", "Size of the GPU memory.", kind="updown"),
    ),
    Reading(
        "memory_free_bytes", "By", "GPU memory free.", integer=True,
        prom=PromFamily("gpm_gpu_memory_free_bytes"),
    ),
    Reading(
        "temperature_celsius", "Cel", "GPU core temperature.",
        prom=PromFamily("gpm_gpu_temperature_celsius"),
        otel=TEMPERATURE, charted=True,
    ),
    Reading(
        "memory_temperature_celsius", "Cel", "GPU memory (HBM) temperature.",
        prom=PromFamily("gpm_gpu_memory_temperature_celsius"),
        otel=TEMPERATURE, otel_attributes={"hw.sensor_location": "memory"}, charted=True,
    ),
    Reading(
        "power_watts", "W", "Power draw.",
        prom=PromFamily("gpm_gpu_power_watts"),
        otel=OtelInstrument("hw.power", "W", "GPU power draw."), charted=True,
    ),
    Reading(
        "power_limit_watts", "W", "Enforced power limit.",
        prom=PromFamily("gpm_gpu_power_limit_watts"),
    ),
    Reading(
        "fan_percent", "%", "Fan speed, percent of maximum.",
        prom=PromFamily("gpm_gpu_fan_percent"),
        otel=OtelInstrument(
            "hw.fan.speed_ratio", "1", "GPU fan speed as a fraction of its maximum."
        ),
        otel_scale=0.01,
    ),
    Reading(
        "clock_graphics_mhz", "MHz", "Graphics clock.", integer=True,
        prom=CLOCK, prom_label="graphics",
    ),
    Reading("clock_sm_mhz", "MHz", "SM clock.", integer=True, prom=CLOCK, prom_label="sm"),
    Reading(
        "clock_memory_mhz", "MHz", "Memory clock.", integer=True, prom=CLOCK, prom_label="memory"
    ),
    Reading(
        "performance_state", "1", "Performance state (P0 = 0 ... P15 = 15).", integer=True,
        prom=PromFamily("gpm_gpu_performance_state"),
    ),
    Reading(
        "encoder_utilization_percent", "%", "Video encoder utilization.",
        prom=PromFamily("gpm_gpu_encoder_utilization_percent"),
        otel=UTILIZATION, otel_attributes={"hw.gpu.task": "encoder"}, otel_scale=0.01,
    ),
    Reading(
        "decoder_utilization_percent", "%", "Video decoder utilization.",
        prom=PromFamily("gpm_gpu_decoder_utilization_percent"),
        otel=UTILIZATION, otel_attributes={"hw.gpu.task": "decoder"}, otel_scale=0.01,
    ),
    Reading(
        "pcie_replay_errors", "{error}",
        "PCIe replays since the driver was loaded (a flaky link or riser retries packets).",
        integer=True,
        prom=PromFamily(
            "gpm_gpu_pcie_replays", "PCIe replays since the driver was loaded.", counter=True
        ),
    ),
    # OTLP exports PCIe as byte totals (hw.gpu.io), integrated from these rates in otlp.py.
    Reading(
        "pcie_tx_bytes_per_second", "By/s", "PCIe transmit throughput.", integer=True,
        prom=PCIE, prom_label="tx",
    ),
    Reading(
        "pcie_rx_bytes_per_second", "By/s", "PCIe receive throughput.", integer=True,
        prom=PCIE, prom_label="rx",
    ),
    Reading(
        "energy_joules", "J", "Energy used since the driver was loaded.",
        prom=PromFamily(
            "gpm_gpu_energy_joules", "Energy used since the driver was loaded.", counter=True
        ),
        otel=OtelInstrument(
            "hw.energy", "J", "Energy used by the GPU since the driver was loaded.", kind="counter"
        ),
    ),
    Reading(
        "ecc_errors_corrected", "{error}", "Corrected ECC errors since the driver was loaded.",
        integer=True, prom=ECC, prom_label="corrected",
        otel=ECC_OTEL, otel_attributes={"error.type": "corrected"},
    ),
    Reading(
        "ecc_errors_uncorrected", "{error}",
        "Uncorrected ECC errors since the driver was loaded.",
        integer=True, prom=ECC, prom_label="uncorrected",
        otel=ECC_OTEL, otel_attributes={"error.type": "uncorrected"},
    ),
    # Memory health: volatile ECC counts above reset with the driver; these do not.
    Reading(
        "ecc_errors_corrected_aggregate", "{error}", "Corrected ECC errors over the GPU's life.",
        integer=True, prom=ECC_LIFETIME, prom_label="corrected",
    ),
    Reading(
        "ecc_errors_uncorrected_aggregate", "{error}",
        "Uncorrected ECC errors over the GPU's life.",
        integer=True, prom=ECC_LIFETIME, prom_label="uncorrected",
    ),
    Reading(
        "remapped_rows_correctable", "{row}", "Rows remapped after correctable errors.",
        integer=True, prom=REMAPPED_ROWS, prom_label="correctable",
    ),
    Reading(
        "remapped_rows_uncorrectable", "{row}", "Rows remapped after uncorrectable errors.",
        integer=True, prom=REMAPPED_ROWS, prom_label="uncorrectable",
    ),
    Reading(
        "remap_pending", "1", "1 while a row remap waits for a GPU reset.", integer=True,
        prom=PromFamily("gpm_gpu_remap_pending"),
    ),
    Reading(
        "remap_failed", "1", "1 when a row remap failed: the GPU needs service.", integer=True,
        prom=PromFamily("gpm_gpu_remap_failed"),
    ),
    Reading(
        "retired_pages_single_bit", "{page}", "Pages retired after repeated single-bit errors.",
        integer=True, prom=RETIRED_PAGES, prom_label="single_bit",
    ),
    Reading(
        "retired_pages_double_bit", "{page}", "Pages retired after a double-bit error.",
        integer=True, prom=RETIRED_PAGES, prom_label="double_bit",
    ),
    Reading(
        "retired_pages_pending", "1", "1 while a page retirement waits for a reboot.",
        integer=True,
        prom=PromFamily("gpm_gpu_retired_pages_pending"),
    ),
    # NVLink, summed over the GPU's links (null on a GPU without NVLink).
    Reading(
        "nvlink_links_active", "{link}", "NVLink links up.", integer=True,
        prom=NVLINK_LINKS, prom_label="active",
    ),
    Reading(
        "nvlink_links_inactive", "{link}", "NVLink links present but down.", integer=True,
        prom=NVLINK_LINKS, prom_label="inactive",
    ),
    Reading(
        "nvlink_crc_errors", "{error}", "NVLink CRC (flit) errors, all links.", integer=True,
        prom=NVLINK_ERRORS, prom_label="crc",
    ),
    Reading(
        "nvlink_replay_errors", "{error}", "NVLink replays, all links.", integer=True,
        prom=NVLINK_ERRORS, prom_label="replay",
    ),
    Reading(
        "nvlink_recovery_errors", "{error}", "NVLink recoveries, all links.", integer=True,
        prom=NVLINK_ERRORS, prom_label="recovery",
    ),
)  # fmt: skip

BY_NAME: dict[str, Reading] = {r.name: r for r in READINGS}
STORED: tuple[Reading, ...] = tuple(r for r in READINGS if r.stored)
STORED_NAMES: frozenset[str] = frozenset(r.name for r in STORED)
CHARTED: tuple[str, ...] = tuple(r.name for r in READINGS if r.charted)
