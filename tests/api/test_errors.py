"""Every bad parameter is a 422 or 404 that names it; a brand-new database answers empty shapes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gpm.api.app import create_app
from gpm.state import LiveState
from gpm.storage.writer import Writer
from tests.api.support import NOW, serve, server_context

HOURS_ROUTES = ("/api/historical", "/api/llm-stats", "/api/alerts")
BAD_HOURS = ("-1", "0", "0.0001", "nan", "NaN", "inf", "-inf", "1e400", "abc", "", "8785")
BAD_GPU_IDS = ("-1", "1024", str(10**30), "1.5", "x", "nan")
DATE_ROUTES = ("/api/llm-sessions", "/api/process-events", "/api/export")
PAGED_ROUTES = ("/api/llm-sessions", "/api/process-events")

CASES: list[tuple[str, dict[str, str], int, str]] = [
    *((r, {"hours": h}, 422, "hours") for r in HOURS_ROUTES for h in BAD_HOURS),
    *(("/api/chart", {"gpu_id": "0", "hours": h}, 422, "hours") for h in BAD_HOURS),
    *(("/api/chart", {"gpu_id": g}, 422, "gpu_id") for g in BAD_GPU_IDS),
    *(("/api/heatmap", {"gpu_id": g}, 422, "gpu_id") for g in BAD_GPU_IDS),
    *(("/api/historical", {"gpu_id": g}, 422, "gpu_id") for g in BAD_GPU_IDS),
    *(("/api/process-events", {"gpu_id": g}, 422, "gpu_id") for g in BAD_GPU_IDS),
    *((r, {"gpu_id": "7"}, 404, "gpu_id") for r in ("/api/chart", "/api/heatmap")),
    *((r, {"gpu_id": "7"}, 404, "gpu_id") for r in ("/api/historical", "/api/process-events")),
    ("/api/chart", {}, 422, "gpu_id"),
    ("/api/heatmap", {}, 422, "gpu_id"),
    *(("/api/chart", {"gpu_id": "0", "points": p}, 422, "points") for p in ("9", "2001", "nan")),
    *(("/api/heatmap", {"gpu_id": "0", "days": d}, 422, "days") for d in ("0", "367", "1e3")),
    *(("/api/historical", {"points": p}, 422, "points") for p in ("9", "2001", "nan")),
    *(("/api/weekly-summaries", {"weeks": w}, 422, "weeks") for w in ("0", "521", "-5")),
    *(("/api/llm-sessions", {"limit": v}, 422, "limit") for v in ("0", "1001", str(2**64))),
    *(("/api/llm-sessions", {"offset": v}, 422, "offset") for v in ("-1", "10000001")),
    ("/api/llm-sessions", {"model": "m" * 257}, 422, "model"),
    *(("/api/process-events", {"limit": v}, 422, "limit") for v in ("0", "10001")),
    *((r, {"start_date": "yesterday"}, 422, "start_date") for r in DATE_ROUTES),
    *((r, {"end_date": "2027-02-30T00:00:00Z"}, 422, "end_date") for r in DATE_ROUTES),
    *((r, {"start_date": "\x00"}, 422, "start_date") for r in DATE_ROUTES),
    *(
        (
            r,
            {"start_date": "2027-01-15T09:00:00Z", "end_date": "2027-01-15T08:00:00Z"},
            422,
            "end_date",
        )
        for r in DATE_ROUTES
    ),
    *(
        (
            r,
            {"start_date": "2027-01-15T08:00:00Z", "end_date": "2027-01-15T08:00:00Z"},
            422,
            "end_date",
        )
        for r in DATE_ROUTES
    ),
    # Listings page through any range; an export is held to 366 days.
    ("/api/export", {"start_date": "2000-01-01T00:00:00Z"}, 422, "start_date"),
    *((r, {"cursor": "not-a-cursor"}, 422, "cursor") for r in PAGED_ROUTES),
    ("/api/export", {"format": "xls"}, 422, "format"),
    ("/api/export", {"table": "latest_poll"}, 422, "table"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


@pytest.mark.parametrize(("path", "params", "status", "name"), CASES)
def test_bad_parameter_is_named(
    client: httpx.Client,
    filled_base: str,
    path: str,
    params: dict[str, str],
    status: int,
    name: str,
) -> None:
    resp = client.get(filled_base + path, params=params)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and detail.startswith(f"{name}: "), detail


def test_several_bad_parameters_are_all_named(filled_base: str) -> None:
    resp = httpx.get(f"{filled_base}/api/chart", params={"gpu_id": "-1", "points": "1"})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert detail.startswith("gpu_id: ") and "; points: " in detail


@pytest.mark.parametrize(
    "params",
    [
        {"start_date": "0001-01-01T00:00:00+01:00", "end_date": "0001-01-02T00:00:00Z"},
        {"start_date": "9999-12-30T00:00:00Z", "end_date": "9999-12-31T23:59:59-10:00"},
        {"start_date": "2027-01-14T08:00:00+14:00"},
    ],
)
def test_extreme_but_valid_dates_answer_200(filled_base: str, params: dict[str, str]) -> None:
    for path in DATE_ROUTES:
        resp = httpx.get(filled_base + path, params=params)
        assert resp.status_code == 200, (path, resp.text)


# -- a brand-new database: the schema exists, no poll has been stored -----------------------------


@pytest.fixture(scope="module", params=["gpm-server", "gpm run"])
def empty_base(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    data = tmp_path_factory.mktemp("empty")
    writer = Writer(data / "gpm.db")
    writer.start()  # creates the schema, writes nothing
    writer.close()
    ctx = server_context(data, clock=lambda: NOW)
    if request.param == "gpm run":
        ctx.state = LiveState()  # before the first poll
    yield from serve(create_app(ctx))


def get(base: str, path: str, **params: object) -> httpx.Response:
    resp = httpx.get(base + path, params=params)  # type: ignore[arg-type]
    assert resp.status_code < 500, (path, resp.status_code, resp.text)
    return resp


def test_empty_database_answers_empty_shapes(empty_base: str) -> None:
    info = get(empty_base, "/api/info").json()
    assert info["gpu_count"] == 0 and info["gpus"] == []
    assert info["data_range"] == {"oldest": None, "newest": None}
    assert info["message"] == "no reading yet"
    assert get(empty_base, "/api/realtime").json() == {
        "timestamp": None,
        "source": "none",
        "message": "no reading yet",
        "gpus": [],
    }
    assert get(empty_base, "/api/processes").json() == {"timestamp": None, "processes": []}
    hist = get(empty_base, "/api/historical", hours=24).json()
    assert hist["gpus"] == [] and hist["start"] < hist["end"]
    assert get(empty_base, "/api/llm-sessions").json() == {
        "total": 0,
        "sessions": [],
        "next": None,
    }
    stats = get(empty_base, "/api/llm-stats").json()
    assert stats["totals"]["sessions"] == 0 and stats["models"] == []
    assert stats["totals"]["best_model"] is None
    assert get(empty_base, "/api/alerts").json() == {"active": [], "events": []}
    assert get(empty_base, "/api/process-events").json() == {"events": [], "next": None}
    assert get(empty_base, "/api/weekly-summaries").json() == {"gpus": [], "models": []}
    assert get(empty_base, "/api/models").json()["models"] == []


def test_empty_database_gpu_routes_are_404(empty_base: str) -> None:
    for path in ("/api/chart", "/api/heatmap"):
        resp = get(empty_base, path, gpu_id=0)
        assert resp.status_code == 404
        assert resp.json() == {"detail": "gpu_id: no GPU with id 0"}


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_empty_database_exports(empty_base: str, fmt: str, tmp_path: Path) -> None:
    resp = get(empty_base, "/api/export", format=fmt, table="gpu_metrics")
    assert resp.status_code == 200
    if fmt == "csv":
        assert resp.text.lstrip("\ufeff").splitlines()[0].startswith("ts,gpu_id")
        assert len(resp.text.splitlines()) == 1  # the header only
    elif fmt == "json":
        assert resp.json() == {"gpu_metrics": []}
    else:
        import pyarrow.parquet as pq

        path = tmp_path / "empty.parquet"
        path.write_bytes(resp.content)
        assert pq.read_table(path).num_rows == 0
