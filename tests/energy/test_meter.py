"""Energy accuracy against a truth the test scripts: a power curve and its integral, served by
the fake NVML library through the real bindings, polled and read at session edges."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpm.energy.attribution import IDLE
from gpm.energy.ledger import COUNTER, POWER
from gpm.energy.meter import EnergyMeter
from gpm.energy.placement import ALL_GPUS, BACKEND_PROCESS, SessionPlacement
from gpm.gpu.nvml import NvmlSource
from gpm.model import LlmSession, ProcessEvent, Workload
from tests.fakes.fake_nvml import GIB, Scenario


def ramp(t: float) -> float:
    """Watts: 100 until t=11, a ramp to 300 at t=21, then 300 (kinks off the 2 s poll grid)."""
    if t <= 11:
        return 100.0
    if t <= 21:
        return 100.0 + 20.0 * (t - 11)
    return 300.0


def ramp_energy(t: float) -> float:
    """The exact integral of ramp from 0 to t, in joules."""
    if t <= 11:
        return 100.0 * t
    if t <= 21:
        return 1100.0 + 100.0 * (t - 11) + 10.0 * (t - 11) ** 2
    return ramp_energy(21) + 300.0 * (t - 21)


def ramp_at(scenario: Scenario, t: float) -> None:
    scenario.set_gpu(0, power_mw=round(ramp(t) * 1000), energy_mj=round(ramp_energy(t) * 1000))
    scenario.write()


class Gpus:
    """Two fake GPUs at powers the test sets; their counters hold the exact integral."""

    def __init__(self, scenario: Scenario, *watts: float) -> None:
        self.scenario = scenario
        self.t = 0.0
        self.watts = list(watts)
        self.joules = [0.0, 0.0]
        self.at(0.0)

    def at(self, t: float, *watts: float) -> None:
        """Hold the powers until ``t``, then draw ``watts`` (unchanged when not given)."""
        self.joules = [j + w * (t - self.t) for j, w in zip(self.joules, self.watts, strict=True)]
        self.t, self.watts = t, list(watts or self.watts)
        for i, (w, j) in enumerate(zip(self.watts, self.joules, strict=True)):
            self.scenario.set_gpu(i, power_mw=round(w * 1000), energy_mj=round(j * 1000))
        self.scenario.write()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def listener() -> Iterator[int]:
    """A port this test process listens on: the 'backend' whose process is on a fake GPU."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def ramp_polls(scenario: Scenario, lib: Path) -> EnergyMeter:
    ramp_at(scenario, 0.0)
    source = NvmlSource(str(lib))
    meter = EnergyMeter(source, SessionPlacement(None))
    try:
        for t in range(0, 31, 2):
            ramp_at(scenario, t)
            await meter.poll(source.poll(float(t)), [])
    finally:
        source.close()
    return meter


async def test_counter_energy_equals_the_integral(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    meter = await ramp_polls(fake_nvml_scenario, fake_nvml_lib)
    assert meter.ledger.method(0) == COUNTER
    assert meter.ledger.total(0) == pytest.approx(ramp_energy(30), rel=0.005)
    assert meter.totals.by_gpu[0] == pytest.approx(ramp_energy(30), rel=0.005)


async def test_without_a_counter_power_is_integrated_and_said(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    meter = await ramp_polls(fake_nvml_scenario.not_supported(0, "energy"), fake_nvml_lib)
    assert meter.ledger.method(0) == POWER
    assert meter.totals.methods[0] == POWER
    # Trapezoids over 2 s on a curve with kinks between reads.
    assert meter.ledger.total(0) == pytest.approx(ramp_energy(30), rel=0.005)


async def test_overlapping_sessions_share_the_overlap_on_their_gpu_only(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path, listener: int
) -> None:
    """GPU 1 holds the backend's process (this test's, listening on the port) at 200 W; GPU 0
    runs something else at 100 W. A runs 3-9 s, B 5-13 s: A gets 3-5 alone and half of 5-9."""
    fake_nvml_scenario.set_processes(1, compute=[(os.getpid(), GIB)])
    fake_nvml_scenario.set_processes(0, compute=[(1, GIB)])
    gpus = Gpus(fake_nvml_scenario, 100.0, 200.0)
    clock = Clock()
    source = NvmlSource(str(fake_nvml_lib))
    meter = EnergyMeter(source, SessionPlacement(listener), clock)
    a = LlmSession(id="a", model="m", endpoint="/api/chat", started_at=3.0)
    b = LlmSession(id="b", model="m", endpoint="/api/chat", started_at=5.0)

    def step(t: float) -> None:
        clock.now = t
        gpus.at(t)

    try:
        snap = source.poll(0.0)
        await meter.poll(snap, [])
        step(3.0)
        await meter.session_started(a, snap)
        step(4.0)  # a poll in between: the split holds across it
        await meter.poll(source.poll(4.0), [])
        step(5.0)
        await meter.session_started(b, snap)
        step(9.0)
        await meter.session_finished(a)
        step(13.0)
        await meter.session_finished(b)
    finally:
        source.close()
    assert a.energy_rule == b.energy_rule == BACKEND_PROCESS
    assert a.energy_joules == pytest.approx(2 * 200 + 4 * 200 / 2, rel=1e-6)
    assert b.energy_joules == pytest.approx(4 * 200 / 2 + 4 * 200, rel=1e-6)
    # Together exactly GPU 1's energy over 3-13 s, none of GPU 0's.
    assert a.energy_joules + b.energy_joules == pytest.approx(10 * 200, rel=1e-6)


async def test_without_the_backend_on_a_gpu_every_gpu_is_charged(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    gpus = Gpus(fake_nvml_scenario, 100.0, 200.0)
    clock = Clock()
    source = NvmlSource(str(fake_nvml_lib))
    meter = EnergyMeter(source, SessionPlacement(None), clock)
    s = LlmSession(id="s", model="m", endpoint="/api/chat", started_at=0.0)
    try:
        snap = source.poll(0.0)
        await meter.poll(snap, [])
        await meter.session_started(s, snap)
        clock.now = 2.0
        gpus.at(2.0)
        await meter.session_finished(s)
    finally:
        source.close()
    assert (s.energy_rule, s.energy_joules) == (ALL_GPUS, pytest.approx(600.0, rel=1e-6))
    assert s.tokens_per_joule is None  # no token count
    s.completion_tokens = 300
    assert s.tokens_per_joule == pytest.approx(0.5, rel=1e-6)


async def test_processes_split_by_sm_share_then_memory_share_above_the_idle_floor(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    gpus = Gpus(fake_nvml_scenario, 50.0, 50.0)
    source = NvmlSource(str(fake_nvml_lib))
    meter = EnergyMeter(source, SessionPlacement(None))
    try:
        await meter.poll(source.poll(0.0), [])  # nothing on either GPU: the idle floor, 50 W
        fake_nvml_scenario.set_processes(0, compute=[(101, 3 * GIB), (102, GIB)])
        fake_nvml_scenario.set_process_utilization(0, {101: 20, 102: 60})
        gpus.at(2.0, 250.0, 50.0)
        await meter.poll(source.poll(2.0), [])  # 0-2 s: idle
        gpus.at(4.0)
        by_sm = await meter.poll(source.poll(4.0), [])  # 2-4 s: 500 J, 100 of it the floor
        fake_nvml_scenario.set_process_utilization(0, {})
        gpus.at(6.0)
        await meter.poll(source.poll(6.0), [])  # the list of 4 s had SM samples still
        gpus.at(8.0)
        by_memory = await meter.poll(source.poll(8.0), [])  # 6-8 s: no SM samples: 3:1 memory
        gpus.at(10.0)
        ended = [ProcessEvent(10.0, "end", 0, None, 101, None, Workload.GENERAL_COMPUTE, "")]
        await meter.poll(source.poll(10.0), ended)
    finally:
        source.close()
    # pid 101: a quarter by SM share over 2-6 s (100 J each), three quarters by memory share over
    # 6-10 s (300 J each) of the 400 J above the floor.
    assert ended[0].energy_joules == pytest.approx(2 * 100 + 2 * 300, rel=1e-6)
    assert meter.floor.watts(0) == 50.0
    gpu0 = {u.workload: u.joules for u in by_sm if u.gpu_id == 0}
    assert gpu0 == {IDLE: pytest.approx(100.0), "general_compute": pytest.approx(400.0)}
    assert {u.gpu_id: u.workload for u in by_sm if u.gpu_id == 1} == {1: IDLE}
    assert meter.totals.idle_by_gpu[1] == pytest.approx(50 * 10, rel=1e-6)
    assert meter.totals.idle_by_gpu[0] == pytest.approx(50 * 2 + 4 * 100, rel=1e-6)
    assert sum(u.joules for u in by_memory if u.gpu_id == 0) == pytest.approx(500.0, rel=1e-6)
