"""Workload classification through the running service: real processes, the fake NVML library.

Four live children stand for a game, an LLM server, a trainer and a plain compute job. The fake
``libnvidia-ml.so.1`` reports their pids on two GPUs, ``gpm run`` classifies them from the real
/proc, and the API, ``gpm status`` and the database must all say the same. Ending one child must
close its stay on the GPU with an end event that carries the duration.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GpmProcess, get_json, wait_for
from tests.fakes.fake_nvml import Scenario, build_fake_nvml
from tests.fakes.fake_workloads import fake_torch, spawn, stop

__all__ = ["fake_torch"]  # a fixture this module uses, imported so pytest finds it here

MiB = 1 << 20

# name: (gpu, workload, reason, model, steam_app_id)
EXPECTED: dict[str, tuple[int, str, str, str | None, int | None]] = {
    "llm": (0, "llm_inference", "cmdline: llama-server", "qwen2-0_5b.gguf", None),
    "trainer": (0, "ml_training", "maps: libtorch_cuda.so", None, None),
    "game": (1, "gaming", "env: SteamAppId=570", None, 570),
    "job": (1, "general_compute", "no game, LLM or ML evidence", None, None),
}


@pytest.fixture(scope="module")
def nvml_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_nvml(tmp_path_factory.mktemp("fake-nvml"))


@pytest.fixture
def children(fake_torch: Path) -> Iterator[dict[str, subprocess.Popen[str]]]:
    kids: dict[str, subprocess.Popen[str]] = {}
    try:
        kids["llm"] = spawn("llama-server", "pass", "-m", "/models/qwen2-0_5b.gguf", "-ngl", "99")
        kids["trainer"] = spawn(
            "python3", f"import ctypes; ctypes.CDLL({str(fake_torch)!r})", "train.py"
        )
        kids["game"] = spawn(
            "dota2", "pass", "-vulkan", env={"SteamAppId": "570", "PATH": "/usr/bin:/bin"}
        )
        kids["job"] = spawn("ffmpeg", "pass", "-hwaccel", "cuda", "-i", "in.mkv", "out.mkv")
        yield kids
    finally:
        for child in kids.values():
            child.kill()
            child.wait(timeout=10)


def report(sc: Scenario, kids: dict[str, subprocess.Popen[str]], running: set[str]) -> None:
    """Put the running children on their GPUs: the game on GPU 1's graphics list."""

    def compute(gpu: int) -> list[tuple[int, int | None]]:
        return [
            (kids[n].pid, (i + 1) * 512 * MiB)
            for i, n in enumerate(EXPECTED)
            if n in running and n != "game" and EXPECTED[n][0] == gpu
        ]

    sc.set_processes(0, compute=compute(0))
    game = [(kids["game"].pid, 3 * 1024 * MiB)] if "game" in running else []
    sc.set_processes(1, compute=compute(1), graphics=game)
    sc.write()


def check(item: dict[str, Any], name: str) -> None:
    _, workload, reason, model, app = EXPECTED[name]
    got = (item["workload"], item["reason"], item["model"], item["steam_app_id"])
    assert got == (workload, reason, model, app), f"{name}: {item}"
    assert item["started_at"] is not None, f"{name}: start time from /proc"


def events(gpm: GpmProcess) -> list[dict[str, Any]]:
    return get_json(gpm.api + "/api/process-events")["events"]  # type: ignore[no-any-return]


def db_rows_with_an_end(db: Path) -> list[sqlite3.Row] | None:
    """Every process_events row, once the writer has stored an end event; else None."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM process_events ORDER BY ts").fetchall()
    return rows if any(r["event"] == "end" for r in rows) else None


def test_running_service_classifies_live_processes_and_records_their_exit(
    gpm_process: Callable[..., GpmProcess],
    nvml_lib: Path,
    tmp_path: Path,
    children: dict[str, subprocess.Popen[str]],
) -> None:
    pid_of = {name: child.pid for name, child in children.items()}
    name_of = {pid: name for name, pid in pid_of.items()}
    sc = Scenario(tmp_path / "scenario.txt")
    sc.set_gpu(0, name="NVIDIA H100 80GB HBM3", uuid="GPU-cls-0000")
    sc.set_gpu(1, name="NVIDIA GeForce RTX 4090", uuid="GPU-cls-0001")
    report(sc, children, set(children))
    gpm = gpm_process(
        GPM_GPU_NVML_LIBRARY=str(nvml_lib),
        FAKE_NVML_SCENARIO=str(sc.path),
        GPM_OLLAMA_ENABLED="false",
    ).start("run")
    gpm.wait_ready()

    # /api/realtime: every child on its GPU, classified with its evidence
    def realtime() -> dict[int, tuple[int, dict[str, Any]]] | None:
        snap = get_json(gpm.api + "/api/realtime")
        found = {p["pid"]: (g["gpu_id"], p) for g in snap["gpus"] for p in g["processes"] or ()}
        return found if set(pid_of.values()) <= found.keys() else None

    on_gpus = wait_for(realtime, what="all four children in /api/realtime")
    for pid, (gpu, item) in on_gpus.items():
        name = name_of[pid]
        assert gpu == EXPECTED[name][0], name
        check(item, name)
    assert on_gpus[pid_of["game"]][1]["kind"] == "graphics"

    # /api/processes: the same, flat, with the GPU on each item
    items = get_json(gpm.api + "/api/processes")["processes"]
    assert sorted(i["pid"] for i in items) == sorted(pid_of.values())
    for item in items:
        assert item["gpu_id"] == EXPECTED[name_of[item["pid"]]][0]
        check(item, name_of[item["pid"]])

    # gpm status: a line per process with its workload and reason
    status = gpm.run("status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    for name, pid in pid_of.items():
        line = next((ln for ln in lines if ln.split()[:2] == ["pid", str(pid)]), None)
        assert line is not None, f"{name} missing from:\n{status.stdout}"
        _, workload, reason, _, _ = EXPECTED[name]
        assert workload in line.split() and line.endswith(reason), line

    # the LLM server leaves the GPU and exits: one end event, with its duration
    report(sc, children, set(children) - {"llm"})
    stop(children["llm"])
    end = wait_for(
        lambda: [e for e in events(gpm) if e["event"] == "end"],
        what="an end event in /api/process-events",
    )
    assert len(end) == 1 and end[0]["pid"] == pid_of["llm"], end
    assert end[0]["workload"] == "llm_inference" and end[0]["model"] == "qwen2-0_5b.gguf"
    assert end[0]["duration_seconds"] > 0
    starts = {e["pid"] for e in events(gpm) if e["event"] == "start"}
    assert starts == set(pid_of.values())

    # the database holds the same: a start row for each child, the end row with its duration
    rows = wait_for(
        lambda: db_rows_with_an_end(gpm.data_dir / "gpm.db"), what="the end event in gpm.db"
    )
    by_event: dict[str, dict[int, sqlite3.Row]] = {"start": {}, "end": {}}
    for row in rows:
        by_event[row["event"]][row["pid"]] = row
    assert by_event["start"].keys() == set(pid_of.values())
    for pid, row in by_event["start"].items():
        _, workload, reason, model, app = EXPECTED[name_of[pid]]
        assert (row["workload"], row["reason"], row["model"], row["steam_app_id"]) == (
            workload,
            reason,
            model,
            app,
        )
        assert row["process_started_at"] is not None and row["duration_seconds"] is None
    assert list(by_event["end"]) == [pid_of["llm"]]
    ended, started = by_event["end"][pid_of["llm"]], by_event["start"][pid_of["llm"]]
    assert ended["duration_seconds"] == pytest.approx(ended["ts"] - started["ts"], abs=1e-3)
    assert ended["gpu_memory_peak_bytes"] == 512 * MiB and ended["gpu_uuid"] == "GPU-cls-0000"
    assert gpm.stop() == 0
