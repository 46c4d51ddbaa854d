"""Every reading in the catalog reaches every sink, with nothing typed out by hand elsewhere.

Each stored reading gets a distinct value; the test follows the sample through SQLite, the JSON
view and its schema, the chart rollups, /metrics and the OTLP instruments. A reading added to
gpm/catalog.py is covered here without editing this file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpm import catalog
from gpm.api import schemas
from gpm.model import GpuSample, Snapshot
from gpm.state import LiveState
from gpm.storage import rollup
from gpm.storage.db import open_database
from gpm.storage.queries import Queries
from gpm.storage.writer import Writer
from gpm.telemetry.otlp_hardware import catalog_instruments, catalog_reader
from gpm.telemetry.prometheus import MetricsExporter
from gpm.views import snapshot_view

NOW = 1_795_000_000.0


def every_reading() -> GpuSample:
    values = {r.name: (1000 + i if r.integer else 10.5 + i) for i, r in enumerate(catalog.STORED)}
    return GpuSample(gpu_id=0, timestamp=NOW, uuid="GPU-0", name="Fake GPU", **values)


def test_a_sample_has_every_reading_and_only_those() -> None:
    g = every_reading()
    assert set(g.readings) == catalog.STORED_NAMES
    assert GpuSample(0, NOW).temperature_celsius is None  # unreported reads as None, never 0
    with pytest.raises(TypeError, match="not a reading"):
        GpuSample(0, NOW, temprature_celsius=1.0)  # type: ignore[arg-type]


def test_every_reading_is_stored_and_read_back(tmp_path: Path) -> None:
    db = tmp_path / "gpm.db"
    writer = Writer(db, flush_interval=60.0)
    writer.start()
    writer.add_snapshot(Snapshot(timestamp=NOW, source="nvml", gpus=(every_reading(),)))
    assert writer.flush()
    writer.close()
    latest = Queries(db, tmp_path / "archive").latest_snapshot()
    assert latest is not None
    assert latest.gpus[0].readings == every_reading().readings
    conn = open_database(db)
    for level in rollup.LEVELS:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({level.table})")}
        assert {rollup.column(m, p) for m in catalog.CHARTED for p in rollup.PARTS} <= columns


def test_every_reading_is_in_the_json_view_and_its_schema() -> None:
    view = snapshot_view(Snapshot(timestamp=NOW, source="nvml", gpus=(every_reading(),)))
    gpu = view["gpus"][0]
    g = every_reading()
    for r in catalog.READINGS:
        expected = getattr(g, r.name)
        assert gpu[r.name] == (round(expected, r.digits) if r.digits else expected), r.name
    schemas.Realtime.model_validate(view)  # extra="forbid": nothing served that is undeclared
    assert set(catalog.BY_NAME) <= set(schemas.GpuNow.model_fields)


def test_every_exported_reading_is_on_metrics() -> None:
    state = LiveState(snapshot=Snapshot(timestamp=NOW, source="nvml", gpus=(every_reading(),)))
    text = MetricsExporter(state).render().decode()
    samples = {
        (s.name, s.labels.get(r.prom.label, "") if r.prom and r.prom.label else ""): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        for r in catalog.READINGS
        if r.prom is not None and family.name == r.prom.name
    }
    g = every_reading()
    for r in catalog.READINGS:
        if r.prom is None:
            continue
        name = f"{r.prom.name}_total" if r.prom.counter else r.prom.name
        assert samples[(name, r.prom_label or "")] == getattr(g, r.name), r.name


def test_every_otel_reading_has_its_instrument() -> None:
    g = every_reading()
    for instrument, readings in catalog_instruments().items():
        observed = list(catalog_reader(readings)(g))
        assert len(observed) == len(readings), instrument.name
        for r, (value, attributes) in zip(readings, observed, strict=True):
            assert value == pytest.approx(float(getattr(g, r.name)) * r.otel_scale)
            assert attributes == r.otel_attributes
