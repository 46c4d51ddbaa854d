"""The Prometheus exposition GPM writes itself: counters and histograms that cache their text,
and the text/OpenMetrics encoder.

Why not prometheus_client's own ``generate_latest``: on the same collectors (8 GPUs, 200
processes, 50 models) it takes ~45 ms a scrape against a 5 ms target, where this encoder with its
cached label text and histogram lines takes ~2.8 ms (bench/metrics.py, bench/README.md). The
metric families themselves are prometheus_client's.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector


class Tally(Collector):
    """A labelled count that only goes up, updated from any thread.

    ``kind="unknown"`` keeps an original series name that ends in ``_count``
    (``gpm_llm_session_count``): prometheus_client would append ``_total`` to a counter, and
    promtool rejects a counter or gauge named ``*_count``, so it is exposed untyped. The series
    still only goes up, so ``rate()`` and ``increase()`` work on it.
    """

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...], kind: str) -> None:
        self.name, self.doc, self.labelnames, self.kind = name, doc, labelnames, kind
        self._counts: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        with self._lock:
            self._counts[labels] = self._counts.get(labels, 0.0) + amount

    def collect(self) -> Iterator[Metric]:
        family: Metric
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        else:
            family = UnknownMetricFamily(self.name, self.doc, labels=self.labelnames)
        with self._lock:
            items = sorted(self._counts.items())
        for labels, n in items:
            family.add_metric(list(labels), n)
        yield family


class _Child:
    """One label set: bucket counts, and the start of each of its lines (name and labels)."""

    __slots__ = ("count", "counts", "heads", "sum", "text")

    def __init__(self, heads: tuple[str, ...]) -> None:
        self.heads = heads  # one per bucket, then _count and _sum
        self.counts = [0] * (len(heads) - 2)
        self.sum = 0.0
        self.count = 0
        self.text: str | None = None


class LabelledHistogram(Collector):
    """A histogram whose rendered text is cached per label set.

    Sessions arrive a few times a second at most while a scrape renders thousands of bucket
    lines (50 models x 4 histograms), so each label set's lines are rebuilt only after it
    changed; this keeps a scrape in the low milliseconds.
    """

    def __init__(
        self, name: str, doc: str, labelnames: tuple[str, ...], buckets: Iterable[float]
    ) -> None:
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self._bounds = tuple(float(b) for b in buckets)
        self._le = (*(format_value(b) for b in self._bounds), "+Inf")
        self._children: dict[tuple[str, ...], _Child] = {}
        self._lock = threading.Lock()

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        self.observe_many(labels, (value,))

    def observe_many(self, labels: tuple[str, ...], values: Iterable[float]) -> None:
        """Observe several values under one lock (a session's every chunk gap)."""
        # A broken measurement must not poison _sum.
        good = [v for v in values if math.isfinite(v) and v >= 0]
        if not good:
            return
        bounds = self._bounds
        with self._lock:
            child = self._children.get(labels)
            if child is None:
                child = self._children[labels] = _Child(self._heads(labels))
            for value in good:
                child.counts[bisect.bisect_left(bounds, value)] += 1
                child.sum += value
                child.count += 1
            child.text = None

    def _cumulative(self, child: _Child) -> list[int]:
        return list(itertools.accumulate(child.counts))

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        with self._lock:
            for labels, child in sorted(self._children.items()):
                buckets = list(zip(self._le, map(float, self._cumulative(child)), strict=True))
                family.add_metric(list(labels), buckets, child.sum)
        yield family

    def text(self) -> str:
        parts = [f"# HELP {self.name} {_escape_help(self.doc)}\n# TYPE {self.name} histogram\n"]
        with self._lock:
            for _, child in sorted(self._children.items()):
                if child.text is None:
                    child.text = self._child_text(child)
                parts.append(child.text)
        return "".join(parts)

    def _heads(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        pairs = ",".join(
            f'{k}="{_escape_label(v)}"' for k, v in zip(self.labelnames, labels, strict=True)
        )
        name, lead = self.name, pairs + "," if pairs else ""
        brace = f"{{{pairs}}}" if pairs else ""
        return (
            *(f'{name}_bucket{{{lead}le="{le}"}} ' for le in self._le),
            f"{name}_count{brace} ",
            f"{name}_sum{brace} ",
        )

    def _child_text(self, child: _Child) -> str:
        values = (*map(str, self._cumulative(child)), str(child.count), format_value(child.sum))
        return "".join([f"{head}{v}\n" for head, v in zip(child.heads, values, strict=True)])


def format_value(v: float) -> str:
    """A sample value as both exposition formats spell it."""
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if v != v:
        return "NaN"
    return repr(float(v))


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


class LabelText:
    """Rendered ``{k="v",...}`` strings by label set, reused across scrapes.

    Label sets repeat (every GPU family carries the same gpu_id/name/uuid), and formatting them
    was most of a scrape's cost. The cache is cleared if it ever grows past ``limit``.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self._limit = limit
        self._cache: dict[tuple[tuple[str, str], ...], str] = {}

    def __call__(self, labels: dict[str, str]) -> str:
        key = tuple(labels.items())
        text = self._cache.get(key)
        if text is None:
            if len(self._cache) >= self._limit:
                self._cache.clear()
            pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in key)
            text = self._cache[key] = f"{{{pairs}}}" if pairs else ""
        return text


def encode_family(
    family: Metric, openmetrics: bool, label_text: LabelText, seen: dict[int, str]
) -> str:
    """One family in the classic text format or OpenMetrics (``_created`` samples dropped).

    ``seen`` maps ``id(labels)`` to its text for dicts shared between samples; it must live no
    longer than the families of one scrape, while those dicts (and so their ids) are alive.
    """
    name, kind = family.name, family.type
    if not openmetrics:
        if kind == "counter":
            name += "_total"
        elif kind == "unknown":
            kind = "untyped"
    lines = [f"# HELP {name} {_escape_help(family.documentation)}\n# TYPE {name} {kind}\n"]
    for s in family.samples:
        if s.name.endswith("_created"):
            continue
        labels = seen.get(id(s.labels))
        if labels is None:
            labels = seen[id(s.labels)] = label_text(s.labels)
        lines.append(f"{s.name}{labels} {format_value(s.value)}\n")
    return "".join(lines)


CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def wants_openmetrics(accept: str) -> bool:
    """True when the Accept header lists OpenMetrics (Prometheus prefers it when offered)."""
    return any(
        part.split(";")[0].strip() == "application/openmetrics-text" for part in accept.split(",")
    )
