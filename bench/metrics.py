"""Time to render ``/metrics`` with 8 GPUs, 200 GPU processes and 50 models (target < 5 ms).

Every model has had sessions, so all four LLM histograms carry 50 label sets. Three cases:
a steady scrape (no session since the last one), a scrape after a session for every model
(every histogram's cached text is rebuilt), and prometheus_client's own encoder over the same
collectors for comparison. Run from the repository root: ``.venv/bin/python bench/metrics.py``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import generate_latest

from gpm.telemetry.prometheus import MetricsExporter
from tests.telemetry.telemetry_data import live_state, session

GPUS, PROCESSES, MODELS = 8, 200, 50
ROUNDS, PER_ROUND = 7, 50


def best_ms(
    fn: Callable[[], object], before: Callable[[], None] | None = None
) -> tuple[float, float]:
    """Best per-call mean (CPU ms, wall ms) over ROUNDS rounds; ``before`` runs untimed.

    CPU time is this thread's own, so it is the cost of a scrape even on a busy shared machine;
    wall time adds whatever the machine's other load costs.
    """
    cpu, wall = [], []
    for _ in range(ROUNDS):
        cpu_total = wall_total = 0.0
        for _ in range(PER_ROUND):
            if before is not None:
                before()
            c0, w0 = time.thread_time(), time.perf_counter()
            fn()
            cpu_total += time.thread_time() - c0
            wall_total += time.perf_counter() - w0
        cpu.append(cpu_total / PER_ROUND * 1000)
        wall.append(wall_total / PER_ROUND * 1000)
    return min(cpu), min(wall)


def main() -> None:
    exporter = MetricsExporter(
        live_state(gpus=GPUS, processes=PROCESSES // GPUS, models=MODELS),
        model_label_limit=MODELS,
    )
    models = [f"model-{i}:7b" for i in range(MODELS)]

    def one_session_per_model() -> None:
        for m in models:
            exporter.observe_session(session(m))

    one_session_per_model()
    body = exporter.render()
    lines = body.count(b"\n")
    print(f"exposition: {len(body) / 1024:.0f} KiB, {lines} lines")
    cases = {
        "render, steady (text)": best_ms(exporter.render),
        "render, steady (OpenMetrics)": best_ms(lambda: exporter.render(openmetrics=True)),
        "render after a session per model": best_ms(exporter.render, one_session_per_model),
        "prometheus_client generate_latest": best_ms(lambda: generate_latest(exporter.registry)),
    }
    print(f"{'case':36} {'CPU ms':>8} {'wall ms':>8}")
    for name, (cpu, wall) in cases.items():
        print(f"{name:36} {cpu:8.2f} {wall:8.2f}")
    cpu_us, _ = best_ms(lambda: exporter.observe_session(session("model-1:7b")))
    print(f"observe_session: {cpu_us * 1000:.1f} us CPU")
    steady_cpu = cases["render, steady (text)"][0]
    print(f"target < 5 ms CPU for a steady scrape: {'met' if steady_cpu < 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
