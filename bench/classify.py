"""Classifying 200 GPU processes: first sight and steady state, with pidfds and without.

Spawns 200 sleeping children, puts them all on one GPU in a snapshot and times
``ProcessTracker.update``: the first poll reads /proc for every process; later polls only ask
which known processes exited. "without pidfd" points the tracker at a directory of links into
/proc (as when the host /proc is mounted elsewhere), so it re-reads each start time instead;
"mem moves" changes every process's GPU memory on every poll, so no filled process is reused.
Target: steady state under 1 ms per poll. Steady polls are timed in wall-clock and in this
thread's CPU time: on a shared machine the wall clock also counts waits for a CPU.

    .venv/bin/python bench/classify.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpm.classify.tracker import ProcessTracker
from gpm.model import GpuProcess, GpuSample, Snapshot

N = 200
STEADY_POLLS = 300
FIRST_ROUNDS = 5


def snapshot(pids: list[int], t: float, changing: bool = False) -> Snapshot:
    """All pids on GPU 0; with ``changing`` every process's memory differs from the last poll."""
    shift = int(t) if changing else 0
    procs = tuple(GpuProcess(pid=pid, gpu_memory_bytes=((pid + shift) % 97) << 20) for pid in pids)
    return Snapshot(timestamp=t, source="bench", gpus=(GpuSample(0, t, processes=procs),))


def measure(proc_root: Path, pids: list[int], changing: bool) -> tuple[float, float, float, float]:
    """First sight, steady median, steady p95 and steady CPU median, in ms per poll of all pids."""
    firsts = []
    for _ in range(FIRST_ROUNDS):
        tracker = ProcessTracker(proc_root)
        start = time.perf_counter()
        _, events = tracker.update(snapshot(pids, 0.0))
        firsts.append(time.perf_counter() - start)
        assert len(events) == len(pids), "every child should start a session"
        tracker.close(1.0)
    tracker = ProcessTracker(proc_root)
    tracker.update(snapshot(pids, 0.0))
    steady, cpu = [], []
    for i in range(STEADY_POLLS):
        snap = snapshot(pids, 1.0 + i, changing)
        start, start_cpu = time.perf_counter(), time.thread_time()
        _, events = tracker.update(snap)
        cpu.append(time.thread_time() - start_cpu)
        steady.append(time.perf_counter() - start)
        assert not events
    tracker.close(STEADY_POLLS + 1.0)
    steady.sort()
    return (
        statistics.median(firsts) * 1e3,
        statistics.median(steady) * 1e3,
        steady[int(len(steady) * 0.95)] * 1e3,
        statistics.median(cpu) * 1e3,
    )


def main() -> None:
    children = [subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL) for _ in range(N)]
    try:
        pids = [c.pid for c in children]
        with tempfile.TemporaryDirectory() as tmp:
            links = Path(tmp)
            (links / "stat").symlink_to("/proc/stat")
            for pid in pids:
                (links / str(pid)).symlink_to(f"/proc/{pid}")
            print(f"{N} GPU processes, python {sys.version.split()[0]}")
            print(
                f"{'':<18}{'first sight ms':>15}{'steady median ms':>18}{'steady p95 ms':>15}"
                f"{'steady CPU ms':>15}"
            )
            runs = (
                ("pidfd", Path("/proc"), False),
                ("pidfd, mem moves", Path("/proc"), True),
                ("without pidfd", links, False),
            )
            for label, root, changing in runs:
                first, median, p95, cpu = measure(root, pids, changing)
                print(f"{label:<18}{first:>15.2f}{median:>18.3f}{p95:>15.3f}{cpu:>15.3f}")
    finally:
        for child in children:
            child.kill()
            child.wait()


if __name__ == "__main__":
    main()
