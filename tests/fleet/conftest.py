"""A fleet for the tests: three ``gpm run --demo`` hosts scraped by one real Prometheus; host a
serves /api/fleet from it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import GpmProcess, free_port
from tests.dashboard.dashboard_harness import browser
from tests.fakes.prometheus_server import run_prometheus

__all__ = ["HOSTS", "browser", "fleet"]
HOSTS = ("host-a", "host-b", "host-c")


@pytest.fixture
def fleet(
    gpm_process: Callable[..., GpmProcess], tmp_path: Path
) -> Iterator[tuple[dict[str, GpmProcess], str]]:
    """Three demo hosts scraped by one Prometheus; yields them by name and Prometheus' URL."""
    prom_port = free_port()
    hosts = {
        name: gpm_process(
            GPM_SERVICE_HOST_NAME=name,
            GPM_SERVICE_DATA_DIR=str(tmp_path / name),
            GPM_FLEET_PROMETHEUS_URL=f"http://127.0.0.1:{prom_port}",
            GPM_FLEET_CACHE_SECS="0.5",
        )
        for name in HOSTS
    }
    targets = [f"127.0.0.1:{h.ports['metrics']}" for h in hosts.values()]
    with run_prometheus(tmp_path, *targets, port=prom_port) as prom:
        for h in hosts.values():
            h.start("run", "--demo")
        for h in hosts.values():
            h.wait_ready()
        yield hosts, prom
