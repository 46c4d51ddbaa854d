"""The energy ledger: each GPU's energy since GPM started, read at every poll and at the edges
of every LLM session.

Energy comes from NVML's total energy counter where the GPU has one (differences between reads,
exact to the millijoule), else from power integrated over time (trapezoids between reads, an
estimate whose error grows with the time between reads). Each GPU says which (``method``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gpm.model import GpuSample

COUNTER = "counter"
POWER = "power_integral"


@dataclass(frozen=True, slots=True)
class EnergyRead:
    """One GPU's energy counter (joules since the driver loaded) and power, at one time."""

    gpu_id: int
    timestamp: float
    counter_joules: float | None
    power_watts: float | None


@dataclass(slots=True)
class _Gpu:
    timestamp: float
    counter: float | None
    power: float | None
    total: float = 0.0
    method: str | None = None


class Ledger:
    """Accumulates each GPU's energy from reads in time order; a read older than the newest one
    already recorded for its GPU adds nothing (a later read has covered its interval)."""

    def __init__(self) -> None:
        self._gpus: dict[int, _Gpu] = {}

    def record(self, reads: Iterable[EnergyRead]) -> dict[int, float]:
        """Take the reads in; the energy each GPU used since its previous read (joules)."""
        deltas: dict[int, float] = {}
        for r in reads:
            gpu = self._gpus.get(r.gpu_id)
            if gpu is None:
                self._gpus[r.gpu_id] = _Gpu(r.timestamp, r.counter_joules, r.power_watts)
                deltas[r.gpu_id] = 0.0
                continue
            if r.timestamp <= gpu.timestamp:
                continue
            delta, method = _between(gpu, r)
            gpu.total += delta
            if method is not None:
                gpu.method = method
            gpu.timestamp = r.timestamp
            gpu.counter = r.counter_joules
            gpu.power = r.power_watts
            deltas[r.gpu_id] = delta
        return deltas

    def total(self, gpu_id: int) -> float | None:
        """Joules since the GPU's first read; None for a GPU never read."""
        gpu = self._gpus.get(gpu_id)
        return None if gpu is None else gpu.total

    def method(self, gpu_id: int) -> str | None:
        """How the GPU's energy is measured (COUNTER or POWER); None until it is known."""
        gpu = self._gpus.get(gpu_id)
        return None if gpu is None else gpu.method

    def gpus(self) -> list[int]:
        return sorted(self._gpus)


def _between(last: _Gpu, now: EnergyRead) -> tuple[float, str | None]:
    """Energy between two reads: the counter's difference, else the power trapezoid. A counter
    that went backwards (the driver reloaded) falls back to power for that interval."""
    counter = now.counter_joules
    if counter is not None and last.counter is not None and counter >= last.counter:
        return counter - last.counter, COUNTER
    powers = [p for p in (last.power, now.power_watts) if p is not None]
    if not powers:
        return 0.0, None
    return sum(powers) / len(powers) * (now.timestamp - last.timestamp), POWER


def reads_of(gpus: Iterable[GpuSample]) -> list[EnergyRead]:
    """The ledger reads a poll's GPU samples carry (the GPUs that were read)."""
    return [EnergyRead(g.gpu_id, g.timestamp, g.energy_joules, g.power_watts) for g in gpus if g.up]
