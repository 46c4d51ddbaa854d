"""Browser helpers shared by the dashboard test and bench/dashboard_heap.py.

Chromium is Debian's (/usr/bin/chromium), never a downloaded one; the dashboard is the built
bundle in gpm/api/static/, served by a real ``gpm run --demo``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from gpm.llm.demo import DEMO_MODELS

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
STATIC_INDEX = REPO / "gpm" / "api" / "static" / "index.html"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def missing_prerequisite() -> str | None:
    """Why the browser checks cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    if not STATIC_INDEX.exists():
        return f"{STATIC_INDEX} is not built (cd dashboard && npm ci && npm run build)"
    return None


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for one test module (import the fixture into it)."""
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def heap_after_gc(page: Page) -> int:
    """Bytes of JS heap in use after a forced full garbage collection."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("HeapProfiler.collectGarbage")
        usage: dict[str, Any] = cdp.send("Runtime.getHeapUsage")
        return int(usage["usedSize"])
    finally:
        cdp.detach()


def shown_timestamp(page: Page) -> str | None:
    """The timestamp of the snapshot the gauges show now."""
    return page.get_attribute("[data-testid=gpu-gauges]", "data-snapshot-timestamp", timeout=5000)


def send_generation(proxy_url: str, model: str) -> int:
    """One non-streamed generation through GPM's proxy; returns the HTTP status."""
    body = json.dumps({"model": model, "prompt": "Why is the sky blue?", "stream": False})
    request = urllib.request.Request(
        proxy_url + "/api/generate",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        resp.read()
        return int(resp.status)


def fill_sessions(proxy_url: str, count: int) -> None:
    """Send ``count`` requests through the proxy so the sessions table starts out full."""
    models = [DEMO_MODELS[i % len(DEMO_MODELS)].name for i in range(count)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda model: send_generation(proxy_url, model), models))
    assert statuses == [200] * count, statuses


def warm_up(page: Page, seconds: float) -> None:
    """Wait until every panel has data, then let JIT and caches settle before measuring."""
    expect(page.get_by_test_id("gpu-gauges").first).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("session-row").first).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("charts").first).not_to_have_attribute(
        "data-url", "", timeout=15_000
    )
    page.wait_for_timeout(seconds * 1000)


@dataclass
class HeapReport:
    start_bytes: int
    end_bytes: int
    samples: list[tuple[float, int]]
    snapshots_shown: int

    @property
    def growth_percent(self) -> float:
        return 100.0 * (self.end_bytes - self.start_bytes) / self.start_bytes

    def lines(self) -> list[str]:
        mib = 1024 * 1024
        out = [f"  t={t:6.0f}s heap={used / mib:7.2f} MiB" for t, used in self.samples]
        out.append(
            f"heap after GC: start {self.start_bytes / mib:.2f} MiB, end {self.end_bytes / mib:.2f}"
            f" MiB, growth {self.growth_percent:+.1f} %, {self.snapshots_shown} snapshots shown"
        )
        return out


def watch_heap(page: Page, seconds: float, sample_every: float) -> HeapReport:
    """Let the live page run for ``seconds``, sampling the heap after GC as it goes.

    The waits here are the measurement window itself, not synchronisation.
    """
    start = heap_after_gc(page)
    began = time.monotonic()
    samples: list[tuple[float, int]] = [(0.0, start)]
    seen: set[str] = set()
    while (elapsed := time.monotonic() - began) < seconds:
        page.wait_for_timeout(min(sample_every, seconds - elapsed) * 1000)
        stamp = shown_timestamp(page)
        if stamp:
            seen.add(stamp)
        samples.append((time.monotonic() - began, heap_after_gc(page)))
    end = samples[-1][1]
    # Distinct snapshots seen at sample times; proves the page kept updating.
    return HeapReport(start, end, samples, len(seen))


@dataclass
class StreamRecorder:
    """Reads GPM's SSE stream in a thread and keeps every snapshot by timestamp."""

    url: str
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> StreamRecorder:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        with urllib.request.urlopen(self.url, timeout=5) as resp:
            while not self._stop.is_set():
                line = resp.readline()
                if not line:
                    return
                if line.startswith(b"data:"):
                    snapshot = json.loads(line[5:])
                    self.snapshots[snapshot["timestamp"]] = snapshot
