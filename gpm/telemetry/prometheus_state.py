"""Prometheus families read from the live state at scrape time: every GPU's readings, MIG
devices, health, throttle reasons and processes; resident models; energy by workload and idle;
GPM's own polling health.

A scrape always shows the latest snapshot and nothing is copied per poll.
"""

from __future__ import annotations

from collections import Counter as TallyCounter
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpm import catalog
from gpm.catalog import PromFamily
from gpm.gpu import clock_events
from gpm.health import VERDICTS
from gpm.model import MIG_READINGS, GpuSample
from gpm.state import LiveState

# NVML clock-event (throttle) reasons by the short names GPU sources report. Each gets a 0/1
# series so a dashboard can tell "not throttled" from "not reported"; a reason outside this list
# that a source does report is still exported.
KNOWN_THROTTLE_REASONS = clock_events.NAMES

# Local models run from ~1 tok/s (CPU offload) to a few hundred (small model, big GPU).
UNCLASSIFIED = "unclassified"

_GPU_LABELS = ("gpu_id", "gpu_name", "gpu_uuid")


def _gpu_labels(g: GpuSample) -> list[str]:
    return [str(g.gpu_id), g.name or "", g.uuid or ""]


class _GpuFamilies:
    """Builds the per-GPU families; a reading that is None gets no sample at all.

    One family per catalog family, in catalog order; a family shared by several readings (clock,
    PCIe, ECC) tells them apart by its label.
    """

    def __init__(self) -> None:
        self.up = GaugeMetricFamily(
            "gpm_gpu_up",
            "1 when the GPU could be read at the last poll, else 0.",
            labels=_GPU_LABELS,
        )
        self.info = GaugeMetricFamily(
            "gpm_gpu_info",
            "Constant 1, labelled with the GPU's identity.",
            labels=("gpu_id", "uuid", "name", "simulated"),
        )
        self.readings: dict[PromFamily, Metric] = {}
        # (reading, its family, the sample name, its label and value in that family)
        self._exported: list[tuple[str, Metric, str, str | None, str | None]] = []
        for r in catalog.READINGS:
            f = r.prom
            if f is None:
                continue
            if f not in self.readings:
                kind = CounterMetricFamily if f.counter else GaugeMetricFamily
                labels = (*_GPU_LABELS, f.label) if f.label else _GPU_LABELS
                self.readings[f] = kind(f.name, f.help or r.help, labels=labels)
            out = self.readings[f]
            sample = f"{out.name}_total" if f.counter else out.name
            self._exported.append((r.name, out, sample, f.label, r.prom_label))
        self.health = GaugeMetricFamily(
            "gpm_gpu_health",
            "1 for the GPU's health verdict (ok, degraded, failed), 0 for the other two.",
            labels=(*_GPU_LABELS, "state"),
        )
        self.nvlink_up = GaugeMetricFamily(
            "gpm_gpu_nvlink_up",
            "1 while the NVLink link is active, 0 while it is down.",
            labels=(*_GPU_LABELS, "link"),
        )
        self.nvlink_errors = CounterMetricFamily(
            "gpm_gpu_nvlink_link_errors",
            "NVLink errors of one link, by kind (crc, replay, recovery).",
            labels=(*_GPU_LABELS, "link", "type"),
        )
        self.throttle = GaugeMetricFamily(
            "gpm_gpu_throttle_reason",
            "1 while the clock-event reason is active.",
            labels=(*_GPU_LABELS, "reason"),
        )
        self.proc_mem = GaugeMetricFamily(
            "gpm_gpu_process_memory_bytes",
            "GPU memory held by processes, by workload (and MIG device, in MIG mode).",
            labels=("gpu_id", "workload", "mig_instance"),
        )
        self.procs = GaugeMetricFamily(
            "gpm_gpu_processes",
            "Processes on the GPU, by workload (and MIG device, in MIG mode).",
            labels=("gpu_id", "workload", "mig_instance"),
        )
        # Each MIG device reading is a family of its own, never summed into the GPU's.
        self.mig = [
            GaugeMetricFamily(
                f"gpm_mig_{name}",
                f"{catalog.BY_NAME[name].help} (MIG device)",
                labels=(*_GPU_LABELS, "mig_instance", "mig_uuid", "mig_profile"),
            )
            for name in MIG_READINGS
        ]

    def add(self, g: GpuSample) -> None:
        labels = _gpu_labels(g)
        # One labels dict shared by this GPU's unlabelled families: encoded once per scrape.
        shared = dict(zip(_GPU_LABELS, labels, strict=True))
        self.up.add_sample(self.up.name, shared, 1.0 if g.up else 0.0)
        self.info.add_metric(
            [str(g.gpu_id), g.uuid or "", g.name or "", "true" if g.simulated else "false"], 1.0
        )
        readings = g.readings
        for name, out, sample, label, label_value in self._exported:
            value = readings.get(name)
            if value is None:
                continue
            if label is None or label_value is None:
                out.add_sample(sample, shared, float(value))
            else:
                out.add_sample(sample, {**shared, label: label_value}, float(value))
        for link in g.nvlinks or ():
            at = {**shared, "link": str(link.link)}
            self.nvlink_up.add_sample(self.nvlink_up.name, at, 1.0 if link.active else 0.0)
            for kind, value in (
                ("crc", link.crc_errors),
                ("replay", link.replay_errors),
                ("recovery", link.recovery_errors),
            ):
                if value is not None:
                    self.nvlink_errors.add_sample(
                        f"{self.nvlink_errors.name}_total", {**at, "type": kind}, float(value)
                    )
        if g.health is not None:
            for state in VERDICTS:
                value = 1.0 if state == g.health else 0.0
                self.health.add_sample(self.health.name, {**shared, "state": state}, value)
        if g.throttle_reasons is not None:
            active = set(g.throttle_reasons)
            for reason in (
                *KNOWN_THROTTLE_REASONS,
                *sorted(active.difference(KNOWN_THROTTLE_REASONS)),
            ):
                self.throttle.add_sample(
                    self.throttle.name, {**shared, "reason": reason}, float(reason in active)
                )
        for m in g.mig_devices or ():
            at = {**shared, "mig_instance": str(m.index), "mig_uuid": m.uuid or ""}
            at["mig_profile"] = m.profile or ""
            for family, name in zip(self.mig, MIG_READINGS, strict=True):
                value = getattr(m, name)
                if value is not None:
                    family.add_sample(family.name, at, float(value))
        if g.processes is not None:
            count: TallyCounter[tuple[str, str]] = TallyCounter()
            memory: TallyCounter[tuple[str, str]] = TallyCounter()
            for p in g.processes:
                workload = p.classification.workload.value if p.classification else UNCLASSIFIED
                where = (workload, "" if p.mig_index is None else str(p.mig_index))
                count[where] += 1
                memory[where] += p.gpu_memory_bytes or 0
            for where in sorted(count):
                self.procs.add_metric([str(g.gpu_id), *where], float(count[where]))
                self.proc_mem.add_metric([str(g.gpu_id), *where], float(memory[where]))

    def families(self) -> Iterator[Metric]:
        yield self.up
        yield self.info
        yield from self.readings.values()
        yield from (self.health, self.nvlink_up, self.nvlink_errors, self.throttle)
        yield from (self.procs, self.proc_mem)
        yield from self.mig


class StateCollector(Collector):
    """Reads the live state at scrape time: GPUs, resident models, backend and GPM health."""

    def __init__(self, state: LiveState) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        state = self._state
        snapshot = state.snapshot
        gpus = _GpuFamilies()
        if snapshot is not None:
            for sample in snapshot.gpus:
                gpus.add(sample)
        yield from gpus.families()

        models = state.models
        yield GaugeMetricFamily(
            "gpm_llm_models_loaded", "Models resident in the LLM backend.", value=float(len(models))
        )
        vram = GaugeMetricFamily(
            "gpm_llm_model_vram_bytes", "VRAM held by a resident model.", labels=("model",)
        )
        for m in models:
            if m.vram_bytes is not None:
                vram.add_metric([m.name], float(m.vram_bytes))
        yield vram
        if state.backend_up is not None:
            yield GaugeMetricFamily(
                "gpm_llm_backend_up",
                "1 when the LLM backend answered its last poll.",
                value=1.0 if state.backend_up else 0.0,
            )
        if state.host is not None:
            h = state.host
            info = GaugeMetricFamily(
                "gpm_host_info",
                "Constant 1, labelled with the machine's name (service.host_name), its GPM's "
                "dashboard, and GPM's and the driver's versions.",
                labels=("host", "version", "driver_version", "cuda_version", "url"),
            )
            versions = [h.driver_version or "", h.cuda_version or "", h.url or ""]
            info.add_metric([h.host, h.version, *versions], 1.0)
            yield info
        yield from _energy_families(state)
        yield from _health_families(state)


def _energy_families(state: LiveState) -> Iterator[Metric]:
    """Energy since GPM started, by workload and idle per GPU (docs/energy.md)."""
    energy = state.energy
    workloads = CounterMetricFamily(
        "gpm_workload_energy_joules",
        "GPU energy attributed to processes, by workload class (unattributed: process list "
        "unknown).",
        labels=("workload",),
    )
    for workload, joules in sorted(energy.by_workload.items()):
        workloads.add_metric([workload], joules)
    yield workloads
    idle = CounterMetricFamily(
        "gpm_gpu_idle_energy_joules",
        "GPU energy at the idle floor or with no process on the GPU.",
        labels=("gpu_id",),
    )
    for gpu_id, joules in sorted(energy.idle_by_gpu.items()):
        idle.add_metric([str(gpu_id)], joules)
    yield idle


def _health_families(state: LiveState) -> Iterator[Metric]:
    health = state.health
    if health.last_poll_seconds is not None:
        yield GaugeMetricFamily(
            "gpm_poll_duration_seconds",
            "How long the last poll took.",
            value=health.last_poll_seconds,
        )
    if health.phase_seconds:
        phases = GaugeMetricFamily(
            "gpm_poll_phase_seconds",
            "How long each phase of the last poll took: gpus (reading them), classify "
            "(processes and health), record (energy, storage, alerts).",
            labels=("phase",),
        )
        for phase, seconds in health.phase_seconds.items():
            phases.add_metric([phase], seconds)
        yield phases
    if health.last_success_at is not None:
        yield GaugeMetricFamily(
            "gpm_last_successful_poll_timestamp_seconds",
            "When the last successful poll finished (epoch seconds).",
            value=health.last_success_at,
        )
    yield CounterMetricFamily("gpm_polls", "Polls finished.", value=health.polls)
    yield CounterMetricFamily(
        "gpm_polls_skipped",
        "Polls skipped because the previous one overran its slot.",
        value=health.polls_skipped,
    )
    errors = CounterMetricFamily(
        "gpm_collection_errors", "Collection errors, by kind.", labels=("kind",)
    )
    for kind, n in sorted(health.errors.items()):
        errors.add_metric([kind], float(n))
    yield errors
