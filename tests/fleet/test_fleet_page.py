"""The Fleet page in a real Chromium against three demo hosts on a real Prometheus."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import GpmProcess, get_json
from tests.dashboard.dashboard_harness import missing_prerequisite
from tests.fakes.prometheus_server import needs_prometheus
from tests.fleet.conftest import HOSTS

SKIP_REASON = missing_prerequisite()
pytestmark = [
    needs_prometheus,
    pytest.mark.skipif(SKIP_REASON is not None, reason=str(SKIP_REASON)),
]


def test_three_hosts_their_gpus_and_links(
    browser: Browser, fleet: tuple[dict[str, GpmProcess], str]
) -> None:
    hosts, _ = fleet
    a = hosts["host-a"]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.goto(a.api + "/")
        page.get_by_test_id("fleet-link").click()
        cards = page.get_by_test_id("fleet-host")
        expect(cards).to_have_count(3, timeout=40_000)
        for name, gpm in hosts.items():
            card = page.locator(f"[data-testid=fleet-host][data-host='{name}']")
            expect(card.get_by_test_id("fleet-host-status")).to_have_text("up", timeout=40_000)
            expect(card.get_by_test_id("fleet-gpu")).to_have_count(2)
            expect(card.get_by_test_id("fleet-host-link")).to_have_attribute(
                "href", f"http://{name}:{gpm.ports['api']}"
            )
            gpus = get_json(gpm.api + "/api/realtime")["gpus"]
            expect(card.get_by_test_id("fleet-gpu").first).to_contain_text(gpus[0]["name"])
        # Filtering narrows the page to one host.
        page.get_by_test_id("fleet-filter").fill(HOSTS[1])
        expect(cards).to_have_count(1)
        expect(cards.first).to_have_attribute("data-host", HOSTS[1])
    finally:
        context.close()
