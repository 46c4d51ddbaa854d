"""What runs on each GPU, and what kind of work it is.

``facts`` reads a process's evidence from /proc, ``rules`` turns evidence into a workload (pure),
``tracker`` follows processes across polls and reports their starts and ends. ``read_and_classify``
is the one poll step that ``gpm status`` and the service share: read, classify, give each GPU its
health verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpm.classify.tracker import ProcessTracker
    from gpm.gpu.base import GpuSource
    from gpm.health import HealthWatch
    from gpm.model import ProcessEvent, Snapshot


def read_and_classify(
    source: GpuSource, tracker: ProcessTracker, health: HealthWatch, now: float
) -> tuple[Snapshot, list[ProcessEvent]]:
    """Read every GPU, classify the processes on them and judge each GPU's health (call it off
    the event loop)."""
    snapshot, events = tracker.update(source.poll(now))
    return health.assess(snapshot), events
