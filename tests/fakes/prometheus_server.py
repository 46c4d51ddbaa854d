"""A real Prometheus server for tests: started on a free port, scraping given targets.

Not a fake: this runs Debian's ``prometheus`` binary (tests that need it are marked
``needs_prometheus`` and skip without it). ``run_prometheus(workdir, "host:port", ...)`` scrapes
GPM exporters every second and yields the server's base URL; ``value_of(base, promql)`` waits for a
scrape and returns the one sample's value, ``query`` returns the raw result.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, running, wait_for

PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is not installed (apt-get install prometheus)"
)


@contextlib.contextmanager
def run_prometheus(workdir: Path, *targets: str, port: int | None = None) -> Iterator[str]:
    """Prometheus scraping ``targets`` (host:port) every second; yields its base URL."""
    assert PROMETHEUS is not None
    listed = ", ".join(f"'{t}'" for t in targets)
    (workdir / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: gpm\n    static_configs:\n"
        f"      - targets: [{listed}]\n"
    )
    port = port or free_port()
    argv = [
        PROMETHEUS,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(argv, workdir / "prometheus.log"):
        yield f"http://127.0.0.1:{port}"


def query(base: str, promql: str) -> list[dict[str, object]] | None:
    """The instant-vector result, or None while Prometheus is not answering yet."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
    except (urllib.error.URLError, ConnectionError):
        return None
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def value_of(base: str, promql: str, timeout: float = 30.0) -> float:
    """Poll until the query returns a sample (Prometheus needs a scrape or two); its value."""
    result = wait_for(lambda: query(base, promql), timeout=timeout, interval=0.2, what=promql)
    assert len(result) == 1, result
    sample = result[0]["value"]
    assert isinstance(sample, list)
    return float(sample[1])
