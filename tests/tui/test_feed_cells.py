"""The parts of ``gpm top`` that need no terminal: the event-stream parser, the sparkline
history, column layouts against widths, and the text of cells (dashes, ASCII, sort, filter)."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpm.config import LoadedConfig
from gpm.settings import ApiConfig, Config
from gpm.tui import cells, choose_feed, draw
from gpm.tui.draw import Look
from gpm.tui.feed import (
    AttachedFeed,
    Frame,
    SseParser,
    StandaloneFeed,
    Thresholds,
    UtilHistory,
    service_url,
)
from tests.conftest import gpm_env

STREAM = (
    b"retry: 2000\n\n"
    b'event: snapshot\ndata: {"a": 1}\n\n'
    b": keepalive\n\n"
    b'event: snapshot\r\ndata: {"b":\r\ndata: 2}\r\n\r\n'
)


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=8))
def test_sse_parser_any_chunking(cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(STREAM)]
    parser = SseParser()
    events = [e for a, b in itertools.pairwise(bounds) for e in parser.feed(STREAM[a:b])]
    assert events == [("snapshot", '{"a": 1}'), ("snapshot", '{"b":\n2}')]


def _snap(ts: str, *utils: float | None) -> dict[str, Any]:
    return {
        "timestamp": ts,
        "gpus": [{"gpu_id": i, "utilization_percent": u} for i, u in enumerate(utils)],
    }


def test_history_keeps_the_window_and_forgets_gone_gpus() -> None:
    h = UtilHistory(seconds=10)
    h.add(_snap("2026-12-05T10:00:00Z", 10, 20))
    h.add(_snap("2026-12-05T10:00:00Z", 99, 99))  # the same poll again: kept once
    h.add(_snap("2026-12-05T10:00:05Z", None, 30))
    view = h.add(_snap("2026-12-05T10:00:12Z", 50))
    assert [v for _, v in view[0]] == [None, 50]  # 10:00:00 left the 10 s window
    assert 1 not in view


def test_history_seed_from_historical() -> None:
    h = UtilHistory()
    past = {
        "gpus": [
            {
                "gpu_id": 0,
                "points": [{"timestamp": "2026-12-05T10:00:00Z", "utilization_percent": 5.0}],
            }
        ]
    }
    assert [v for _, v in h.seed(past)[0]] == [5.0]


@pytest.mark.parametrize("width", [60, 79, 80, 99, 109, 110, 140, 150, 199, 200, 300])
def test_columns_fill_the_width_exactly(width: int) -> None:
    for cols in (
        cells.gpu_columns(width),
        cells.process_columns(width),
        cells.process_columns(width, mig=True),
        cells.session_columns(width),
        cells.model_columns(width),
    ):
        assert sum(c.width for c in cols) == width or width < 70, [c.key for c in cols]
        assert all(c.width > 1 for c in cols)


GPU: dict[str, Any] = {
    "gpu_id": 3,
    "name": "NVIDIA H100 80GB HBM3",
    "up": True,
    "utilization_percent": 50.0,
    "memory_used_bytes": None,
    "memory_total_bytes": None,
    "memory_percent": None,
    "temperature_celsius": None,
    "power_watts": None,
    "power_limit_watts": 700.0,
    "fan_percent": None,
    "clock_graphics_mhz": None,
    "clock_memory_mhz": None,
    "health": "degraded",
    "health_reasons": ["a memory row remap is pending: reset the GPU to apply it"],
}


@pytest.mark.parametrize("ascii_only", [False, True])
def test_unknown_values_are_dashes_never_zero(ascii_only: bool) -> None:
    look = Look(ascii=ascii_only)
    cols = cells.gpu_columns(140)
    row = {
        c.key: t.plain.strip()
        for c, t in zip(
            cols, cells.gpu_cells(GPU, cols, look, Thresholds(85, 90), (), 1), strict=True
        )
    }
    dash = "-" if ascii_only else "—"
    assert row["temp"] == row["fan"] == dash
    assert row["power"] == f"{dash}/700"
    assert row["mem"].split() == [dash, f"{dash}/{dash}"]
    assert row["clocks"] == f"{dash}/{dash}"
    assert row["health"] == "degraded !"  # and an active alert
    assert "0" not in row["temp"] + row["fan"]
    text = "".join(t.plain for t in cells.gpu_cells(GPU, cols, look, Thresholds(), (), 0))
    assert text.isascii() == ascii_only


def test_bars() -> None:
    assert draw.bar(Look(ascii=True), 50, 8).plain == "####...."
    assert draw.bar(Look(), 50, 8).plain == "████····"
    assert draw.bar(Look(), 56.25, 8).plain == "████▌···"
    assert draw.bar(Look(ascii=True), None, 4).plain == "-   "
    assert draw.bar(Look(), 150, 4).plain == "████"


def test_sparkline_buckets_by_time() -> None:
    points = ((0.0, 0.0), (10.0, 50.0), (11.0, 100.0), (29.0, None))
    assert draw.sparkline(Look(ascii=True), points, 3, 30.0).plain == "_# "
    assert draw.sparkline(Look(), (), 4, 30.0).plain == "    "
    # One empty slice between two readings is filled; a longer gap stays blank.
    gap = ((0.0, 100.0), (21.0, 100.0))
    assert draw.sparkline(Look(ascii=True), gap, 6, 30.0).plain == " #   #"
    assert draw.sparkline(Look(ascii=True), gap, 3, 30.0).plain == "###"


def test_threshold_colours() -> None:
    assert draw.level_style(86, 85) == "bold red"
    assert draw.level_style(80, 85) == "yellow"
    assert draw.level_style(60, 85) == "green"
    assert draw.level_style(None, 85) == draw.level_style(60, None) == ""
    stale = Look(stale=True)
    assert stale.text("x", "bold red").style == "dim"


def _proc(pid: int, **fields: Any) -> dict[str, Any]:
    return {"pid": pid, "name": f"p{pid}", "workload": "general_compute", "user": "u", **fields}


SNAP = {
    "gpus": [
        {
            "gpu_id": 0,
            "processes": [
                _proc(1, gpu_memory_bytes=5),
                _proc(2, gpu_memory_bytes=None),
                _proc(3, gpu_memory_bytes=9, user="alice"),
            ],
        },
        {"gpu_id": 1, "processes": [_proc(4, gpu_memory_bytes=7, workload="llm_inference")]},
        {"gpu_id": 2, "processes": None},
    ]
}


def test_processes_sort_unknown_last_and_filter() -> None:
    pids = [p["pid"] for _, p in cells.processes(SNAP, None, 0, False, "")]
    assert pids == [3, 4, 1, 2]  # largest memory first, unknown memory last
    pids = [p["pid"] for _, p in cells.processes(SNAP, None, 0, True, "")]
    assert pids == [1, 4, 3, 2]  # reversed, unknown still last
    assert [p["pid"] for _, p in cells.processes(SNAP, 0, 3, False, "")] == [1, 2, 3]
    assert [p["pid"] for _, p in cells.processes(SNAP, None, 0, False, "ALICE")] == [3]
    assert [p["pid"] for _, p in cells.processes(SNAP, None, 0, False, "llm")] == [4]
    assert [p["pid"] for _, p in cells.processes(SNAP, None, 0, False, "p2")] == [2]


TREE = {
    "gpus": [
        {
            "gpu_id": 0,
            "processes": [
                # An Ollama-like server off the GPUs (pid 10) with two runners, a vLLM-like
                # engine on the GPU (20) with a worker (21), and a process without a known parent.
                _proc(11, gpu_memory_bytes=2, parent_pid=10, parent_name="ollama"),
                _proc(12, gpu_memory_bytes=8, parent_pid=10, parent_name="ollama", user="bob"),
                _proc(20, gpu_memory_bytes=1, parent_pid=1000, parent_name="bash"),
                _proc(21, gpu_memory_bytes=9, parent_pid=20, parent_name="p20"),
                _proc(30, gpu_memory_bytes=5),
            ],
        },
    ]
}


def _tree(
    gpu: int | None, query: str = "", reverse: bool = False
) -> list[tuple[int | None, int, int]]:
    rows = cells.processes(TREE, gpu, 0, reverse, query)
    scope = cells.processes(TREE, gpu, 0, reverse, "")
    return [(g, p["pid"], depth) for g, p, depth in cells.process_tree(rows, scope)]


def test_process_tree_nests_children_under_their_parents() -> None:
    # Largest memory first at every level: 21 (9) draws its parent 20's chain where it stands.
    assert _tree(0) == [
        (None, 1000, 0),  # 20's parent, on no GPU
        (0, 20, 1),
        (0, 21, 2),
        (None, 10, 0),  # the runners' server, on no GPU, where its first child (12) stood
        (0, 12, 1),
        (0, 11, 1),
        (0, 30, 0),
    ]
    # Reversed (smallest first), within each level too: the runners 11 (2) then 12 (8).
    assert _tree(0, reverse=True) == [
        (None, 1000, 0),
        (0, 20, 1),
        (0, 21, 2),
        (None, 10, 0),
        (0, 11, 1),
        (0, 12, 1),
        (0, 30, 0),
    ]
    # The filter keeps a match's parents: 21 alone still shows under 20 (unfiltered, from scope)
    # and 20 under its own parent, as without the filter.
    assert _tree(0, "p21") == [(None, 1000, 0), (0, 20, 1), (0, 21, 2)]
    assert _tree(0, "p20") == [(None, 1000, 0), (0, 20, 1)]
    assert _tree(0, "bob") == [(None, 10, 0), (0, 12, 1)]


def test_process_tree_rows_and_odd_parents() -> None:
    rows = cells.processes(TREE, 0, 0, False, "")
    tree = cells.process_tree(rows, rows)
    cols = cells.process_columns(100)
    drawn = cells.process_cells(None, tree[3][1], cols, Look())
    parent = dict(zip((c.key for c in cols), drawn, strict=True))
    assert parent["pid"].plain.strip() == "10" and parent["command"].plain.strip() == "ollama"
    assert parent["gpu"].plain.strip() == parent["mem"].plain.strip() == "—"
    child = cells.process_cells(0, tree[4][1], cols, Look(ascii=True), depth=1)
    assert child[-1].plain.strip() == "`- p12"
    deep = cells.process_cells(0, tree[2][1], cols, Look(), depth=2)
    assert deep[-1].plain.strip() == "└ p21"
    assert deep[-1].plain.startswith("   ")  # one indent for the level above
    # Two processes naming each other as parent (a pid reused while read) are still both shown.
    loop = [(0, _proc(1, parent_pid=2)), (0, _proc(2, parent_pid=1))]
    assert sorted(p["pid"] for _, p, _ in cells.process_tree(loop, loop)) == [1, 2]


def test_session_cells() -> None:
    s = {
        "started_at": "2026-12-05T10:00:00Z",
        "model": "qwen2:0.5b",
        "endpoint": "/api/chat",
        "completion_tokens": 12,
        "token_source": "stream",
        "tokens_per_second": 61.04,
        "ttft_ms": 130.2,
        "cold_start": True,
        "tokens_per_joule": 0.5,
        "outcome": "completed",
    }
    cols = cells.session_columns(100)
    row = {
        c.key: t.plain.strip()
        for c, t in zip(cols, cells.session_cells(s, cols, Look()), strict=True)
    }
    assert (row["tokens"], row["tps"], row["ttft"], row["jpt"]) == ("~12", "61.0", "130*", "2.00")
    row = {
        c.key: t.plain.strip()
        for c, t in zip(
            cols,
            cells.session_cells({"model": "m", "outcome": "error"}, cols, Look(ascii=True)),
            strict=True,
        )
    }
    assert (row["time"], row["tokens"], row["tps"], row["jpt"]) == ("-", "-", "-", "-")


def test_model_rows_join_stats_and_resident() -> None:
    rows = cells.model_rows(
        [{"model": "a", "sessions": 2}, {"model": "b", "sessions": 5}],
        [{"name": "c", "vram_bytes": 2**30}, {"name": "a", "vram_bytes": None}],
    )
    assert [name for name, _, _ in rows] == ["b", "a", "c"]
    cols = cells.model_columns(80)
    c_row = [t.plain.strip() for t in cells.model_cells(*rows[2], cols, Look())]
    assert c_row == ["c", "0", "—", "—", "1.0"]
    b_row = [t.plain.strip() for t in cells.model_cells(*rows[0], cols, Look())]
    assert b_row[-1] == "not loaded"


def test_banner_and_header() -> None:
    frame = Frame(mode="attached", where="http://h:1", problem="http://h:1: not answering")
    assert cells.banner(frame, Look()) == "! http://h:1: not answering"
    stale = Frame(
        mode="attached", where="u", problem="gone", snapshot={"gpus": []}, received_at=0.0
    )
    assert stale.stale and "Greyed" in (cells.banner(stale, Look()) or "")
    assert cells.banner(Frame(mode="attached", where="u", snapshot={}), Look()) is None
    line = cells.header(Frame(mode="standalone", where="simulated"), Look(), 200).plain
    assert "standalone, reading the GPUs itself · source simulated" in line
    why = Frame(mode="standalone", where="nvml", reason="no GPM service at http://h:1")
    line = cells.header(why, Look(ascii=True), 200).plain
    assert line.startswith("GPM top | standalone: no GPM service at http://h:1 | source nvml")


def test_service_url() -> None:
    assert service_url(ApiConfig()) == "http://127.0.0.1:8010"
    assert service_url(ApiConfig(host="0.0.0.0", port=9)) == "http://127.0.0.1:9"
    assert service_url(ApiConfig(host="::1", port=9)) == "http://[::1]:9"


def test_other_commands_do_not_import_textual(tmp_path: Path) -> None:
    env, _ = gpm_env(tmp_path)
    code = (
        "import contextlib, io, sys\n"
        "from gpm.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['status', '--demo', '--json'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'gpm')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout
    assert "gpm.cli" in loaded and "textual" not in loaded and "gpm.tui" not in loaded


def test_choose_feed_attached_standalone_and_demo() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        cfg = Config(api=ApiConfig(port=port, token="from-config"))
        loaded = LoadedConfig(config=cfg, sources={}, file=None)
        feed = choose_feed(loaded, url=None, token=None, interval=1.0, demo=False)
        assert isinstance(feed, AttachedFeed)  # something answers at the config's address
        assert (feed.url, feed.token) == (f"http://127.0.0.1:{port}", "from-config")
        feed = choose_feed(loaded, url=None, token="flag", interval=1.0, demo=False)
        assert isinstance(feed, AttachedFeed) and feed.token == "flag"
        demo = choose_feed(loaded, url=None, token=None, interval=1, demo=True)
        assert isinstance(demo, StandaloneFeed) and demo.demo
    feed = choose_feed(loaded, url=None, token=None, interval=1.0, demo=False)
    assert isinstance(feed, StandaloneFeed)  # nothing listens there now
    assert feed.reason == f"no GPM service at http://127.0.0.1:{port}"
    # An explicit --url waits for its service rather than reading the GPUs here.
    feed = choose_feed(loaded, url=f"http://127.0.0.1:{port}", token=None, interval=1, demo=False)
    assert isinstance(feed, AttachedFeed)
