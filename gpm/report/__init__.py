"""The weekly report (``gpm report``): one ISO week (UTC, Monday to Sunday, as the weekly
summaries count it) gathered from the history into a plain :class:`WeeklyReport`, which
:mod:`gpm.report.markdown` and :mod:`gpm.report.html` render.

Where each figure comes from:

- GPU active hours: the weekly summaries (time above 5 % utilization). Idle hours: the time GPM
  read the GPU that week (:meth:`Queries.observed_seconds`, the same sample rule) less the active
  hours. The energy table's idle share cannot give hours: it holds the GPU's idle floor, which
  is charged while the GPU works too.
- Energy per GPU and per workload class, idle and unattributed apart: the hourly energy table.
- Per model: sessions, p50 TTFT and p50 tokens/s from :meth:`Queries.llm_stats`, J/token from
  :meth:`Queries.energy`, completion tokens from :meth:`Queries.completion_tokens`; each against
  the week before, by model name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date

from gpm.energy.attribution import UNATTRIBUTED
from gpm.energy.cost import Prices
from gpm.storage.queries import Queries
from gpm.storage.results import EnergyHistory, GpuEnergy
from gpm.storage.summaries import (
    ACTIVE_UTILIZATION_PERCENT,
    DAY,
    MAX_SAMPLE_SECONDS,
    WEEK,
    week_day,
    week_label,
)

REGRESSION_PERCENT = 10.0  # this much slower or hungrier than the week before is called out

# Per-model figures in the order shown: key, label, decimals shown.
MODEL_FIGURES: tuple[tuple[str, str, int], ...] = (
    ("sessions", "sessions", 0),
    ("completion_tokens", "completion tokens", 0),
    ("ttft_ms_p50", "p50 TTFT ms", 0),
    ("tokens_per_second_p50", "p50 tokens/s", 1),
    ("joules_per_token", "J/token", 3),
)
# Figures whose change can be a regression: key, the sign of a worse change, what it makes it.
_WATCHED: tuple[tuple[str, int, str], ...] = (
    ("tokens_per_second_p50", -1, "slower"),
    ("ttft_ms_p50", +1, "slower"),
    ("joules_per_token", +1, "hungrier"),
)

HOURS_NOTE = (
    f"Active: time above {ACTIVE_UTILIZATION_PERCENT:g} % utilization, from the weekly "
    f"summaries; each sample stands for the time to the next one, at most "
    f"{MAX_SAMPLE_SECONDS:g} s. Idle: the time GPM read the GPU less the active time; time "
    "GPM was not running counts as neither."
)
ENERGY_NOTE = (
    "Energy: GPM's energy ledger (NVML's energy counter, else power over time), summed per "
    "hour. Idle energy is each GPU's idle floor, which is counted while the GPU works too; "
    "unattributed is energy of polls whose process list was unknown."
)

_WEEK = re.compile(r"(\d{4})-W(\d{2})", re.IGNORECASE)
_EPOCH = date(1970, 1, 1)


def parse_week(text: str) -> int:
    """``2026-W48`` -> the week's Monday in days since the epoch (how the summaries key weeks).

    Raises ValueError naming the expected form.
    """
    match = _WEEK.fullmatch(text.strip())
    try:
        if match is None:
            raise ValueError(text)
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise ValueError(
            f"expected an ISO week as YYYY-Www, e.g. 2026-W48 (weeks 01 to 52 or 53); got {text!r}"
        ) from None
    return (monday - _EPOCH).days


def last_complete_week(now: float) -> int:
    """The Monday of the week before ``now``'s week, the default of ``gpm report``."""
    return week_day(now) - 7


@dataclass(frozen=True, slots=True)
class Compared:
    """One figure this week and the week before; None where unknown."""

    this: float | None
    previous: float | None

    @property
    def change_percent(self) -> float | None:
        if self.this is None or not self.previous:
            return None
        return (self.this - self.previous) / self.previous * 100.0


@dataclass(frozen=True, slots=True)
class GpuWeek:
    gpu_id: int
    name: str | None
    hours_active: float | None
    hours_idle: float | None
    joules: float | None
    idle_joules: float | None


@dataclass(frozen=True, slots=True)
class ModelWeek:
    """One model's figures (keys of MODEL_FIGURES) against the week before."""

    model: str
    figures: Mapping[str, Compared]


@dataclass(frozen=True, slots=True)
class Regression:
    """A model REGRESSION_PERCENT or more worse on one figure than the week before."""

    model: str
    what: str  # "slower" or "hungrier"
    figure: str  # a key of MODEL_FIGURES
    compared: Compared


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    week: str
    previous_week: str
    start: float
    end: float
    generated_at: float
    prices: Prices
    gpus: tuple[GpuWeek, ...]
    workloads: Mapping[str, float]  # workload class -> joules, most first
    idle_joules: float | None  # None: no energy rows at all
    unattributed_joules: float | None  # None: none recorded
    models: tuple[ModelWeek, ...]
    regressions: tuple[Regression, ...]

    @property
    def complete(self) -> bool:
        """Whether the week had ended when the report was made."""
        return self.generated_at >= self.end

    @property
    def joules(self) -> float | None:
        known = [g.joules for g in self.gpus if g.joules is not None]
        return sum(known) if known else None

    @property
    def empty(self) -> bool:
        return not (self.gpus or self.models)


def build_report(queries: Queries, prices: Prices, monday: int, *, now: float) -> WeeklyReport:
    """The report of the week starting on ``monday`` (days since the epoch)."""
    start = monday * DAY
    end = start + WEEK
    previous = start - WEEK
    energy = queries.energy(start, end)
    workloads = dict(energy.workloads)
    unattributed = workloads.pop(UNATTRIBUTED, None)
    models = _models(
        _model_figures(queries, energy), _model_figures(queries, queries.energy(previous, start))
    )
    return WeeklyReport(
        week=week_label(monday),
        previous_week=week_label(monday - 7),
        start=start,
        end=end,
        generated_at=now,
        prices=prices,
        gpus=_gpus(queries, monday, energy.gpus),
        workloads=dict(sorted(workloads.items(), key=lambda kv: -kv[1])),
        idle_joules=energy.idle_joules if energy.gpus else None,
        unattributed_joules=unattributed,
        models=models,
        regressions=tuple(r for m in models for r in _regressions(m)),
    )


def _gpus(queries: Queries, monday: int, energy: tuple[GpuEnergy, ...]) -> tuple[GpuWeek, ...]:
    label = week_label(monday)
    active = {
        s.gpu_id: s.hours_active
        for s in queries.weekly_summaries(1, now=monday * DAY)
        if s.week == label and s.gpu_id is not None
    }
    observed = queries.observed_seconds(monday * DAY, monday * DAY + WEEK)
    by_gpu = {g.gpu_id: g for g in energy}
    names = {gpu_id: name for gpu_id, _, name in queries.gpu_ids()}
    out = []
    for gpu_id in sorted(active.keys() | observed.keys() | by_gpu.keys()):
        hours = active.get(gpu_id)
        used = by_gpu.get(gpu_id)
        out.append(
            GpuWeek(
                gpu_id=gpu_id,
                name=names.get(gpu_id),
                hours_active=hours,
                hours_idle=_idle_hours(hours, observed.get(gpu_id)),
                joules=used.joules if used else None,
                idle_joules=used.idle_joules if used else None,
            )
        )
    return tuple(out)


_SLACK_HOURS = 1 / 60  # float sums and the archives' millisecond times, never a real minute


def _idle_hours(active: float | None, observed_seconds: float | None) -> float | None:
    """Observed less active hours; unknown when the week's samples are gone (deleted with
    archival off) so that observed falls short of what the summaries counted."""
    if active is None or observed_seconds is None:
        return None
    idle = observed_seconds / 3600 - active
    return None if idle < -_SLACK_HOURS else max(idle, 0.0)


_Figures = dict[str, float | None]
_UNUSED: _Figures = {"sessions": 0, "completion_tokens": 0}  # a model not used that week


def _model_figures(queries: Queries, energy: EnergyHistory) -> dict[str, _Figures]:
    """Each model's figures (keys of MODEL_FIGURES) over the range of ``energy``."""
    stats = queries.llm_stats(energy.start, energy.end)
    completion = queries.completion_tokens(energy.start, energy.end)
    per_token = {m.model: m.joules_per_token for m in energy.models}
    return {
        m.model: {
            "sessions": m.sessions,
            "completion_tokens": completion.get(m.model),
            "ttft_ms_p50": m.ttft_ms_p50,
            "tokens_per_second_p50": m.tokens_per_second_p50,
            "joules_per_token": per_token.get(m.model),
        }
        for m in stats.models
    }


def _models(this: dict[str, _Figures], before: dict[str, _Figures]) -> tuple[ModelWeek, ...]:
    """This week's models, most sessions first, against the same names the week before."""
    out = []
    for model, figures in sorted(this.items(), key=lambda kv: (-(kv[1]["sessions"] or 0), kv[0])):
        previous = before.get(model, _UNUSED)
        compared = {key: Compared(figures[key], previous.get(key)) for key, _, _ in MODEL_FIGURES}
        out.append(ModelWeek(model, compared))
    return tuple(out)


def _regressions(m: ModelWeek) -> Iterator[Regression]:
    for key, worse, what in _WATCHED:
        change = m.figures[key].change_percent
        # Rounded, so that a change of exactly the threshold counts despite float error.
        if change is not None and round(change * worse, 9) >= REGRESSION_PERCENT:
            yield Regression(m.model, what, key, m.figures[key])
