"""JS heap of the live dashboard over a long run: ``gpm run --demo`` polling every 0.5 s.

Opens the built dashboard in Debian's Chromium, lets it take live updates (SSE snapshots, chart
and session refreshes) for the given minutes and prints the heap after a forced GC at each
sample. Target: the heap after GC levels off (under 20 % growth once warmed up).

    .venv/bin/python bench/dashboard_heap.py [--minutes 10] [--sample-secs 30] [--warmup-secs 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.conftest import GpmProcess, gpm_env  # noqa: E402
from tests.dashboard.dashboard_harness import (  # noqa: E402
    fill_sessions,
    launch,
    missing_prerequisite,
    warm_up,
    watch_heap,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--sample-secs", type=float, default=30.0)
    ap.add_argument("--warmup-secs", type=float, default=30.0)
    args = ap.parse_args()
    if (why := missing_prerequisite()) is not None:
        sys.exit(f"cannot run: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        env, ports = gpm_env(Path(tmp))
        gpm = GpmProcess(
            data_dir=Path(tmp) / "data", env=env, ports=ports, log_path=Path(tmp) / "gpm.log"
        )
        gpm.start("run", "--demo")
        try:
            gpm.wait_ready()
            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(gpm.api + "/")
                fill_sessions(f"http://127.0.0.1:{gpm.ports['proxy']}", 60)
                warm_up(page, args.warmup_secs)
                report = watch_heap(page, args.minutes * 60, args.sample_secs)
                browser.close()
        finally:
            gpm.stop()
    print(f"dashboard heap over {args.minutes:g} min of live updates at 0.5 s polling")
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
