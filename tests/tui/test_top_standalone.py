"""``gpm top`` in standalone mode on the fake NVML library: it reads the GPUs itself (through
the real nvidia-ml-py bindings), shows exactly the scenario, a dash for what the GPU does not
report, MIG devices under their GPU, and says that LLM traffic needs the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from gpm.gpu.nvml import NvmlSource
from gpm.settings import Config
from gpm.tui.app import TopApp
from gpm.tui.feed import NO_SERVICE_LLM, StandaloneFeed
from tests.conftest import wait_for_async
from tests.fakes.fake_nvml import GIB, Scenario
from tests.tui.support import cell, cells, column, keys, overflowing, rendered


async def test_rows_equal_the_scenario(fake_nvml_lib: Path, fake_nvml_scenario: Scenario) -> None:
    sc = fake_nvml_scenario
    sc.set_gpu(
        0,
        name="NVIDIA H100 80GB HBM3",
        util_gpu=97,
        memory_total=80 * GIB,
        memory_used=20 * GIB,
        temperature_c=88,
        power_mw=431_500,
        power_limit_mw=700_000,
        clock_graphics_mhz=1980,
        clock_memory_mhz=2619,
    )
    sc.not_supported(0, "fan")
    sc.set_processes(0, compute=[(1, 2 * GIB)])
    sc.set_gpu(
        1,
        name="NVIDIA A100-SXM4-40GB",
        util_gpu=3,
        memory_total=40 * GIB,
        memory_used=GIB,
        temperature_c=38,
        power_mw=60_000,
        power_limit_mw=400_000,
        fan_percent=30,
    )
    sc.set_mig(
        1,
        0,
        name="NVIDIA A100-SXM4-40GB MIG 3g.20gb",
        memory_total=20 * GIB,
        memory_used=5 * GIB,
        compute=[(1, 4 * GIB)],
    )
    sc.write()
    source = NvmlSource(library_path=str(fake_nvml_lib))
    app = TopApp(StandaloneFeed(Config(), interval=0.2, source=source))
    async with app.run_test(size=(120, 30)) as pilot:
        snap = await rendered(app)
        assert snap["source"] == "nvml"
        rows = cells(app, "gpus")
        header = keys(app, "gpus")
        gpu0, gpu1, mig = (dict(zip(header, r, strict=True)) for r in rows)
        assert gpu0["name"] == "NVIDIA H100 80GB HBM3"
        assert gpu0["util"].endswith("97%")
        assert gpu0["mem"].endswith("20.0/80.0")
        assert gpu0["temp"] == "88°C"
        assert gpu0["power"] == "432/700"  # 431.5 W
        assert gpu0["fan"] == "—"  # not supported: a dash, never 0
        assert gpu0["clocks"] == "1980/2619"
        assert gpu0["health"] == "ok"
        assert gpu1["name"] == "NVIDIA A100-SXM4-40GB"
        assert gpu1["fan"] == "30%" and gpu1["temp"] == "38°C"
        assert mig["gpu"] == "" and mig["name"].startswith("└ MIG 0 3g.20gb")
        assert mig["mem"].endswith("5.0/20.0")
        # 88 C is past the default 85 C alert threshold: drawn in red.
        temp = cell(app, "gpus", 0, "temp")
        assert temp.style == "bold red"

        # The selected GPU's process, and the MIG device of the one on GPU 1.
        assert column(app, "procs", "pid") == ["1"]
        await pilot.press("a")
        await wait_for_async(lambda: len(cells(app, "procs")) == 2, what="both GPUs' processes")
        assert sorted(column(app, "procs", "gpu")) == ["0", "1 MIG0"]

        assert "standalone" in str(app.query_one("#header").render())
        assert NO_SERVICE_LLM in str(app.query_one("#llm-note").render())
        assert not app.query_one("#sessions").display
        assert overflowing(app) == []
        await pilot.press("q")


PARENT = """
import subprocess, sys, time
kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) for _ in range(2)]
print(*(k.pid for k in kids), flush=True)
time.sleep(120)
"""


async def test_tree_puts_runners_under_their_server(
    fake_nvml_lib: Path, fake_nvml_scenario: Scenario
) -> None:
    """Two real processes on a GPU whose parent (like ``ollama serve``) holds no GPU memory: the
    tree view draws the parent's row with its pid, and both under it."""
    server = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert server.stdout is not None
        runners = [int(pid) for pid in server.stdout.readline().split()]
        fake_nvml_scenario.set_processes(0, compute=[(runners[0], 2 * GIB), (runners[1], GIB)])
        fake_nvml_scenario.write()
        source = NvmlSource(library_path=str(fake_nvml_lib))
        app = TopApp(StandaloneFeed(Config(), interval=0.2, source=source))
        async with app.run_test(size=(120, 30)) as pilot:
            snap = await rendered(app)
            procs = snap["gpus"][0]["processes"]
            assert [(p["pid"], p["parent_pid"]) for p in procs] == [
                (runners[0], server.pid),
                (runners[1], server.pid),
            ]
            assert column(app, "procs", "pid") == [str(pid) for pid in runners]
            await pilot.press("t")
            await wait_for_async(lambda: len(cells(app, "procs")) == 3, what="the parent's row")
            rows = [dict(zip(keys(app, "procs"), r, strict=True)) for r in cells(app, "procs")]
            parent, first, second = rows
            assert parent["pid"] == str(server.pid)
            assert parent["gpu"] == parent["mem"] == "—"  # it is on no GPU
            assert parent["command"] == procs[0]["parent_name"] != ""
            assert [first["pid"], second["pid"]] == [str(pid) for pid in runners]  # memory order
            assert first["command"].startswith("└ ") and second["command"].startswith("└ ")
            assert "tree (t)" in str(app.query_one("#procs-title").render())
            await pilot.press("t")
            await wait_for_async(lambda: len(cells(app, "procs")) == 2, what="the flat list")
            await pilot.press("q")
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
