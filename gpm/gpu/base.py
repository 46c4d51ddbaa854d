"""The one small interface every GPU source implements."""

from __future__ import annotations

from typing import Protocol

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
