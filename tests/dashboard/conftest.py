"""Fixtures for the browser checks: Debian's Chromium through Playwright."""

from tests.dashboard.dashboard_harness import browser

__all__ = ["browser"]
