"""ProcessTracker: filled snapshots and start/end events, on fixture trees and live children."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpm.classify.tracker import ProcessTracker
from gpm.model import Classification, GpuProcess, GpuSample, ProcessEvent, Snapshot, Workload
from gpm.settings import ClassifierRule
from tests.fakes.fake_workloads import fake_torch, spawn, stop

PROC = Path(__file__).parent.parent / "fixtures" / "proc"
MiB = 1 << 20

__all__ = ["fake_torch"]  # a fixture this module uses, imported so pytest finds it here


def snap(t: float, *gpus: GpuSample) -> Snapshot:
    return Snapshot(timestamp=t, source="nvml", gpus=gpus)


def gpu(procs: tuple[GpuProcess, ...] | None, gpu_id: int = 0, up: bool = True) -> GpuSample:
    return GpuSample(gpu_id=gpu_id, timestamp=0.0, uuid=f"GPU-{gpu_id}", up=up, processes=procs)


def p(pid: int, mem: int = 100 * MiB, kind: str = "compute") -> GpuProcess:
    return GpuProcess(pid=pid, gpu_memory_bytes=mem, kind=kind)


def kinds(events: list[ProcessEvent]) -> list[tuple[str, int]]:
    return [(e.event, e.pid) for e in events]


@pytest.fixture
def llama_root(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    shutil.copytree(PROC / "llamacpp", root, symlinks=True)
    return root


def test_fills_processes_and_emits_start_then_end_with_peak_and_duration(
    llama_root: Path,
) -> None:
    tracker = ProcessTracker(llama_root)
    out, events = tracker.update(snap(100.0, gpu((p(7001), p(7003)))))
    assert out.gpus[0].processes is not None
    filled = out.gpus[0].processes[0]
    assert filled.name == "llama-server" and filled.user == "root"
    assert filled.classification is not None
    assert filled.classification.workload is Workload.LLM_INFERENCE
    assert filled.started_at == pytest.approx(1795000000 + 107001 / 100, abs=1e3)
    assert kinds(events) == [("start", 7001), ("start", 7003)]
    assert events[0].model == "qwen2-0_5b-instruct-q4_k_m.gguf" and events[0].gpu_uuid == "GPU-0"

    _, events = tracker.update(snap(102.0, gpu((p(7001, 300 * MiB), p(7003)))))
    assert events == []
    _, events = tracker.update(snap(104.0, gpu((p(7003),))))
    assert kinds(events) == [("end", 7001)]
    end = events[0]
    assert end.duration_seconds == pytest.approx(4.0)
    assert end.gpu_memory_peak_bytes == 300 * MiB
    assert end.workload is Workload.LLM_INFERENCE and end.reason == "cmdline: llama-server"
    assert kinds(tracker.close(110.0)) == [("end", 7003)]


def test_steady_state_does_not_reread_proc(llama_root: Path) -> None:
    tracker = ProcessTracker(llama_root)
    tracker.update(snap(1.0, gpu((p(7001),))))
    # Files other than stat may change or vanish: a known process is not read again.
    (llama_root / "7001" / "cmdline").write_bytes(b"ffmpeg\0")
    (llama_root / "7001" / "maps").unlink()
    out, events = tracker.update(snap(2.0, gpu((p(7001),))))
    assert events == []
    assert out.gpus[0].processes is not None
    c = out.gpus[0].processes[0].classification
    assert c is not None and c.reason == "cmdline: llama-server"


def test_pid_reuse_ends_the_old_process_and_starts_the_new(llama_root: Path) -> None:
    tracker = ProcessTracker(llama_root)
    tracker.update(snap(1.0, gpu((p(7001),))))
    shutil.rmtree(llama_root / "7001")
    shutil.copytree(PROC / "general" / "9401", llama_root / "7001")
    stat = llama_root / "7001" / "stat"  # the new process holds pid 7001, started later
    stat.write_text(stat.read_text().replace("9401 (", "7001 (").replace(" 109401 ", " 209401 "))
    out, events = tracker.update(snap(3.0, gpu((p(7001),))))
    assert kinds(events) == [("start", 7001), ("end", 7001)]
    assert events[0].name == "ffmpeg" and events[0].workload is Workload.GENERAL_COMPUTE
    assert events[1].name == "llama-server" and events[1].duration_seconds == pytest.approx(2.0)
    assert out.gpus[0].processes is not None
    assert out.gpus[0].processes[0].name == "ffmpeg"


def test_gone_pid_is_skipped_without_events(llama_root: Path) -> None:
    tracker = ProcessTracker(llama_root)
    out, events = tracker.update(snap(1.0, gpu((p(424242), p(7002)))))
    assert kinds(events) == [("start", 7002)]
    assert out.gpus[0].processes is not None
    assert out.gpus[0].processes[0] == p(424242)  # left as the GPU reported it


def test_unknown_or_down_gpu_keeps_sessions_open_until_the_process_exits(
    llama_root: Path,
) -> None:
    tracker = ProcessTracker(llama_root)
    tracker.update(snap(1.0, gpu((p(7001),)), gpu((p(7002),), gpu_id=1)))
    out, events = tracker.update(snap(2.0, gpu(None), gpu(None, gpu_id=1, up=False)))
    assert events == [] and out.gpus[0].processes is None
    _, events = tracker.update(snap(3.0))  # no GPUs at all this poll
    assert events == []
    shutil.rmtree(llama_root / "7002")  # exited while its GPU was unreadable
    _, events = tracker.update(snap(4.0, gpu(None), gpu(None, gpu_id=1, up=False)))
    assert kinds(events) == [("end", 7002)] and events[0].gpu_id == 1
    _, events = tracker.update(snap(5.0, gpu((p(7001),))))
    assert events == []  # still the same session on GPU 0


def test_same_process_on_two_gpus_has_two_sessions(llama_root: Path) -> None:
    tracker = ProcessTracker(llama_root)
    _, events = tracker.update(snap(1.0, gpu((p(7001),)), gpu((p(7001),), gpu_id=1)))
    assert [(e.event, e.gpu_id) for e in events] == [("start", 0), ("start", 1)]
    _, events = tracker.update(snap(2.0, gpu((p(7001),)), gpu((), gpu_id=1)))
    assert [(e.event, e.gpu_id) for e in events] == [("end", 1)]


def test_preclassified_processes_are_kept_as_they_are(llama_root: Path) -> None:
    simulated = GpuProcess(
        pid=7001,
        name="sim-llm",
        started_at=50.0,
        classification=Classification(Workload.GAMING, "simulated"),
    )
    tracker = ProcessTracker(llama_root)
    out, events = tracker.update(snap(1.0, gpu((simulated,))))
    assert out.gpus[0].processes == (simulated,)
    assert kinds(events) == [("start", 7001)] and events[0].reason == "simulated"
    assert tracker.close() != []


def test_user_rules_and_kind_reach_the_classifier() -> None:
    rule = ClassifierRule(pattern="Unity", workload=Workload.ML_TRAINING, field="name")
    out, _ = ProcessTracker(PROC / "general", rules=[rule]).update(
        snap(1.0, gpu((p(9501, kind="graphics"), p(9401))))
    )
    procs = out.gpus[0].processes
    assert procs is not None and procs[0].classification is not None
    assert procs[0].classification.reason == "maps: UnityPlayer.so"  # rule matched nothing
    rule = ClassifierRule(pattern="^ffmpeg$", workload=Workload.ML_TRAINING, field="name")
    out, _ = ProcessTracker(PROC / "general", rules=[rule]).update(snap(1.0, gpu((p(9401),))))
    procs = out.gpus[0].processes
    assert procs is not None and procs[0].classification is not None
    assert procs[0].classification.workload is Workload.ML_TRAINING


# --- end to end against the live /proc with real child processes -------------------------


@pytest.fixture
def children(fake_torch: Path) -> Iterator[dict[str, subprocess.Popen[str]]]:
    kids = {
        "llm": spawn("llama-server", "pass", "--model", "qwen2.gguf"),
        "game": spawn("game", env={"SteamAppId": "570", "PATH": "/usr/bin:/bin"}),
        "torch": spawn("python3", f"import ctypes; ctypes.CDLL({str(fake_torch)!r})", "train.py"),
        "plain": spawn("cuda-job"),
    }
    yield kids
    for child in kids.values():
        child.kill()
        child.wait(timeout=10)


def test_live_children_are_classified_and_their_exit_ends_the_session(
    children: dict[str, subprocess.Popen[str]],
) -> None:
    tracker = ProcessTracker()
    procs = tuple(p(c.pid) for c in children.values())
    out, events = tracker.update(snap(10.0, gpu(procs)))
    assert out.gpus[0].processes is not None
    got = {
        name: proc.classification
        for name, proc in zip(children, out.gpus[0].processes, strict=True)
    }
    assert got["llm"] is not None and got["llm"].workload is Workload.LLM_INFERENCE
    assert got["llm"].model == "qwen2.gguf"
    assert got["game"] == Classification(Workload.GAMING, "env: SteamAppId=570", steam_app_id=570)
    assert got["torch"] is not None and got["torch"].reason == "maps: libtorch_cuda.so"
    assert got["plain"] is not None and got["plain"].workload is Workload.GENERAL_COMPUTE
    assert [e.event for e in events] == ["start"] * 4
    assert all(e.process_started_at is not None for e in events)

    # The LLM child exits while the GPU still lists it: the tracker notices, skips it, ends it.
    stop(children["llm"])
    out, events = tracker.update(snap(13.0, gpu(procs)))
    assert kinds(events) == [("end", children["llm"].pid)]
    assert events[0].duration_seconds == pytest.approx(3.0)
    assert out.gpus[0].processes is not None and out.gpus[0].processes[0].classification is None

    ends = tracker.close(20.0)
    assert sorted(e.pid for e in ends) == sorted(c.pid for n, c in children.items() if n != "llm")
    assert all(e.duration_seconds == pytest.approx(10.0) for e in ends)


def test_fill_keeps_every_source_field(llama_root: Path) -> None:
    """_fill builds GpuProcess field by field: a new field must be carried over there too."""
    assert [f.name for f in dataclasses.fields(GpuProcess)] == [
        "pid",
        "name",
        "gpu_memory_bytes",
        "sm_utilization_percent",
        "kind",
        "user",
        "started_at",
        "classification",
        "mig_index",
        "parent_pid",
        "parent_name",
    ]
    given = GpuProcess(
        pid=7001,
        name="srv",
        gpu_memory_bytes=5,
        sm_utilization_percent=7.0,
        kind="compute+graphics",
        user="alice",
        mig_index=3,
        parent_pid=42,
        parent_name="srv-parent",
    )
    out, _ = ProcessTracker(llama_root).update(snap(1.0, gpu((given,))))
    assert out.gpus[0].processes is not None
    filled = out.gpus[0].processes[0]
    assert dataclasses.replace(filled, started_at=None, classification=None) == given


def test_changed_readings_are_filled_afresh(llama_root: Path) -> None:
    tracker = ProcessTracker(llama_root)
    tracker.update(snap(1.0, gpu((p(7001, 1 * MiB),))))
    out, _ = tracker.update(snap(2.0, gpu((p(7001, 2 * MiB),))))
    assert out.gpus[0].processes is not None
    assert out.gpus[0].processes[0].gpu_memory_bytes == 2 * MiB


def test_parent_from_proc(tmp_path: Path) -> None:
    """Ollama's runners carry their server as parent; the server's parent (init) is not kept."""
    root = tmp_path / "proc"
    shutil.copytree(PROC / "ollama", root, symlinks=True)
    out, _ = ProcessTracker(root).update(snap(1.0, gpu((p(6001), p(6002), p(6003)))))
    assert out.gpus[0].processes is not None
    parents = [(q.pid, q.parent_pid, q.parent_name) for q in out.gpus[0].processes]
    assert parents == [(6001, None, None), (6002, 6001, "ollama"), (6003, 6001, "ollama")]
