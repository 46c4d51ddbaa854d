"""The weekly report's content as plain text: lines and tables of formatted cells, built once
from a WeeklyReport, so that the Markdown and HTML renderers differ only in syntax (and the
HTML's charts).

An unknown figure is "—", never 0; cost and CO2 columns appear only where their price is
configured. Cells hold text from the data as it is: each renderer escapes it for its format.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpm.energy.cost import JOULES_PER_KWH
from gpm.report import MODEL_FIGURES, REGRESSION_PERCENT, WeeklyReport
from gpm.storage.summaries import DAY
from gpm.timefmt import to_rfc3339

DASH = "—"
_LABELS = {key: label for key, label, _ in MODEL_FIGURES}


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]  # per column: right-aligned
    marked: frozenset[int] = frozenset()  # rows that call out a regression


def number(value: float | None, digits: int = 0) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


def kwh(joules: float | None) -> str:
    return number(None if joules is None else joules / JOULES_PER_KWH, 3)


def change(percent: float | None) -> str:
    return DASH if percent is None else f"{percent:+.1f} %"


def title(r: WeeklyReport) -> str:
    return f"GPM weekly report {r.week}"


def period(r: WeeklyReport) -> str:
    """The week's days, and whether it was over when the report was made."""
    first, last = (to_rfc3339(t) or "" for t in (r.start, r.end - DAY))
    so_far = "" if r.complete else f", so far (up to {to_rfc3339(r.generated_at)})"
    return f"{first[:10]} to {last[:10]} (Monday to Sunday, UTC){so_far}"


def no_data(r: WeeklyReport) -> str:
    return f"No data for {r.week}: GPM recorded no GPU samples, energy or LLM sessions that week."


def totals(r: WeeklyReport) -> str:
    """One line: the week's energy, its cost and CO2 where configured, and the idle share."""
    parts = [f"Energy {kwh(r.joules)} kWh"]
    cost = r.prices.cost(r.joules)
    if cost is not None:
        parts.append(f"cost {cost:,.2f} {r.prices.currency}")
    co2 = r.prices.co2_grams(r.joules)
    if co2 is not None:
        parts.append(f"CO2 {co2 / 1000:,.3f} kg")
    parts.append(f"idle {kwh(r.idle_joules)} kWh")
    return " · ".join(parts)


def _price_headers(r: WeeklyReport, what: str = "") -> list[str]:
    out = []
    if r.prices.price_per_kwh is not None:
        out.append(f"{what}cost {r.prices.currency}")
    if r.prices.grams_co2_per_kwh is not None:
        out.append(f"{what}CO2 kg")
    return out


def _priced(r: WeeklyReport, joules: float | None) -> list[str]:
    out = []
    if r.prices.price_per_kwh is not None:
        out.append(number(r.prices.cost(joules), 2))
    if r.prices.grams_co2_per_kwh is not None:
        grams = r.prices.co2_grams(joules)
        out.append(number(None if grams is None else grams / 1000, 3))
    return out


def gpu_table(r: WeeklyReport) -> Table:
    headers = ["GPU", "name", "active h", "idle h", "energy kWh", *_price_headers(r)]
    headers += ["idle kWh", *_price_headers(r, "idle ")]
    rows = tuple(
        (
            str(g.gpu_id),
            g.name or DASH,
            number(g.hours_active, 1),
            number(g.hours_idle, 1),
            kwh(g.joules),
            *_priced(r, g.joules),
            kwh(g.idle_joules),
            *_priced(r, g.idle_joules),
        )
        for g in r.gpus
    )
    return Table(tuple(headers), rows, (False, False) + (True,) * (len(headers) - 2))


def workload_energy(r: WeeklyReport) -> list[tuple[str, float]]:
    """Workload classes, most energy first, then idle and unattributed apart (the table's rows
    and the HTML chart's bars)."""
    named = [*r.workloads.items()]
    if r.idle_joules is not None:
        named.append(("idle (GPU idle floor)", r.idle_joules))
    if r.unattributed_joules is not None:
        named.append(("unattributed (process list unknown)", r.unattributed_joules))
    return named


def workload_table(r: WeeklyReport) -> Table:
    total = r.joules
    named: list[tuple[str, float | None]] = [*workload_energy(r), ("total", total)]

    def share(joules: float | None) -> str:
        return DASH if joules is None or not total else f"{joules / total * 100:.1f} %"

    headers = ("workload", "energy kWh", "share", *_price_headers(r))
    rows = tuple((name, kwh(j), share(j), *_priced(r, j)) for name, j in named)
    return Table(headers, rows, (False,) + (True,) * (len(headers) - 1))


def model_table(r: WeeklyReport) -> Table:
    """One row per model and figure: this week, the week before, the change."""
    flagged = {(x.model, x.figure): x.what for x in r.regressions}
    rows: list[tuple[str, ...]] = []
    marked = set()
    for m in r.models:
        for i, (key, label, digits) in enumerate(MODEL_FIGURES):
            c = m.figures[key]
            what = flagged.get((m.model, key))
            if what:
                marked.add(len(rows))
            rows.append(
                (
                    m.model if i == 0 else "",
                    label,
                    number(c.this, digits),
                    number(c.previous, digits),
                    change(c.change_percent) + (f" ({what})" if what else ""),
                )
            )
    headers = ("model", "figure", r.week, r.previous_week, "change")
    return Table(headers, tuple(rows), (False, False, True, True, True), frozenset(marked))


def model_note(r: WeeklyReport) -> str:
    return (
        f"Against {r.previous_week} by model name: GPM records model names, not Ollama digests, "
        "so a model pulled again under the same name counts as the same model. Slower: p50 "
        f"tokens/s down or p50 TTFT up {REGRESSION_PERCENT:g} % or more; hungrier: J/token up "
        f"{REGRESSION_PERCENT:g} % or more."
    )


def regression_lines(r: WeeklyReport) -> list[str]:
    """One line per regression, or one saying there is none."""
    if not r.regressions:
        return [
            f"No model is {REGRESSION_PERCENT:g} % or more slower or hungrier than in "
            f"{r.previous_week}."
        ]
    digits = {key: d for key, _, d in MODEL_FIGURES}
    return [
        f"{x.model} is {x.what}: {_LABELS[x.figure]} {number(x.compared.this, digits[x.figure])}"
        f" against {number(x.compared.previous, digits[x.figure])} in {r.previous_week}"
        f" ({change(x.compared.change_percent)})"
        for x in r.regressions
    ]
