"""The weekly report as Markdown (``gpm report``'s default): headings, the totals line, and pipe
tables of the cells :mod:`gpm.report.tables` formats."""

from __future__ import annotations

import re

from gpm.report import ENERGY_NOTE, HOURS_NOTE, WeeklyReport
from gpm.report import tables as t

# Characters that Markdown would read as table syntax, markup or inline HTML ("_" only
# emphasises at word edges, which names hardly have; escaping it would litter llm_inference).
_SPECIAL = re.compile(r"([\\`*\[\]<>|])")


def escape(text: str) -> str:
    """Text from the data (model and GPU names come from clients and drivers) as literal
    Markdown: on one line, with markup characters backslash-escaped."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _table(table: t.Table) -> list[str]:
    def row(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(escape(c) for c in cells) + " |"

    rule = "|" + "|".join("---:" if n else "---" for n in table.numeric) + "|"
    return [row(table.headers), rule, *(row(r) for r in table.rows)]


def render_markdown(r: WeeklyReport) -> str:
    lines = [f"# {t.title(r)}", "", escape(t.period(r)), ""]
    if r.empty:
        return "\n".join([*lines, escape(t.no_data(r)), ""])
    lines += [escape(t.totals(r)), "", "## GPUs", ""]
    lines += [*_table(t.gpu_table(r)), "", HOURS_NOTE, ""] if r.gpus else ["No GPU data.", ""]
    lines += ["## Energy by workload", ""]
    if r.idle_joules is None:
        lines += ["No energy recorded.", ""]
    else:
        lines += [*_table(t.workload_table(r)), "", ENERGY_NOTE, ""]
    lines += ["## Models", ""]
    if not r.models:
        return "\n".join([*lines, "No LLM sessions.", ""])
    lines += [*_table(t.model_table(r)), "", escape(t.model_note(r)), "", "### Regressions", ""]
    lines += [f"- {escape(line)}" for line in t.regression_lines(r)]
    return "\n".join([*lines, ""])
