"""Fixtures for the ``gpm top`` tests: one ``gpm run --demo`` shared by a module's tests, and the
fake NVML library for standalone mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GpmProcess, gpm_env
from tests.fakes.fake_nvml import fake_nvml_build, fake_nvml_lib, fake_nvml_scenario

__all__ = ["demo_service", "fake_nvml_build", "fake_nvml_lib", "fake_nvml_scenario"]


@pytest.fixture(scope="module")
def demo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpmProcess]:
    """A running ``gpm run --demo`` (2 simulated GPUs, an LLM request every ~3 s) for tests that
    only read it."""
    tmp: Path = tmp_path_factory.mktemp("gpm-demo")
    env, ports = gpm_env(tmp)
    gpm = GpmProcess(data_dir=tmp / "data", env=env, ports=ports, log_path=tmp / "gpm.log")
    gpm.start("run", "--demo")
    try:
        gpm.wait_ready()
        yield gpm
    finally:
        gpm.stop()
