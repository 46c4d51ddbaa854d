"""The weekly report as one self-contained HTML file (``gpm report --format html``): inline CSS
and charts drawn here as inline SVG, with no script, font or other file to fetch, so it opens
from a file anywhere. Every text from the data goes through ``html.escape``."""

from __future__ import annotations

import html

from gpm.energy.cost import JOULES_PER_KWH
from gpm.report import ENERGY_NOTE, HOURS_NOTE, WeeklyReport
from gpm.report import tables as t

_CSS = """
:root { color-scheme: light dark; --fg: #1f2328; --muted: #656d76; --line: #d0d7de;
  --bg: #ffffff; --s0: #3b82f6; --s1: #a3a3a3; --bad: #b42318; --bad-bg: #fde8e6; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #8d96a0;
  --line: #30363d; --bg: #0d1117; --s1: #6e7681; --bad: #ff7b72; --bad-bg: #3d1714; } }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0; }
main { max-width: 960px; margin: 0 auto; padding: 24px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid var(--line); }
.muted, .note { color: var(--muted); } .note { font-size: 13px; }
.totals { font-size: 17px; font-weight: 600; }
table { border-collapse: collapse; margin: 12px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; }
th { font-weight: 600; } .num { text-align: right; white-space: nowrap; }
tr.regression td { background: var(--bad-bg); color: var(--bad); font-weight: 600; }
ul.regressions li { margin: 4px 0; } ul.regressions.found li { color: var(--bad); }
svg { display: block; max-width: 100%; height: auto; margin: 12px 0; }
svg text { fill: var(--fg); font: 12px system-ui, sans-serif; }
svg .s0 { fill: var(--s0); } svg .s1 { fill: var(--s1); }
"""

_WIDTH, _LABEL, _BAR, _ROW, _GAP = 720, 220, 380, 18, 10


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _table(table: t.Table) -> str:
    def cell(tag: str, text: str, numeric: bool) -> str:
        cls = ' class="num"' if numeric else ""
        return f"<{tag}{cls}>{_e(text)}</{tag}>"

    head = "".join(cell("th", h, n) for h, n in zip(table.headers, table.numeric, strict=True))
    body = "".join(
        ('<tr class="regression">' if i in table.marked else "<tr>")
        + "".join(cell("td", c, n) for c, n in zip(row, table.numeric, strict=True))
        + "</tr>"
        for i, row in enumerate(table.rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bars(
    label: str,
    groups: list[tuple[str, list[float | None]]],
    series: list[str],
    unit: str,
    digits: int,
) -> str:
    """Horizontal bars as inline SVG: a group per name, a bar per series, all on one scale."""
    top = max((v for _, values in groups for v in values if v is not None), default=0.0) or 1.0
    legend = len(series) > 1
    y = _ROW + _GAP if legend else 0
    parts = []
    if legend:
        for i, name in enumerate(series):
            x = _LABEL + i * 160
            parts.append(f'<rect class="s{i}" x="{x}" y="2" width="12" height="12"/>')
            parts.append(f'<text x="{x + 18}" y="13">{_e(name)}</text>')
    for name, values in groups:
        middle = y + len(values) * _ROW / 2
        short = name if len(name) <= 32 else name[:31] + "…"
        parts.append(f'<text x="0" y="{middle + 4:.0f}">{_e(short)}</text>')
        for i, value in enumerate(values):
            width = 0.0 if value is None else max(value, 0.0) / top * _BAR
            parts.append(
                f'<rect class="s{i}" x="{_LABEL}" y="{y + 2}" width="{width:.1f}" '
                f'height="{_ROW - 4}"/>'
            )
            text = t.DASH if value is None else f"{t.number(value, digits)} {unit}"
            parts.append(f'<text x="{_LABEL + width + 6:.1f}" y="{y + _ROW - 5}">{_e(text)}</text>')
            y += _ROW
        y += _GAP
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {y}" width="{_WIDTH}" '
        f'height="{y}" role="img" aria-label="{_e(label)}"><title>{_e(label)}</title>'
        + "".join(parts)
        + "</svg>"
    )


def _energy_chart(r: WeeklyReport) -> str:
    groups: list[tuple[str, list[float | None]]] = [
        (name, [joules / JOULES_PER_KWH]) for name, joules in t.workload_energy(r)
    ]
    return _bars("Energy by workload, kWh", groups, [r.week], "kWh", 3)


def _speed_chart(r: WeeklyReport) -> str:
    groups: list[tuple[str, list[float | None]]] = [
        (
            m.model,
            [m.figures["tokens_per_second_p50"].this, m.figures["tokens_per_second_p50"].previous],
        )
        for m in r.models
    ]
    return _bars("p50 tokens/s by model", groups, [r.week, r.previous_week], "tok/s", 1)


def _body(r: WeeklyReport) -> list[str]:
    if r.empty:
        return [f"<p>{_e(t.no_data(r))}</p>"]
    out = [f'<p class="totals">{_e(t.totals(r))}</p>', "<h2>GPUs</h2>"]
    if r.gpus:
        out += [_table(t.gpu_table(r)), f'<p class="note">{_e(HOURS_NOTE)}</p>']
    else:
        out.append("<p>No GPU data.</p>")
    out.append("<h2>Energy by workload</h2>")
    if r.idle_joules is None:
        out.append("<p>No energy recorded.</p>")
    else:
        out += [_energy_chart(r), _table(t.workload_table(r))]
        out.append(f'<p class="note">{_e(ENERGY_NOTE)}</p>')
    out.append("<h2>Models</h2>")
    if not r.models:
        return [*out, "<p>No LLM sessions.</p>"]
    out += [_speed_chart(r), _table(t.model_table(r)), f'<p class="note">{_e(t.model_note(r))}</p>']
    found = " found" if r.regressions else ""
    items = "".join(f"<li>{_e(line)}</li>" for line in t.regression_lines(r))
    return [*out, "<h2>Regressions</h2>", f'<ul class="regressions{found}">{items}</ul>']


def render_html(r: WeeklyReport) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(t.title(r))}</title>",
            f"<style>{_CSS}</style></head>",
            "<body><main>",
            f"<h1>{_e(t.title(r))}</h1>",
            f'<p class="muted">{_e(t.period(r))}</p>',
            *_body(r),
            "</main></body>",
            "</html>",
            "",
        ]
    )
