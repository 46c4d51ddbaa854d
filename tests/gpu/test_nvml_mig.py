"""MIG through the real bindings: each MIG device reported apart with its own memory, processes
attributed to the instance they run on, and a GPU with MIG off (or without MIG) read as before."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from gpm.gpu.mig import profile_of
from gpm.gpu.nvml import NvmlSource
from gpm.model import GpuSample, MigDevice
from tests.conftest import GpmProcess
from tests.fakes.fake_nvml import Scenario, fake_nvml_call_count

GIB = 1 << 30


def poll(library: Path, polls: int = 1) -> list[GpuSample]:
    source = NvmlSource(library_path=str(library))
    try:
        for _ in range(polls - 1):
            source.poll(1.0)
        return list(source.poll(2.0).gpus)
    finally:
        source.close()


def two_instances(scenario: Scenario) -> Scenario:
    """An A100 split into a 3g.40gb and a 1g.10gb instance, a process on each."""
    scenario.set_gpu(0, name="NVIDIA A100-SXM4-80GB", memory_total=80 * GIB, memory_used=30 * GIB)
    scenario.set_mig(
        0, 0, name="NVIDIA A100-SXM4-80GB MIG 3g.40gb", uuid="MIG-aaaa", gi=1, ci=0,
        memory_total=40 * GIB, memory_used=20 * GIB, compute=[(4242, 19 * GIB)],
    )  # fmt: skip
    scenario.set_mig(
        0, 1, name="NVIDIA A100-SXM4-80GB MIG 1g.10gb", uuid="MIG-bbbb", gi=9, ci=0,
        memory_total=10 * GIB, memory_used=5 * GIB, compute=[(5151, 4 * GIB)],
    )  # fmt: skip
    return scenario


def test_two_instances_each_with_its_process(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    two_instances(fake_nvml_scenario).write()
    (g,) = poll(fake_nvml_lib)
    assert g.mig_devices == (
        MigDevice(0, "MIG-aaaa", "3g.40gb", 1, 0, 20 * GIB, 40 * GIB, None),
        MigDevice(1, "MIG-bbbb", "1g.10gb", 9, 0, 5 * GIB, 10 * GIB, None),
    )
    # The GPU's own readings stay the GPU's: not the sum of its instances.
    assert (g.memory_used_bytes, g.memory_total_bytes) == (30 * GIB, 80 * GIB)
    procs = {p.pid: p for p in g.processes or ()}
    assert (procs[4242].mig_index, procs[4242].gpu_memory_bytes) == (0, 19 * GIB)
    assert (procs[5151].mig_index, procs[5151].gpu_memory_bytes) == (1, 4 * GIB)
    assert len(procs) == 2  # the whole GPU's list names them too, without doubling them


def test_whole_gpu_list_alone_places_processes_by_instance_ids(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path, fake_nvml_build: Callable[..., Path]
) -> None:
    """Where a MIG device's own list cannot be read, the instance ids of the whole GPU's list
    (what a privileged caller gets) still place each process."""
    two_instances(fake_nvml_scenario).not_supported(0, "mig_processes").write()
    (g,) = poll(fake_nvml_lib)
    assert {p.pid: p.mig_index for p in g.processes or ()} == {4242: 0, 5151: 1}
    # Without the instances' ids no entry can be matched: unknown rather than wrong.
    (g,) = poll(fake_nvml_build(omit=("nvmlDeviceGetComputeInstanceId",)))
    assert {p.pid: p.mig_index for p in g.processes or ()} == {4242: None, 5151: None}


def test_instance_facts_are_read_once_per_mig_device(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    two_instances(fake_nvml_scenario).write()
    before = fake_nvml_call_count(fake_nvml_lib, "nvmlDeviceGetGpuInstanceId")
    (g,) = poll(fake_nvml_lib, polls=3)
    assert g.mig_devices is not None and len(g.mig_devices) == 2
    assert fake_nvml_call_count(fake_nvml_lib, "nvmlDeviceGetGpuInstanceId") - before == 2


def test_mig_off_and_no_mig_support_read_as_before(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    fake_nvml_scenario.set_gpu(0, name="NVIDIA A100-SXM4-80GB", mig_mode=0)
    fake_nvml_scenario.set_gpu(1, name="NVIDIA GeForce RTX 4090")  # NOT_SUPPORTED
    fake_nvml_scenario.set_processes(0, compute=[(7, GIB)]).write()
    off, consumer = poll(fake_nvml_lib)
    assert off.mig_devices is None and consumer.mig_devices is None
    assert [(p.pid, p.mig_index) for p in off.processes or ()] == [(7, None)]


def test_a_mig_device_that_cannot_be_listed_leaves_the_rest(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    two_instances(fake_nvml_scenario).fail(0, "mig_devices", "NO_PERMISSION").write()
    (g,) = poll(fake_nvml_lib)
    assert g.mig_devices == ()  # in MIG mode, instances unknown: not "MIG off"
    assert g.memory_used_bytes == 30 * GIB
    assert {p.pid for p in g.processes or ()} == {4242, 5151}


def test_profile_names() -> None:
    assert profile_of("NVIDIA A100-SXM4-40GB MIG 1g.5gb") == "1g.5gb"
    assert profile_of(b"NVIDIA H200 MIG 1c.3g.71gb") == "1c.3g.71gb"
    assert profile_of("NVIDIA H100 80GB HBM3") is None
    assert profile_of(None) is None


def test_mig_mode_unreadable_reads_as_before(
    fake_nvml_scenario: Scenario, fake_nvml_lib: Path
) -> None:
    two_instances(fake_nvml_scenario).not_supported(0, "mig").write()
    (g,) = poll(fake_nvml_lib)
    assert g.mig_devices is None
    assert {p.pid: p.mig_index for p in g.processes or ()} == {4242: None, 5151: None}


def test_status_shows_mig_devices_end_to_end(
    gpm_process: Callable[..., GpmProcess], fake_nvml_lib: Path, tmp_path: Path
) -> None:
    sc = two_instances(Scenario(tmp_path / "scenario.txt"))
    # A live process on MIG device 1, so the classifier fills it in from /proc and must keep
    # where it runs.
    sc.set_mig(0, 1, compute=[(os.getpid(), 4 * GIB)])
    sc.set_gpu(1, name="NVIDIA GeForce RTX 4090").write()
    gpm = gpm_process(GPM_GPU_NVML_LIBRARY=str(fake_nvml_lib), FAKE_NVML_SCENARIO=str(sc.path))
    result = gpm.run("status", "--json")
    assert result.returncode == 0, result.stderr
    a100, rtx = json.loads(result.stdout)["gpus"]
    assert [(m["index"], m["profile"], m["memory_total_bytes"]) for m in a100["mig_devices"]] == [
        (0, "3g.40gb", 40 * GIB),
        (1, "1g.10gb", 10 * GIB),
    ]
    procs = {p["pid"]: p for p in a100["processes"]}
    assert {pid: p["mig_index"] for pid, p in procs.items()} == {4242: 0, os.getpid(): 1}
    assert procs[os.getpid()]["user"] is not None  # filled in from /proc by the classifier
    assert rtx["mig_devices"] is None
    table = gpm.run("status").stdout
    assert "MIG 0 3g.40gb" in table and "20.0/40.0" in table
    assert "MIG 1  " in table  # pid 5151's row names its instance
