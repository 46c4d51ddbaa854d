"""The built dashboard in a real Chromium against a real ``gpm run --demo``.

Checks what a user sees: gauges that show what the API says, charts that follow the GPU and
range pickers, sessions from the demo LLM traffic, the connection notice when GPM stops and
starts again, both screen sizes, and a JS heap that does not grow with live updates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from gpm.llm.demo import DEMO_MODELS
from tests.conftest import GpmProcess, get_json, wait_for
from tests.dashboard.dashboard_harness import (
    REPO,
    StreamRecorder,
    fill_sessions,
    missing_prerequisite,
    shown_timestamp,
    warm_up,
    watch_heap,
)
from tests.fakes.fake_nvml import Scenario, build_fake_nvml

SKIP_REASON = missing_prerequisite()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=str(SKIP_REASON))

ARTIFACTS = REPO / "tests" / "artifacts"
HEAP_WATCH_SECS = 60.0
HEAP_WARMUP_SECS = 15.0
SESSIONS_TO_FILL = 60  # more than the 50 rows the table shows
HEAP_GROWTH_LIMIT_PERCENT = 20.0
GAUGE_METRICS = {
    "utilization": "utilization_percent",
    "memory": "memory_percent",
    "temperature": "temperature_celsius",
    "power": "power_watts",
}


@pytest.fixture
def gpm(gpm_process: Callable[..., GpmProcess]) -> GpmProcess:
    process = gpm_process().start("run", "--demo")
    process.wait_ready()
    return process


@pytest.fixture
def page(browser: Browser, gpm: GpmProcess) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(gpm.api + "/")
    expect(page.get_by_test_id("gpu-gauges").first).to_be_visible(timeout=15_000)
    yield page
    context.close()


def number_in(text: str) -> float:
    match = re.search(r"-?[\d,]+(\.\d+)?", text)
    assert match, f"no number in gauge text {text!r}"
    return float(match.group(0).replace(",", ""))


def test_gauges_show_the_snapshot_the_api_sent(page: Page, gpm: GpmProcess) -> None:
    with StreamRecorder(gpm.api + "/api/stream") as recorder:
        wait_for(lambda: recorder.snapshots, what="a snapshot on /api/stream")
        wait_for(
            lambda: shown_timestamp(page) in recorder.snapshots,
            what="the page to show a recorded snapshot",
        )
        page.get_by_test_id("live-toggle").click()
        expect(page.get_by_test_id("live-toggle")).to_have_attribute("aria-pressed", "false")
        stamp = shown_timestamp(page)
        assert stamp is not None
        snapshot: dict[str, Any] = wait_for(
            lambda: recorder.snapshots.get(stamp), what=f"snapshot {stamp}"
        )

    gauges = page.locator("[data-testid=gpu-gauges][data-gpu='0']")
    gpu = next(g for g in snapshot["gpus"] if g["gpu_id"] == 0)
    for gauge, field in GAUGE_METRICS.items():
        value = gpu[field]
        text = gauges.get_by_test_id(f"gauge-{gauge}-value").text_content() or ""
        if value is None:
            assert text == "—"
        else:
            assert abs(number_in(text) - value) <= 0.5, f"{gauge}: page {text!r}, API {value}"
            assert (
                float(gauges.get_by_test_id(f"gauge-{gauge}").get_attribute("data-value") or "nan")
                == value
            )

    # Paused means frozen, while the API keeps moving on.
    newer = wait_for(
        lambda: (t := get_json(gpm.api + "/api/realtime")["timestamp"]) != stamp and t,
        what="a newer snapshot",
    )
    assert newer != stamp
    assert shown_timestamp(page) == stamp
    page.get_by_test_id("live-toggle").click()
    wait_for(lambda: shown_timestamp(page) != stamp, what="gauges to move again after resuming")


def test_gpu_and_range_pickers_change_the_charts(page: Page, gpm: GpmProcess) -> None:
    charts = page.get_by_test_id("charts")
    expect(charts).to_have_attribute("data-range", "1", timeout=15_000)
    expect(charts).to_have_attribute("data-url", re.compile(r"gpu_id=0&hours=1\b"))

    page.get_by_test_id("range-6h").click()
    expect(charts).to_have_attribute("data-range", "6", timeout=15_000)
    expect(charts).to_have_attribute("data-url", re.compile(r"gpu_id=0&hours=6\b"))
    assert page.get_by_test_id("range-6h").get_attribute("aria-pressed") == "true"

    info = get_json(gpm.api + "/api/info")
    assert info["gpu_count"] >= 2, "the demo is expected to simulate several GPUs"
    page.get_by_test_id("gpu-select").select_option("1")
    expect(charts).to_have_attribute("data-gpu", "1")
    expect(charts).to_have_attribute("data-url", re.compile(r"gpu_id=1&hours=6\b"), timeout=15_000)
    expect(page.get_by_test_id("gpu-gauges")).to_have_attribute("data-gpu", "1")

    page.get_by_test_id("gpu-select").select_option("all")
    expect(page.get_by_test_id("charts")).to_have_count(info["gpu_count"])
    expect(page.get_by_test_id("gpu-gauges")).to_have_count(info["gpu_count"])
    expect(page.get_by_test_id("trend-utilization").first).to_have_text(re.compile(r"^[▲▼─] "))


def test_every_gpu_has_a_tile_and_a_click_selects_it(page: Page, gpm: GpmProcess) -> None:
    realtime = get_json(gpm.api + "/api/realtime")
    tiles = page.get_by_test_id("gpu-tile")
    expect(tiles).to_have_count(len(realtime["gpus"]), timeout=15_000)
    for gpu in realtime["gpus"]:
        tile = page.locator(f"[data-testid=gpu-tile][data-gpu='{gpu['gpu_id']}']")
        expect(tile.get_by_test_id("health-badge")).to_have_text(gpu["health"])
    page.locator("[data-testid=gpu-tile][data-gpu='1']").click()
    expect(page.get_by_test_id("charts")).to_have_attribute("data-gpu", "1", timeout=15_000)
    expect(page.get_by_test_id("gpu-gauges")).to_have_attribute("data-gpu", "1")
    expect(page.locator("[data-testid=gpu-tile][data-gpu='1']")).to_have_attribute(
        "aria-pressed", "true"
    )


def test_a_mig_gpu_shows_its_devices_and_where_each_process_runs(
    browser: Browser, gpm_process: Callable[..., GpmProcess], tmp_path: Path
) -> None:
    """Through the fake NVML library: an A100 in MIG mode with a process on each instance."""
    gib = 1 << 30
    scenario = Scenario(tmp_path / "scenario.txt")
    scenario.set_gpu(0, name="NVIDIA A100-SXM4-80GB", memory_total=80 * gib)
    scenario.set_mig(0, 0, name="A100 MIG 3g.40gb", memory_total=40 * gib,
                     memory_used=20 * gib, gi=1, compute=[(4242, 19 * gib)])  # fmt: skip
    scenario.set_mig(0, 1, name="A100 MIG 1g.10gb", memory_total=10 * gib,
                     memory_used=5 * gib, gi=9, compute=[(5151, 4 * gib)])  # fmt: skip
    scenario.write()  # one GPU, split into MIG devices: its tile still shows them
    lib = build_fake_nvml(tmp_path / "lib")
    gpm = gpm_process(GPM_GPU_NVML_LIBRARY=str(lib), FAKE_NVML_SCENARIO=str(scenario.path))
    gpm.start("run").wait_ready()
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.goto(gpm.api + "/")
        a100 = page.locator("[data-testid=gpu-tile][data-gpu='0']")
        expect(a100.get_by_test_id("mig-device")).to_have_text(
            ["MIG 0 3g.40gb 20.0 GiB / 40.0 GiB", "MIG 1 1g.10gb 5.0 GiB / 10.0 GiB"],
            timeout=15_000,
        )
        expect(page.get_by_test_id("process-mig")).to_have_text(
            ["MIG 0 3g.40gb", "MIG 1 1g.10gb"], timeout=15_000
        )
    finally:
        context.close()


def js_fixed(value: float, digits: int = 2) -> str:
    """What the dashboard's ``formatNumber(value, digits)`` shows: en-US grouping, the shortest
    decimal of the double rounded half away from zero, as ``toLocaleString`` does."""
    exact = Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{exact:,.{digits}f}"


def test_efficiency_panel_shows_the_energy_api(page: Page, gpm: GpmProcess) -> None:
    """A row per model /api/energy reports, with its J/token as the API gave it to the page."""
    demo_models = sorted(model.name for model in DEMO_MODELS)

    def measured() -> bool:
        models = get_json(gpm.api + "/api/energy")["models"]
        names = sorted(m["model"] for m in models)
        return names == demo_models and all(m["joules_per_token"] for m in models)

    wait_for(measured, timeout=40, interval=0.5, what="J/token for every demo model")
    # Demo traffic moves J/token between any two reads: compare with the answer the page got.
    with page.expect_response(lambda r: "/api/energy?" in r.url, timeout=15_000) as answer:
        page.reload()
    served = answer.value.json()["models"]
    assert sorted(m["model"] for m in served) == demo_models
    rows = page.get_by_test_id("efficiency-model-row")
    expect(rows.get_by_test_id("efficiency-model")).to_have_text(
        [m["model"] for m in served], timeout=15_000
    )
    expect(rows.get_by_test_id("joules-per-token")).to_have_text(
        [js_fixed(m["joules_per_token"]) for m in served]
    )
    expect(page.get_by_test_id("energy-today")).to_contain_text(re.compile(r"\d Wh|\d kWh"))
    expect(page.get_by_test_id("energy-week")).to_contain_text(re.compile(r"\d Wh|\d kWh"))

    # It covers the range picked for the history charts.
    panel = page.get_by_test_id("efficiency")
    expect(panel).to_have_attribute("data-range", "1")
    page.get_by_test_id("range-24h").click()
    expect(panel).to_have_attribute("data-range", "24", timeout=15_000)


def test_sessions_table_fills_from_proxy_traffic(page: Page, gpm: GpmProcess) -> None:
    rows = page.get_by_test_id("session-row")
    expect(rows.first).to_be_visible(timeout=30_000)
    api_models = {s["model"] for s in get_json(gpm.api + "/api/llm-sessions?limit=100")["sessions"]}
    shown_model = rows.first.locator("td").nth(1).text_content()
    assert shown_model in api_models
    expect(page.locator(".stat-card").first.locator(".stat-value")).not_to_have_text(
        "—", timeout=15_000
    )


def test_connection_lost_and_restored(page: Page, gpm: GpmProcess) -> None:
    banner = page.get_by_role("alert")
    expect(banner).to_have_count(0)
    gpm.stop()
    expect(banner).to_contain_text("Connection lost", timeout=20_000)

    gpm.start("run", "--demo")
    gpm.wait_ready()
    expect(banner).not_to_contain_text("Connection lost", timeout=20_000)
    expect(banner).to_have_count(0, timeout=20_000)
    before = shown_timestamp(page)
    wait_for(lambda: shown_timestamp(page) != before, what="live updates after the restart")


@pytest.mark.parametrize(("name", "width", "height"), [("desktop", 1440, 900), ("phone", 390, 844)])
def test_layout_fits_the_screen(page: Page, name: str, width: int, height: int) -> None:
    page.set_viewport_size({"width": width, "height": height})
    expect(page.get_by_test_id("session-row").first).to_be_visible(timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot: Path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    # No sideways scrolling of the page itself (wide tables scroll inside their own box).
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    gauges = page.get_by_test_id("gpu-gauges").first.bounding_box()
    assert gauges is not None and gauges["width"] <= width


def test_heap_does_not_grow_with_live_updates(page: Page, gpm: GpmProcess) -> None:
    # A full sessions table from the start, so growth means a leak, not more rows to show.
    fill_sessions(f"http://127.0.0.1:{gpm.ports['proxy']}", SESSIONS_TO_FILL)
    warm_up(page, HEAP_WARMUP_SECS)
    report = watch_heap(page, HEAP_WATCH_SECS, sample_every=10.0)
    print("\n" + "\n".join(report.lines()))
    assert report.snapshots_shown >= HEAP_WATCH_SECS / 10 - 1, "the page stopped updating"
    assert report.growth_percent < HEAP_GROWTH_LIMIT_PERCENT
