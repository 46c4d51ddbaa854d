"""/api/energy the way gpm-server serves it: two days of hourly energy, the older day read back
from the Parquet archive, sessions' energy, and no live state (no method, no waste)."""

from __future__ import annotations

import httpx
import pytest


def test_energy_over_sqlite_and_the_archive(filled_base: str) -> None:
    e = httpx.get(f"{filled_base}/api/energy", params={"hours": 48}).json()
    hours = len({x["hour"] for x in e["series"]})
    assert hours >= 47  # both days: the archived one too
    per_hour = {"llm_inference": 3600.0, "idle": 360.0 + 720.0}
    assert e["total"]["joules"] == pytest.approx(hours * sum(per_hour.values()))
    assert e["idle"]["joules"] == pytest.approx(hours * per_hour["idle"])
    assert e["workloads"] == [
        {"workload": "llm_inference", "joules": pytest.approx(hours * 3600.0), "cost": None}
    ]
    gpus = {g["gpu_id"]: g for g in e["gpus"]}
    assert gpus[1]["idle_joules"] == gpus[1]["joules"] == pytest.approx(hours * 720.0)
    assert {g["method"] for g in e["gpus"]} == {None}  # gpm-server has no live ledger
    assert e["waste"] == [] and e["total"]["cost"] is None  # no price configured
    for m in e["models"]:
        assert m["sessions_measured"] <= m["sessions"]
        if m["completion_tokens"]:
            assert m["joules_per_token"] * m["tokens_per_joule"] == pytest.approx(1.0)


def test_sessions_carry_their_energy(filled_base: str) -> None:
    sessions = httpx.get(f"{filled_base}/api/llm-sessions", params={"limit": 50}).json()
    measured = [s for s in sessions["sessions"] if s["energy_joules"] is not None]
    assert measured and all(s["energy_rule"] == "backend_process" for s in measured)
    for s in measured:
        tokens = s["completion_tokens"]
        expected = None if tokens is None else tokens / s["energy_joules"]
        assert s["tokens_per_joule"] == (pytest.approx(expected) if expected else None)
