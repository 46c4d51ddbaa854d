"""What ``nvidia-smi -q -x`` adds to the CSV queries, and how GPM reads it.

The XML report is the only place nvidia-smi gives memory health (row remapping, retired pages,
lifetime ECC counts) and MIG devices with the processes on each. This module reads it, by element
name, into what GPM's model holds, and merges it into the samples of the CSV queries. Pure
functions over text: running nvidia-smi (and how often) is ``gpm/gpu/smi.py``'s part.

The report comes from the local nvidia-smi, but it is still read defensively: an element that is
missing, unknown or says it has no value (``N/A``, ``[N/A]``, ``Not Supported``, empty) leaves
its reading unset, never 0. ``xml.etree`` does not fetch the report's external DTD.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from gpm.gpu.smi_parse import (
    NO_VALUE,
    PROCESS_KINDS,
    SmiParseError,
    parse_mib_bytes,
    parse_whole,
)
from gpm.model import GpuProcess, GpuSample, MigDevice

# nvidia-smi writes "[N/A]" in CSV but "N/A" (and "Not Supported", ...) in XML.
_NO_VALUE = NO_VALUE | {token.strip("[]") for token in NO_VALUE}


def _text(parent: ET.Element, path: str) -> str | None:
    """The element's text, or None when it is absent or holds no value."""
    found = parent.find(path)
    if found is None or found.text is None:
        return None
    text = found.text.strip()
    return None if text in _NO_VALUE else text


def _flag(value: str | None, field: str) -> int | None:
    """``Yes``/``No`` as 1/0."""
    if value is None:
        return None
    answer = {"yes": 1, "no": 0}.get(value.lower())
    if answer is None:
        raise SmiParseError(f"{field}: {value!r} is not Yes or No")
    return answer


# <remapped_rows> child -> reading. Newer DTDs (v13) add *_inactive counts: not read.
_REMAPPED_ROWS = (
    ("remapped_row_corr", "remapped_rows_correctable", parse_whole),
    ("remapped_row_unc", "remapped_rows_uncorrectable", parse_whole),
    ("remapped_row_pending", "remap_pending", _flag),
    ("remapped_row_failure", "remap_failed", _flag),
)
_RETIRED_PAGES = (
    ("multiple_single_bit_retirement/retired_count", "retired_pages_single_bit"),
    ("double_bit_retirement/retired_count", "retired_pages_double_bit"),
)
# v12 and later split the lifetime ECC counts by SRAM and DRAM (v13 splits SRAM uncorrectable
# further by parity and SEC-DED); the total is the sum of the parts the DTD has.
_ECC_PARTS = (
    ("ecc_errors_corrected_aggregate", ("sram_correctable", "dram_correctable")),
    (
        "ecc_errors_uncorrected_aggregate",
        (
            "sram_uncorrectable",
            "sram_uncorrectable_parity",
            "sram_uncorrectable_secded",
            "dram_uncorrectable",
        ),
    ),
)
# Before v12 the counts are per location, with a total for each kind.
_ECC_TOTALS = (
    ("ecc_errors_corrected_aggregate", "single_bit/total"),
    ("ecc_errors_uncorrected_aggregate", "double_bit/total"),
)


@dataclass(frozen=True, slots=True)
class XmlGpu:
    """What ``-q -x`` said of one GPU that the CSV queries cannot tell.

    ``mig_devices`` is None when MIG is off or the GPU has no MIG, and empty when MIG is on but
    no MIG device is listed; each process carries the MIG device it runs on where its GPU and
    compute instance ids name one.
    """

    uuid: str | None
    readings: dict[str, int]
    mig_devices: tuple[MigDevice, ...] | None
    processes: tuple[GpuProcess, ...]


class _Reader:
    """Reads one ``<gpu>``'s values, noting each one that cannot be read in ``problems``."""

    def __init__(self, gpu: ET.Element, problems: list[str]) -> None:
        self.gpu = gpu
        self.problems = problems

    def value(
        self,
        parent: ET.Element,
        path: str,
        convert: Callable[[str | None, str], int | None] = parse_whole,
    ) -> int | None:
        try:
            return convert(_text(parent, path), path)
        except SmiParseError as exc:
            self.problems.append(f"nvidia-smi -q -x {exc}")
            return None

    def memory_health(self) -> dict[str, int]:
        found: dict[str, int | None] = {}
        remapped = self.gpu.find("remapped_rows")  # "N/A" with no children in MIG mode
        if remapped is not None:
            for path, name, convert in _REMAPPED_ROWS:
                found[name] = self.value(remapped, path, convert)
        retired = self.gpu.find("retired_pages")
        if retired is not None:
            for path, name in _RETIRED_PAGES:
                found[name] = self.value(retired, path)
            # Older drivers say pending_blacklist, newer pending_retirement; either pending is.
            pending = [
                self.value(retired, p, _flag) for p in ("pending_blacklist", "pending_retirement")
            ]
            known = [p for p in pending if p is not None]
            found["retired_pages_pending"] = max(known) if known else None
        found.update(self.ecc_aggregate())
        return {name: value for name, value in found.items() if value is not None}

    def ecc_aggregate(self) -> dict[str, int | None]:
        """Lifetime ECC counts, like NVML's: only with ECC on, and only when every part is known."""
        aggregate = self.gpu.find("ecc_errors/aggregate")
        if aggregate is None or _text(self.gpu, "ecc_mode/current_ecc") != "Enabled":
            return {}
        if aggregate.find("single_bit") is not None:
            return {name: self.value(aggregate, path) for name, path in _ECC_TOTALS}
        out: dict[str, int | None] = {}
        for name, parts in _ECC_PARTS:
            present = [p for p in parts if aggregate.find(p) is not None]
            counts = [self.value(aggregate, p) for p in present]
            known = [c for c in counts if c is not None]
            out[name] = sum(known) if present and len(known) == len(present) else None
        return out

    def mig_devices(self) -> tuple[MigDevice, ...] | None:
        if _text(self.gpu, "mig_mode/current_mig") != "Enabled":
            return None
        devices = []
        for element in self.gpu.iterfind("mig_devices/mig_device"):
            index = self.value(element, "index")
            if index is None:
                continue
            devices.append(
                MigDevice(
                    index=index,
                    uuid=_text(element, "uuid"),
                    gpu_instance_id=self.value(element, "gpu_instance_id"),
                    compute_instance_id=self.value(element, "compute_instance_id"),
                    memory_used_bytes=self.value(element, "fb_memory_usage/used", parse_mib_bytes),
                    memory_total_bytes=self.value(
                        element, "fb_memory_usage/total", parse_mib_bytes
                    ),
                )
            )
        return tuple(devices)

    def processes(self, mig: tuple[MigDevice, ...] | None) -> tuple[GpuProcess, ...]:
        by_instance = {(m.gpu_instance_id, m.compute_instance_id): m.index for m in mig or ()}
        found = []
        for element in self.gpu.iterfind("processes/process_info"):
            pid = self.value(element, "pid")
            if pid is None:
                continue
            instance = (
                self.value(element, "gpu_instance_id"),
                self.value(element, "compute_instance_id"),
            )
            found.append(
                GpuProcess(
                    pid=pid,
                    name=_text(element, "process_name"),
                    gpu_memory_bytes=self.value(element, "used_memory", parse_mib_bytes),
                    kind=PROCESS_KINDS.get(_text(element, "type") or "", "compute"),
                    mig_index=by_instance.get(instance) if None not in instance else None,
                )
            )
        return tuple(found)


def parse_xml(text: str, problems: list[str]) -> tuple[XmlGpu, ...]:
    """Each ``<gpu>`` of an ``nvidia-smi -q -x`` report, in the report's order.

    A report that is not XML gives none, and says so in ``problems``; a value that cannot be read
    is left out and noted there, and the rest of the report stands.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        problems.append(f"nvidia-smi -q -x printed no readable XML ({exc})")
        return ()
    if root.tag != "nvidia_smi_log":
        problems.append(f"nvidia-smi -q -x printed <{root.tag}>, not <nvidia_smi_log>")
        return ()
    gpus = []
    for element in root.iterfind("gpu"):
        reader = _Reader(element, problems)
        mig = reader.mig_devices()
        gpus.append(
            XmlGpu(
                uuid=_text(element, "uuid"),
                readings=reader.memory_health(),
                mig_devices=mig,
                processes=reader.processes(mig),
            )
        )
    return tuple(gpus)


def _match(
    sample: GpuSample, gpus: Sequence[XmlGpu], by_uuid: Mapping[str, XmlGpu]
) -> XmlGpu | None:
    """The report's GPU for this sample: by uuid, else by place.

    The report lists GPUs in nvidia-smi's index order, which the sample's ``gpu_id`` is. Its
    ``minor_number`` is the ``/dev/nvidiaN`` number, which need not be the index.
    """
    if sample.uuid is not None and by_uuid:
        return by_uuid.get(sample.uuid)
    return gpus[sample.gpu_id] if 0 <= sample.gpu_id < len(gpus) else None


def _merge_processes(
    known: tuple[GpuProcess, ...], reported: tuple[GpuProcess, ...]
) -> tuple[GpuProcess, ...]:
    """The CSV/pmon processes with their MIG device, plus those only the report lists."""
    procs = {p.pid: p for p in known}
    for seen in reported:
        proc = procs.get(seen.pid)
        if proc is None:
            procs[seen.pid] = seen
        elif seen.mig_index is not None:
            procs[seen.pid] = replace(proc, mig_index=seen.mig_index)
    return tuple(procs.values())


def merge_xml(samples: Sequence[GpuSample], gpus: Sequence[XmlGpu]) -> tuple[GpuSample, ...]:
    """Add the report's readings, MIG devices and processes to the samples of the CSV queries.

    A reading the CSV queries gave wins; a sample whose process list is unknown keeps it unknown.
    """
    by_uuid = {gpu.uuid: gpu for gpu in gpus if gpu.uuid is not None}
    merged = []
    for sample in samples:
        gpu = _match(sample, gpus, by_uuid)
        if gpu is None:
            merged.append(sample)
            continue
        processes = sample.processes
        if processes is not None:
            processes = _merge_processes(processes, gpu.processes)
        merged.append(
            replace(
                sample,
                readings={**gpu.readings, **sample.readings},
                mig_devices=gpu.mig_devices,
                processes=processes,
            )
        )
    return tuple(merged)
