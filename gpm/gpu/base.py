"""The one small interface every GPU source implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gpm.energy.ledger import EnergyRead
from gpm.model import Snapshot


class GpuSource(Protocol):
    """Reads every GPU once per call.

    ``poll`` blocks (NVML calls, a subprocess) and is called from a worker thread, never on the
    event loop. It does not raise for GPU trouble: a GPU that cannot be read comes back with
    ``up=False`` and an ``error``, and a source with no GPUs returns an empty snapshot with a
    ``message`` saying why.
    """

    name: str

    def poll(self, now: float) -> Snapshot: ...

    def close(self) -> None: ...


@runtime_checkable
class DriverInfo(Protocol):
    """A source that knows the driver's version and the CUDA version it supports."""

    def driver_versions(self) -> tuple[str | None, str | None]: ...


@runtime_checkable
class EnergyReader(Protocol):
    """A source that can read every GPU's energy between polls, cheaply (blocks, like poll)."""

    def read_energy(self, now: float) -> list[EnergyRead]: ...
