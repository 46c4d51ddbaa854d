"""Xid errors through NVML's event API, the real bindings and the fake library's event set."""

from __future__ import annotations

import logging
import queue
from pathlib import Path

import pytest

from gpm.gpu.events import XidWatcher
from gpm.model import GpuEvent
from tests.fakes.fake_nvml import Scenario


def test_each_xid_is_delivered_once_with_its_gpu(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    fake_nvml_scenario.set_gpu(0, uuid="GPU-aaaa").set_gpu(1, uuid="GPU-bbbb").write()
    got: queue.Queue[GpuEvent] = queue.Queue()
    watcher = XidWatcher(str(fake_nvml_lib), got.put, clock=lambda: 1000.0)
    watcher.start()
    try:
        assert watcher.ready.wait(10) and watcher.watched == [0, 1]
        assert got.empty()  # nothing happened: the wait times out, nothing is reported
        fake_nvml_scenario.add_xid(1, 79).add_xid(0, 13).write()
        events = sorted([got.get(timeout=10), got.get(timeout=10)], key=lambda e: e.gpu_id)
        assert events == [
            GpuEvent(1000.0, 0, "GPU-aaaa", "xid", 13),
            GpuEvent(1000.0, 1, "GPU-bbbb", "xid", 79),
        ]
        fake_nvml_scenario.add_xid(0, 48).write()  # only the new one arrives
        assert got.get(timeout=10) == GpuEvent(1000.0, 0, "GPU-aaaa", "xid", 48)
        with pytest.raises(queue.Empty):
            got.get(timeout=0.3)
    finally:
        watcher.stop()


def test_a_gpu_without_events_is_said_once_and_the_rest_watched(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_nvml_scenario.set_gpu(0).set_gpu(1).not_supported(0, "events").write()
    caplog.set_level(logging.INFO, logger="gpm.gpu")
    got: queue.Queue[GpuEvent] = queue.Queue()
    watcher = XidWatcher(str(fake_nvml_lib), got.put)
    watcher.start()
    try:
        assert watcher.ready.wait(10)
        assert watcher.watched == [1] and "Not Supported" in watcher.unwatched[0]
        said = [r for r in caplog.records if "not watched" in r.getMessage()]
        assert len(said) == 1 and "GPU 0" in said[0].getMessage()
        fake_nvml_scenario.add_xid(0, 79).add_xid(1, 31).write()
        assert got.get(timeout=10).gpu_id == 1  # GPU 0's event was never registered for
        with pytest.raises(queue.Empty):
            got.get(timeout=0.3)
    finally:
        watcher.stop()
