"""ModelPoller against the fake's /api/ps: load/unload events, backend down and back."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gpm.llm.ps import ModelPoller
from gpm.model import LoadedModel, ModelEvent
from tests.fakes.fake_ollama import FakeOllama

Update = tuple[tuple[LoadedModel, ...], list[ModelEvent], bool, str | None]


def ps_item(name: str, size: int) -> dict[str, Any]:
    return {
        "name": name, "model": name, "size": size, "digest": "ab" * 32,
        "details": {"format": "gguf", "family": "llama"},
        "expires_at": "2026-11-27T10:05:00.000000Z", "size_vram": size // 2,
        "context_length": 4096,
    }  # fmt: skip


async def next_matching(queue: asyncio.Queue[Update], want: Any, timeout: float = 5.0) -> Update:
    """The first update for which ``want`` is true, within ``timeout`` seconds."""

    async def scan() -> Update:
        while True:
            update = await queue.get()
            if want(update):
                return update

    return await asyncio.wait_for(scan(), timeout)


async def test_load_unload_and_backend_down_up(
    fake: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    fake.models = [ps_item("llama3.2:3b", 3_000_000_000)]
    updates: asyncio.Queue[Update] = asyncio.Queue()
    poller = ModelPoller(fake.url, 0.02, lambda *u: updates.put_nowait(u), clock=lambda: 1000.0)
    await poller.start()
    try:
        models, events, up, version = await updates.get()
        assert up and version == "0.12.0" and events == []  # the first poll is the baseline
        assert models == (LoadedModel("llama3.2:3b", 3_000_000_000, 1_500_000_000, 4096,
                                      "2026-11-27T10:05:00.000000Z"),)  # fmt: skip

        fake.models = [ps_item("qwen2.5:0.5b", 1_000_000_000)]
        _, events, _, _ = await next_matching(updates, lambda u: u[1])
        assert sorted((e.event, e.model, e.timestamp) for e in events) == [
            ("load", "qwen2.5:0.5b", 1000.0), ("unload", "llama3.2:3b", 1000.0)]  # fmt: skip

        port = fake.port
        with caplog.at_level(logging.WARNING, logger="gpm.llm.ps"):
            await fake.stop()
            await next_matching(updates, lambda u: not u[2])
            down = await next_matching(updates, lambda u: not u[2])  # still down: no new log
        assert down[0] == () and down[3] is None
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1

        fake.models = []
        await fake.start(port)
        _, events, up, version = await next_matching(updates, lambda u: u[2])
        assert version == "0.12.0"
        assert [(e.event, e.model) for e in events] == [("unload", "qwen2.5:0.5b")]
    finally:
        await poller.stop()


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        ModelPoller("http://127.0.0.1:1", 0, lambda *u: None)
