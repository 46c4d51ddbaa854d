"""Every catalog reading the fake library serves is read through the real bindings, exactly.

A reading added to gpm/catalog.py and to the fake library's SERVES is covered here without
editing this file; a catalog reading the NVML source does not read yet fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpm import catalog
from gpm.gpu.nvml import NvmlSource
from tests.fakes.fake_nvml import SERVED_OTHERWISE, SERVES, Scenario


def test_every_served_reading_is_read(fake_nvml_scenario: Scenario, fake_nvml_lib: Path) -> None:
    values = {value: 7 + i for i, (value, _) in enumerate(SERVES.values())}
    values["pstate"] = 2  # P0 ... P15
    values["memory_total"] = 80 << 30
    values["nvlink_active"] = 3  # of nvlink_links
    flags = {"remap_pending": 0, "remap_failure": 0, "retired_pending": 0}
    fake_nvml_scenario.set_gpu(0, ecc_enabled=1, nvlink_links=4, **flags, **values).write()
    source = NvmlSource(library_path=str(fake_nvml_lib))
    try:
        gpu = source.poll(1.0).gpus[0]
    finally:
        source.close()
    for reading, (value, factor) in SERVES.items():
        assert getattr(gpu, reading) == pytest.approx(values[value] * factor), reading


def test_the_fake_serves_every_stored_reading_the_source_reads() -> None:
    assert set(SERVES) | SERVED_OTHERWISE == catalog.STORED_NAMES
    assert not set(SERVES) & SERVED_OTHERWISE
