"""The fleet view on a real Prometheus scraping three real ``gpm run --demo`` hosts.

Host a serves /api/fleet from that Prometheus; b and c are only scraped. Stopping c shows it
down with when it was last seen, starting it again brings it back.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GpmProcess, get_json, wait_for
from tests.fakes.prometheus_server import needs_prometheus
from tests.fleet.conftest import HOSTS

pytestmark = needs_prometheus


def fleet_hosts(gpm: GpmProcess) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in get_json(gpm.api + "/api/fleet")["hosts"]}


def test_every_host_with_its_gpus_models_and_health(
    fleet: tuple[dict[str, GpmProcess], str],
) -> None:
    hosts, prom = fleet
    a = hosts["host-a"]

    def all_up_with_models() -> dict[str, dict[str, Any]] | None:
        seen = fleet_hosts(a)
        ready = set(seen) == set(HOSTS) and all(
            h["up"] and len(h["gpus"]) == 2 and h["models"] for h in seen.values()
        )
        return seen if ready else None

    seen = wait_for(all_up_with_models, timeout=40, interval=0.5, what="three hosts in the fleet")
    body = get_json(a.api + "/api/fleet")
    assert body["configured"] and body["error"] is None and body["prometheus_url"] == prom
    for name, gpm in hosts.items():
        host = seen[name]
        own = get_json(gpm.api + "/api/realtime")["gpus"]
        assert host["instance"] == f"127.0.0.1:{gpm.ports['metrics']}"
        assert host["url"] == f"http://{name}:{gpm.ports['api']}"
        assert host["last_seen"] is not None and host["version"]
        for mine, theirs in zip(host["gpus"], own, strict=True):
            assert (mine["gpu_id"], mine["name"], mine["uuid"]) == (
                theirs["gpu_id"], theirs["name"], theirs["uuid"],
            )  # fmt: skip
            assert mine["memory_total_bytes"] == theirs["memory_total_bytes"]
            # Within a scrape or two of the host's own reading.
            assert mine["temperature_celsius"] == pytest.approx(
                theirs["temperature_celsius"], abs=5
            )
            assert mine["health"] == theirs["health"]
            assert mine["idle"] == (mine["utilization_percent"] <= 5)
        resident = {m["name"] for m in get_json(gpm.api + "/api/models")["models"]}
        assert {m["model"] for m in host["models"]} == resident


def test_a_stopped_host_is_down_and_comes_back(
    fleet: tuple[dict[str, GpmProcess], str],
) -> None:
    hosts, _ = fleet
    a, c = hosts["host-a"], hosts["host-c"]
    wait_for(lambda: fleet_hosts(a).get("host-c", {}).get("up"), timeout=40, what="host-c up")
    c.stop()

    def down() -> dict[str, Any] | None:
        host = fleet_hosts(a).get("host-c")
        return host if host is not None and not host["up"] else None

    gone = wait_for(down, timeout=20, interval=0.3, what="host-c down")
    assert gone["last_seen"] is not None  # when it last polled, from Prometheus' memory
    assert fleet_hosts(a)["host-b"]["up"]
    c.start("run", "--demo").wait_ready()
    wait_for(lambda: fleet_hosts(a)["host-c"]["up"], timeout=20, interval=0.3, what="host-c back")
