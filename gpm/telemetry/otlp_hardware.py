"""The hardware side of OTLP: the ``hw.*`` attributes of a GPU and of its MIG devices, and the
observations a GPU sample gives each instrument of the catalog (plus ``hw.status`` and the PCIe
byte counters integrated from sampled rates), under the OpenTelemetry hardware conventions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from gpm import catalog
from gpm.catalog import OtelInstrument, Reading
from gpm.health import VERDICTS
from gpm.model import MIG_READINGS, GpuSample, MigDevice

Observations = Iterator[tuple[float, dict[str, str]]]  # (value, attributes) per observation


def gpu_attributes(g: GpuSample) -> dict[str, str]:
    """``hw.*`` attributes identifying one GPU (``hw.id`` is its UUID when known)."""
    attrs = {
        "hw.id": g.uuid or f"gpu{g.gpu_id}",
        "hw.name": f"gpu{g.gpu_id}",
        "hw.type": "gpu",
        "hw.vendor": "nvidia",
    }
    if g.name:
        attrs["hw.model"] = g.name
    return attrs


def mig_attributes(g: GpuSample, m: MigDevice) -> dict[str, str]:
    """A MIG device as hardware of its own, whose ``hw.parent`` is its GPU."""
    parent = gpu_attributes(g)["hw.id"]
    attrs = {
        "hw.id": m.uuid or f"{parent}/mig{m.index}",
        "hw.name": f"gpu{g.gpu_id}/mig{m.index}",
        "hw.parent": parent,
    }
    if m.profile:
        attrs["hw.model"] = m.profile
    return attrs


class PcieTotals:
    """Turns PCIe rates (bytes/s) into the byte counters ``hw.gpu.io`` asks for.

    The rate read at each new snapshot is multiplied by the time since the previous one, so
    the totals are an estimate whose resolution is the collection interval.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}  # (hw.id, direction) -> last timestamp
        self._totals: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def update(self, hw_id: str, direction: str, rate: float, timestamp: float) -> float:
        key = (hw_id, direction)
        with self._lock:
            last = self._seen.get(key)
            total = self._totals.get(key, 0.0)
            if last is not None and timestamp > last:
                total += rate * (timestamp - last)
            if last is None or timestamp > last:
                self._seen[key] = timestamp
            self._totals[key] = total
            return total


def catalog_instruments() -> dict[OtelInstrument, list[Reading]]:
    """The catalog's OpenTelemetry instruments, each with the readings it carries."""
    out: dict[OtelInstrument, list[Reading]] = {}
    for r in catalog.READINGS:
        if r.otel is not None:
            out.setdefault(r.otel, []).append(r)
    return out


def catalog_reader(
    readings: list[Reading],
) -> Callable[[GpuSample], Observations]:
    """One observation per reading the GPU reported, scaled to the instrument's unit, and one
    per reading each of its MIG devices reported (attributed to the MIG device)."""
    spec = [(r.name, r.otel_scale, r.otel_attributes) for r in readings]
    mig_spec = [s for s in spec if s[0] in MIG_READINGS]

    def read(g: GpuSample) -> Observations:
        for name, scale, attributes in spec:
            value = getattr(g, name)
            if value is not None:
                yield float(value) * scale, attributes
        for m in g.mig_devices or () if mig_spec else ():
            at = mig_attributes(g, m)
            for name, scale, attributes in mig_spec:
                value = getattr(m, name)
                if value is not None:
                    yield float(value) * scale, {**attributes, **at}

    return read


def hw_status(g: GpuSample) -> Observations:
    """hw.status: 1 for the GPU's health verdict, else (not yet judged) for whether it reads."""
    current = g.health or ("ok" if g.up else "failed")
    for state in VERDICTS:
        yield (1.0 if state == current else 0.0), {"hw.state": state}
