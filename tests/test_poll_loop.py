"""The poll loop keeps a fixed grid: an overrun skips slots and never queues a burst."""

from __future__ import annotations

import asyncio
import threading
import time
from itertools import pairwise
from pathlib import Path

from gpm.gpu.simulated import SimulatedSource
from gpm.model import Snapshot
from gpm.service import Service
from gpm.settings import (
    AlertsConfig,
    ApiConfig,
    Config,
    OllamaConfig,
    ServiceConfig,
    StorageConfig,
    TelemetryConfig,
)

INTERVAL = 0.25


class SlowEveryThird:
    """A real GPU source whose every third read takes 2.2 intervals, like a wedged driver call."""

    name = "slow"

    def __init__(self, polls_wanted: int) -> None:
        self.inner = SimulatedSource(1)
        self.started: list[float] = []
        self.wanted = polls_wanted
        self.done = threading.Event()

    def poll(self, now: float) -> Snapshot:
        self.started.append(time.monotonic())
        if len(self.started) % 3 == 0:
            time.sleep(2.2 * INTERVAL)  # the slow work itself, not synchronisation
        if len(self.started) >= self.wanted:
            self.done.set()
        return self.inner.poll(now)

    def close(self) -> None:
        pass


def test_overruns_skip_slots_on_a_fixed_grid(tmp_path: Path) -> None:
    cfg = Config(
        service=ServiceConfig(poll_interval_secs=INTERVAL, data_dir=tmp_path),
        storage=StorageConfig(archive_dir=tmp_path / "archive"),
        ollama=OllamaConfig(enabled=False),
        telemetry=TelemetryConfig(enable_prometheus=False, enable_opentelemetry=False),
        api=ApiConfig(enabled=False),
        alerts=AlertsConfig(min_duration_secs=0),
    )
    source = SlowEveryThird(polls_wanted=9)
    service = Service(cfg, source=source)

    async def main() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(service.run(stop))
        await asyncio.wait_for(asyncio.to_thread(source.done.wait, 30), 35)
        stop.set()
        await asyncio.wait_for(runner, 15)

    asyncio.run(main())
    starts = source.started[:9]
    offsets = [(t - starts[0]) / INTERVAL for t in starts]
    # every poll starts on the grid (a whole number of intervals after the first) ...
    for k in offsets:
        assert abs(k - round(k)) < 0.3, offsets
    # ... the slot after a slow read is skipped, not run late or twice in a row ...
    gaps = [round(b - a) for a, b in pairwise(offsets)]
    assert gaps == [1, 1, 3, 1, 1, 3, 1, 1], gaps
    assert service.state.health.polls_skipped >= 2
    # ... and what was read reached the database on shutdown
    assert service.writer.rows_written >= 9
