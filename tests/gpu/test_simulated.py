"""Simulated GPUs: deterministic, marked simulated, plausible, and alive over time."""

from __future__ import annotations

import pytest

from gpm.gpu.simulated import PID_BASE, SERVER_PID, SimulatedSource
from gpm.model import Workload

T0 = 1_800_000_000.0


def test_same_seed_and_time_give_the_same_snapshot() -> None:
    a = SimulatedSource(2, seed=7, clock_start=T0)
    b = SimulatedSource(2, seed=7, clock_start=T0)
    assert a.poll(T0 + 123.0) == b.poll(T0 + 123.0)
    assert SimulatedSource(2, seed=8, clock_start=T0).poll(T0 + 123.0) != a.poll(T0 + 123.0)


def test_every_sample_is_marked_simulated_with_sim_uuids() -> None:
    snap = SimulatedSource(3, seed=1).poll(T0)
    assert (snap.source, snap.message) == ("simulated", None)
    assert [g.gpu_id for g in snap.gpus] == [0, 1, 2]
    assert all(g.simulated and g.up for g in snap.gpus)
    assert [g.uuid for g in snap.gpus] == [f"GPU-51300001-0000-4000-8000-sim-{i}" for i in range(3)]
    assert {g.name for g in snap.gpus} == {"GPM Simulated RTX 4090"}


def test_readings_stay_plausible_for_an_hour() -> None:
    source = SimulatedSource(2, seed=3, clock_start=T0)
    last_energy = [0.0, 0.0]
    for step in range(0, 3600, 5):
        for gpu in source.poll(T0 + step).gpus:
            assert gpu.utilization_percent is not None and 0 <= gpu.utilization_percent <= 100
            assert gpu.temperature_celsius is not None and 25 <= gpu.temperature_celsius <= 95
            assert gpu.power_watts is not None and gpu.power_limit_watts is not None
            assert 0 < gpu.power_watts <= gpu.power_limit_watts
            assert gpu.memory_used_bytes is not None and gpu.memory_total_bytes is not None
            assert gpu.memory_free_bytes == gpu.memory_total_bytes - gpu.memory_used_bytes
            assert 0 < gpu.memory_used_bytes < gpu.memory_total_bytes
            assert gpu.fan_percent is not None and 30 <= gpu.fan_percent <= 100
            assert gpu.performance_state in (2, 8)
            assert gpu.energy_joules is not None and gpu.energy_joules >= last_energy[gpu.gpu_id]
            last_energy[gpu.gpu_id] = gpu.energy_joules


def test_values_change_over_time() -> None:
    source = SimulatedSource(1, seed=0, clock_start=T0)
    utils = {source.poll(T0 + t).gpus[0].utilization_percent for t in range(0, 600, 10)}
    temps = {source.poll(T0 + t).gpus[0].temperature_celsius for t in range(0, 600, 10)}
    assert len(utils) > 30 and len(temps) > 30
    assert max(u for u in utils if u is not None) - min(u for u in utils if u is not None) > 20


def test_each_gpu_overheats_for_a_while_every_ten_minutes() -> None:
    source = SimulatedSource(2, seed=5, clock_start=T0)
    hot_seconds = [0, 0]
    for t in range(0, 600):
        for gpu in source.poll(T0 + t).gpus:
            assert gpu.temperature_celsius is not None and gpu.throttle_reasons is not None
            if gpu.temperature_celsius > 85:
                hot_seconds[gpu.gpu_id] += 1
                assert "sw_thermal_slowdown" in gpu.throttle_reasons
    assert all(30 <= s <= 90 for s in hot_seconds), hot_seconds


def test_processes_are_fake_pids_with_preset_classification() -> None:
    snap = SimulatedSource(2, seed=0, clock_start=T0).poll(T0)
    workloads = set()
    for gpu in snap.gpus:
        assert gpu.processes
        for proc in gpu.processes:
            assert proc.pid >= PID_BASE
            assert proc.classification is not None
            assert proc.classification.reason == "simulated"
            assert proc.started_at is not None and proc.started_at <= T0
            workloads.add(proc.classification.workload)
    assert {Workload.LLM_INFERENCE, Workload.ML_TRAINING, Workload.GAMING} <= workloads
    names = {p.name for g in snap.gpus for p in g.processes or ()}
    assert {"ollama", "python train.py", "game.exe"} <= names
    # The Ollama runners share one simulated server as parent; nothing else has a parent.
    parents = {(p.name, p.parent_pid, p.parent_name) for g in snap.gpus for p in g.processes or ()}
    assert {x for x in parents if x[1] is not None} == {("ollama", SERVER_PID, "ollama")}


def test_one_process_comes_and_goes() -> None:
    source = SimulatedSource(1, seed=0, clock_start=T0)
    counts = {len(source.poll(T0 + t).gpus[0].processes or ()) for t in range(0, 600, 30)}
    assert len(counts) == 2


def test_clock_start_defaults_to_first_poll() -> None:
    source = SimulatedSource(1)
    first = source.poll(T0)
    assert source.clock_start == T0
    assert first.gpus[0].energy_joules == 0.0
    later = source.poll(T0 + 60).gpus[0].energy_joules
    assert later is not None and 60 * 100 < later < 60 * 450


def test_zero_gpus_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SimulatedSource(0)
