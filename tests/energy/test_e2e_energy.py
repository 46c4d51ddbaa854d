"""Energy end to end: a real ``gpm run`` on the fake NVML library, its real proxy in front of a
fake Ollama whose process (this test's) sits on GPU 1, the official ollama client.

GPU 0 draws 300 W and GPU 1 100 W, each energy counter running in real time; a session is
charged GPU 1's energy over its own span only. Timing at the session's edges is real, so the
figures are checked against the session's measured duration within a few percent; the exact
0.5 % checks on scripted time are in test_meter.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ollama
import pytest

from tests.conftest import GpmProcess, get_json, wait_for_async
from tests.fakes.fake_nvml import GIB, Scenario, build_fake_nvml
from tests.fakes.fake_ollama import FakeOllama, Plan

GPU0_WATTS, GPU1_WATTS = 300.0, 100.0


async def test_a_session_is_charged_its_own_gpu_over_its_own_span(
    gpm_process: Callable[..., GpmProcess], tmp_path: Path
) -> None:
    lib = build_fake_nvml(tmp_path / "lib")
    scenario = Scenario(tmp_path / "scenario.txt")
    for gpu, watts in ((0, GPU0_WATTS), (1, GPU1_WATTS)):
        scenario.set_gpu(gpu, power_mw=int(watts * 1000), energy_rate_mw=int(watts * 1000))
    scenario.set_processes(0, compute=[(1, GIB)])
    scenario.set_processes(1, compute=[(os.getpid(), 4 * GIB)])  # the backend runs on GPU 1
    scenario.write()
    fake = FakeOllama()
    await fake.start()
    fake.plan = Plan(tokens=["tok"] * 12, token_delay=0.1)  # a stream of about 1.2 s
    try:
        gpm = gpm_process(
            GPM_GPU_NVML_LIBRARY=str(lib),
            FAKE_NVML_SCENARIO=str(scenario.path),
            GPM_OLLAMA_BACKEND_URL=fake.url,
            GPM_ENERGY_PRICE_PER_KWH="0.30",
            GPM_ENERGY_CURRENCY="EUR",
        )
        await asyncio.to_thread(lambda: gpm.start("run").wait_ready())
        client = ollama.AsyncClient(host=f"http://127.0.0.1:{gpm.ports['proxy']}")
        async for _ in await client.chat(
            model="qwen2:0.5b", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            pass

        def measured() -> dict[str, Any] | None:
            sessions = get_json(gpm.api + "/api/llm-sessions")["sessions"]
            return sessions[0] if sessions and sessions[0]["energy_joules"] else None

        s = await wait_for_async(measured, timeout=20, interval=0.1, what="the session's energy")
        assert s["energy_rule"] == "backend_process"
        seconds = s["duration_ms"] / 1000
        assert seconds > 1.0
        # GPU 1's power over the session's span; GPU 0's 300 W would make it four times more.
        assert s["energy_joules"] == pytest.approx(GPU1_WATTS * seconds, rel=0.05)
        tokens = s["completion_tokens"]
        assert s["tokens_per_joule"] == pytest.approx(tokens / s["energy_joules"], rel=1e-9)

        energy = get_json(gpm.api + "/api/energy?hours=1")
        assert energy["currency"] == "EUR" and energy["price_per_kwh"] == 0.30
        (model,) = energy["models"]
        assert model["model"] == "qwen2:0.5b" and model["sessions_measured"] == 1
        assert model["joules_per_token"] == pytest.approx(s["energy_joules"] / tokens, rel=1e-9)
        assert model["cost"] == pytest.approx(s["energy_joules"] / 3.6e6 * 0.30, rel=1e-9)
        assert {g["gpu_id"]: g["method"] for g in energy["gpus"]} == {0: "counter", 1: "counter"}
        # Per GPU, energy accrues at its own power between polls (a few polls of 0.5 s so far).
        g0, g1 = energy["gpus"]
        assert g0["joules"] == pytest.approx(3 * g1["joules"], rel=0.05)
        # Every joule is somebody's: the workloads' and the idle energy add up to the total.
        attributed = sum(w["joules"] for w in energy["workloads"]) + energy["idle"]["joules"]
        assert attributed == pytest.approx(energy["total"]["joules"], rel=1e-9)

        metrics = await asyncio.to_thread(
            lambda: _metrics(f"http://127.0.0.1:{gpm.ports['metrics']}/metrics")
        )
        series = 'gpm_llm_energy_joules_total{model="qwen2:0.5b"}'
        assert _value(metrics, series) == pytest.approx(s["energy_joules"], rel=1e-9)
        table = await asyncio.to_thread(lambda: gpm.run("sessions").stdout)
        assert "J/TOK" in table
        assert f"{s['energy_joules'] / tokens:.2f}" in table
    finally:
        await fake.stop()


def _metrics(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def _value(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None
