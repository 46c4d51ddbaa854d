"""``gpm top`` attached to a real ``gpm run --demo``, driven headless with Textual's pilot: the
rows are the service's GPUs, finished LLM requests show up, sorting and filtering work, both
screen sizes lay out inside the screen, and a service that goes away and comes back is shown
as such."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gpm.tui.app import TopApp
from gpm.tui.feed import AttachedFeed
from tests.conftest import GpmProcess, get_json, wait_for_async
from tests.tui.support import cell, cells, column, keys, overflowing, rendered


def _fmt_util(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}%"


async def test_rows_are_the_service_gpus_and_llm_requests_arrive(
    demo_service: GpmProcess,
) -> None:
    app = TopApp(AttachedFeed(demo_service.api, interval=0.5))
    async with app.run_test(size=(80, 24)) as pilot:
        await rendered(app)

        # The snapshot on screen is the service's: find the poll both have, then compare.
        def same_poll() -> bool:
            api = get_json(demo_service.api + "/api/realtime")
            assert app.rendered is not None and app.rendered.snapshot is not None
            mine = app.rendered.snapshot
            if mine["timestamp"] != api["timestamp"]:
                return False
            assert mine["gpus"] == api["gpus"]
            return True

        await wait_for_async(same_poll, what="the app to draw the poll /api/realtime serves")
        gpus = (await rendered(app))["gpus"]
        assert len(gpus) == 2
        assert column(app, "gpus", "gpu") == [str(g["gpu_id"]) for g in gpus]
        for name, g in zip(column(app, "gpus", "name"), gpus, strict=True):
            assert g["name"].startswith(name.rstrip("…")), (name, g["name"])
        utils = column(app, "gpus", "util")
        assert [u.split()[-1] for u in utils] == [_fmt_util(g["utilization_percent"]) for g in gpus]
        # The selected GPU's processes, with the service's pids.
        pids = column(app, "procs", "pid")
        assert sorted(pids) == sorted(str(p["pid"]) for p in gpus[0]["processes"])

        # A request the service records after the app started shows up in the LLM pane.
        first = get_json(demo_service.api + "/api/llm-sessions?limit=1")["sessions"]
        seen = {s["id"] for s in first}

        def new_session() -> dict[str, object] | None:
            sessions = get_json(demo_service.api + "/api/llm-sessions?limit=5")["sessions"]
            fresh = [s for s in sessions if s["id"] not in seen]
            return fresh[0] if fresh else None

        session = await wait_for_async(new_session, timeout=30, what="a new LLM session")
        at = await wait_for_async(
            lambda: _row_of(app, session["id"]), timeout=10, what="the session in the LLM pane"
        )
        row = cells(app, "sessions")[at - 1]
        assert row[1] == session["model"]
        assert session["endpoint"].startswith(row[2].rstrip("…"))
        assert row[-1] == session["outcome"]
        await pilot.press("q")


def _row_of(app: TopApp, session_id: object) -> int | None:
    """1 + the session's row in the LLM pane (0 is falsy: "not there yet" must be None)."""
    ids = [s["id"] for s in app.rendered.sessions] if app.rendered else []
    return ids.index(session_id) + 1 if session_id in ids else None


async def test_sort_filter_all_gpus_and_help(demo_service: GpmProcess) -> None:
    app = TopApp(AttachedFeed(demo_service.api, interval=0.5))
    async with app.run_test(size=(80, 24)) as pilot:
        await rendered(app)
        await wait_for_async(lambda: len(cells(app, "procs")) >= 2, what="processes")

        def mem(rows: list[str]) -> list[int]:
            return [int(m.removesuffix("MiB")) for m in rows]

        by_memory = mem(column(app, "procs", "mem"))
        assert by_memory == sorted(by_memory, reverse=True)
        await pilot.press("s")  # SM %
        await pilot.press("s")  # run time
        assert "sort run time" in str(app.query_one("#procs-title").render())
        await pilot.press("s", "s")  # pid, then user
        await pilot.press("s")  # workload
        workloads = column(app, "procs", "workload")
        assert workloads == sorted(workloads)
        await pilot.press("S")
        assert column(app, "procs", "workload") == sorted(workloads, reverse=True)

        await pilot.press("a")  # every GPU's processes
        assert set(column(app, "procs", "gpu")) == {"0", "1"}

        await pilot.press("slash", *"ollama", "enter")
        commands = column(app, "procs", "command")
        assert commands and all(c == "ollama" for c in commands)
        assert {"0", "1"} == set(column(app, "procs", "gpu"))  # ollama runs on both demo GPUs
        await pilot.press("slash", "escape")
        assert len(column(app, "procs", "command")) > len(commands)

        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("x")
        assert app.screen.__class__.__name__ != "HelpScreen"
        await pilot.press("q")
    assert app.return_code in (0, None)


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_layout_fits_the_screen(demo_service: GpmProcess, size: tuple[int, int]) -> None:
    app = TopApp(AttachedFeed(demo_service.api, interval=0.5))
    async with app.run_test(size=size) as pilot:
        await rendered(app)
        await wait_for_async(lambda: cells(app, "sessions"), timeout=30, what="LLM sessions")
        await pilot.pause()
        assert overflowing(app) == []
        for table in ("gpus", "procs", "sessions", "models"):
            assert app.query_one(f"#{table}").region.area > 0, table
        gpu_columns = keys(app, "gpus")
        assert ("spark" in gpu_columns) == (size[0] >= 110)
        assert app.query_one("#bottom").has_class("-wide") == (size[0] >= 160)
        await pilot.press("q")


async def test_service_lost_then_back(gpm_process: Callable[..., GpmProcess]) -> None:
    gpm = gpm_process().start("run", "--demo")
    gpm.wait_ready()
    app = TopApp(AttachedFeed(gpm.api, interval=0.5, retry=(0.2, 1.0)))
    async with app.run_test(size=(80, 24)) as pilot:
        await rendered(app)
        banner = app.query_one("#banner")
        assert not banner.has_class("-shown")
        before = await rendered(app)

        gpm.stop()
        await wait_for_async(lambda: banner.has_class("-shown"), what="the banner")
        assert app.rendered is not None and app.rendered.stale
        assert app.rendered.snapshot is not None  # the last values stay, greyed
        assert "retrying" in str(banner.render())
        name = cell(app, "gpus", 0, "name")
        assert name.style == "dim"
        assert before is not None

        gpm.start("run", "--demo")  # the same ports
        gpm.wait_ready()
        await wait_for_async(
            lambda: not banner.has_class("-shown"), timeout=20, what="the banner to clear"
        )
        assert app.rendered is not None and not app.rendered.stale
        await pilot.press("q")


async def test_the_token_goes_with_every_request(gpm_process: Callable[..., GpmProcess]) -> None:
    """A service on a non-loopback address wants its token: without one the banner says so;
    with it the stream and every polled route answer."""
    gpm = gpm_process(GPM_API_HOST="0.0.0.0", GPM_API_TOKEN="s3cret").start("run", "--demo")
    tasks: list[asyncio.Task[None]] = []
    try:
        refused = AttachedFeed(gpm.api, interval=0.5, retry=(0.2, 0.5))
        tasks.append(asyncio.create_task(refused.run(lambda frame: None)))
        await wait_for_async(
            lambda: "wants a token" in (refused.frame.problem or ""),
            timeout=30,
            what="the feed to say the service wants a token",
        )
        assert refused.frame.snapshot is None
        allowed = AttachedFeed(gpm.api, token="s3cret", interval=0.5)
        tasks.append(asyncio.create_task(allowed.run(lambda frame: None)))
        await wait_for_async(
            lambda: allowed.frame.snapshot and allowed.frame.sessions and allowed.frame.info,
            timeout=30,
            what="a snapshot, sessions and /api/info with the token",
        )
        assert allowed.frame.problem is None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
