"""``gpm report``: the weekly report over a real SQLite history written by the real Writer."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gpm.cli import main
from gpm.energy.cost import Prices
from gpm.model import EnergyUse, LlmSession, Snapshot
from gpm.report import WeeklyReport, build_report, last_complete_week, parse_week
from gpm.report.html import render_html
from gpm.report.markdown import render_markdown
from gpm.storage import refresh_weekly_summaries, run_retention
from gpm.storage.db import open_database
from gpm.storage.queries import Queries
from gpm.storage.writer import Writer
from tests.conftest import GpmProcess
from tests.storage.helpers import DAY, HOUR, MONDAY, sample

W48 = parse_week("2026-W48")  # the week of MONDAY
PREVIOUS = MONDAY - 7 * DAY
NOW = MONDAY + 8 * DAY  # the Tuesday after: W48 is complete
KWH = 3.6e6
EUR = Prices(price_per_kwh=0.20, currency="EUR", grams_co2_per_kwh=None)
XSS = "<script>alert(1)</script>"


def write(
    db: Path,
    *,
    snapshots: Iterable[Snapshot] = (),
    sessions: Iterable[LlmSession] = (),
    energy: Iterable[EnergyUse] = (),
) -> None:
    """Write through the service's Writer, then refresh the weekly summaries as it does."""
    db.parent.mkdir(parents=True, exist_ok=True)
    writer = Writer(db)
    writer.start()
    for snap in snapshots:
        writer.add_snapshot(snap)
    for s in sessions:
        writer.add_session(s)
    writer.add_energy(list(energy))
    writer.close()
    conn = open_database(db)
    try:
        refresh_weekly_summaries(conn, now=NOW)
    finally:
        conn.close()


def polls(gpu_id: int, start: float, utils: list[float]) -> list[Snapshot]:
    """One poll of one GPU every 10 s, at these utilizations."""
    return [
        Snapshot(timestamp=start + 10 * i, source="nvml", gpus=(sample(gpu_id, start + 10 * i, u),))
        for i, u in enumerate(utils)
    ]


def sessions(
    model: str,
    week: float,
    *,
    tps: float | None = 50.0,
    ttft: float | None = 200.0,
    joules: float | None = 50.0,
    tokens: int | None = 100,
    n: int = 10,
) -> list[LlmSession]:
    """``n`` sessions on the Tuesday of the week starting at ``week``, all with these figures."""
    return [
        LlmSession(
            id=f"{model}-{week}-{i}",
            model=model,
            endpoint="/api/chat",
            started_at=week + DAY + i * 60,
            prompt_tokens=10,
            completion_tokens=tokens,
            tokens_per_second=tps,
            ttft_ms=ttft,
            energy_joules=joules,
        )
        for i in range(n)
    ]


def use(ts: float, gpu_id: int, workload: str, joules: float) -> EnergyUse:
    return EnergyUse(timestamp=ts, gpu_id=gpu_id, workload=workload, joules=joules)


@pytest.fixture
def full_week(tmp_path: Path) -> Path:
    """W48: GPU 0 busy 1 h then idle 1 h, GPU 1 busy 30 min; energy per workload; two models
    with the week before to compare against."""
    db = tmp_path / "data" / "gpm.db"
    day = MONDAY + 10 * HOUR
    write(
        db,
        snapshots=polls(0, day, [50.0] * 360 + [0.0] * 361) + polls(1, day + DAY, [90.0] * 181),
        sessions=[
            *sessions("llama3:8b", MONDAY, tps=40.0, joules=50.0),
            *sessions("llama3:8b", PREVIOUS, tps=50.0, joules=50.0),
            *sessions("qwen2:0.5b", MONDAY, tps=95.0, joules=20.0),
            *sessions("qwen2:0.5b", PREVIOUS, tps=100.0, joules=20.0),
            *sessions("nomic:latest", MONDAY, tps=None, ttft=None, joules=None, tokens=None, n=2),
        ],
        energy=[
            use(day, 0, "llm_inference", 1.0 * KWH),
            use(day, 0, "idle", 0.1 * KWH),
            use(day, 0, "unattributed", 0.05 * KWH),
            use(MONDAY + 7 * DAY - 1, 1, "ml_training", 2.0 * KWH),  # the week's last hour
            use(MONDAY + 7 * DAY, 1, "ml_training", 5.0 * KWH),  # the next week's first
        ],
    )
    return db


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """For ``gpm.cli.main`` in this process: no config but the data directory given."""

    def use_data_dir(data_dir: Path) -> None:
        for name in [n for n in os.environ if n.startswith("GPM_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
        monkeypatch.setenv("GPM_SERVICE_DATA_DIR", str(data_dir))

    return use_data_dir


def report_of(db: Path, week: int = W48, prices: Prices = EUR, **kw: Path) -> WeeklyReport:
    queries = Queries(db, kw.get("archive_dir"))
    try:
        return build_report(queries, prices, week, now=NOW)
    finally:
        queries.close()


# -- the week ------------------------------------------------------------------------------------


def test_week_parses_and_defaults_to_the_last_complete_one() -> None:
    assert W48 * DAY == MONDAY
    assert parse_week("2026-w48") == W48
    assert last_complete_week(NOW) == W48  # Tuesday of W49
    assert last_complete_week(MONDAY) == W48 - 7  # Monday 00:00 of W48: W47 was the last
    for bad in ("2026-W60", "2026-W00", "2025-W53", "foo", "2026-48", ""):
        with pytest.raises(ValueError, match="YYYY-Www"):
            parse_week(bad)
    assert parse_week("2026-W53") == W48 + 5 * 7  # 2026 has 53 ISO weeks


# -- contents ------------------------------------------------------------------------------------


def test_empty_week_says_there_is_no_data(full_week: Path) -> None:
    report = report_of(full_week, week=W48 + 14)  # W50: nothing written
    assert report.empty
    text = render_markdown(report)
    assert "No data for 2026-W50" in text
    assert "## GPUs" not in text
    assert "No data for 2026-W50" in render_html(report)


def test_empty_database_gives_an_empty_report(tmp_path: Path) -> None:
    db = tmp_path / "gpm.db"
    write(db)
    report = report_of(db)
    assert (report.gpus, report.models, report.idle_joules) == ((), (), None)
    assert "No data for 2026-W48" in render_markdown(report)


def test_gpu_hours_and_energy(full_week: Path) -> None:
    report = report_of(full_week)
    gpu0, gpu1 = report.gpus
    assert (gpu0.gpu_id, gpu0.name) == (0, "Fake GPU")
    assert gpu0.hours_active == pytest.approx(1.0)  # 360 polls above 5 %, 10 s each
    assert gpu0.hours_idle == pytest.approx(1.0)  # the 360 at 0 % (the last one ends the data)
    assert gpu0.joules == pytest.approx(1.15 * KWH)
    assert gpu0.idle_joules == pytest.approx(0.1 * KWH)
    assert gpu1.hours_active == pytest.approx(0.5)
    assert gpu1.hours_idle == pytest.approx(0.0)
    assert gpu1.joules == pytest.approx(2.0 * KWH)  # the next week's 5 kWh left out

    text = render_markdown(report)
    header = "| GPU | name | active h | idle h | energy kWh | cost EUR | idle kWh | idle cost EUR |"
    assert header in text
    assert "| 0 | Fake GPU | 1.0 | 1.0 | 1.150 | 0.23 | 0.100 | 0.02 |" in text
    assert "| 1 | Fake GPU | 0.5 | 0.0 | 2.000 | 0.40 | 0.000 | 0.00 |" in text
    assert "Energy 3.150 kWh · cost 0.63 EUR · idle 0.100 kWh" in text


def test_energy_by_workload_in_kwh_with_idle_and_unattributed_apart(full_week: Path) -> None:
    report = report_of(full_week)
    assert report.workloads == {
        "ml_training": pytest.approx(2.0 * KWH),
        "llm_inference": pytest.approx(1.0 * KWH),
    }
    assert report.idle_joules == pytest.approx(0.1 * KWH)
    assert report.unattributed_joules == pytest.approx(0.05 * KWH)

    rows = [line for line in render_markdown(report).splitlines() if "kWh" not in line]
    assert rows[rows.index("| ml_training | 2.000 | 63.5 % | 0.40 |") :][:4] == [
        "| ml_training | 2.000 | 63.5 % | 0.40 |",
        "| llm_inference | 1.000 | 31.7 % | 0.20 |",
        "| idle (GPU idle floor) | 0.100 | 3.2 % | 0.02 |",
        "| unattributed (process list unknown) | 0.050 | 1.6 % | 0.01 |",
    ]
    assert "| total | 3.150 | 100.0 % | 0.63 |" in rows


def test_no_cost_without_a_price(full_week: Path) -> None:
    none = Prices(price_per_kwh=None, currency="EUR", grams_co2_per_kwh=None)
    text = render_markdown(report_of(full_week, prices=none))
    assert "cost" not in text
    assert "EUR" not in text
    assert "CO2" not in text
    co2 = Prices(price_per_kwh=None, currency="EUR", grams_co2_per_kwh=400.0)
    text = render_markdown(report_of(full_week, prices=co2))
    assert "| ml_training | 2.000 | 63.5 % | 0.800 |" in text  # 2 kWh x 400 g, in kg
    assert "cost" not in text


def test_models_against_the_previous_week(full_week: Path) -> None:
    report = report_of(full_week)
    assert [m.model for m in report.models] == ["llama3:8b", "qwen2:0.5b", "nomic:latest"]
    llama = report.models[0].figures
    assert (llama["sessions"].this, llama["sessions"].previous) == (10, 10)
    assert (llama["completion_tokens"].this, llama["completion_tokens"].previous) == (1000, 1000)
    assert llama["joules_per_token"].this == pytest.approx(0.5)  # 50 J per 100 tokens
    assert llama["tokens_per_second_p50"].change_percent == pytest.approx(-20.0)
    qwen = report.models[1].figures
    assert qwen["joules_per_token"].this == pytest.approx(0.2)

    text = render_markdown(report)
    assert "| llama3:8b | sessions | 10 | 10 | +0.0 % |" in text
    assert "|  | J/token | 0.500 | 0.500 | +0.0 % |" in text
    assert "|  | p50 tokens/s | 40.0 | 50.0 | -20.0 % (slower) |" in text
    assert "not Ollama digests" in text


def test_unknown_figures_are_a_dash_never_zero(full_week: Path) -> None:
    report = report_of(full_week)
    nomic = report.models[2].figures
    assert nomic["completion_tokens"].this is None  # no session reported a count
    assert nomic["joules_per_token"].this is None
    assert nomic["sessions"].previous == 0  # not used the week before: a known 0
    lines = render_markdown(report).splitlines()
    start = lines.index("| nomic:latest | sessions | 2 | 0 | — |")
    assert lines[start + 1 : start + 5] == [
        "|  | completion tokens | — | 0 | — |",
        "|  | p50 TTFT ms | — | — | — |",
        "|  | p50 tokens/s | — | — | — |",
        "|  | J/token | — | — | — |",
    ]


def test_regressions_are_called_out(tmp_path: Path) -> None:
    db = tmp_path / "gpm.db"
    write(
        db,
        sessions=[
            *sessions("slow", MONDAY, tps=40.0),  # 20 % fewer tokens/s
            *sessions("slow", PREVIOUS, tps=50.0),
            *sessions("steady", MONDAY, tps=95.0),  # 5 %: within noise
            *sessions("steady", PREVIOUS, tps=100.0),
            *sessions("laggy", MONDAY, ttft=250.0),  # TTFT up 25 %
            *sessions("laggy", PREVIOUS, ttft=200.0),
            *sessions("hungry", MONDAY, joules=60.0),  # J/token up 20 %
            *sessions("hungry", PREVIOUS, joules=50.0),
            *sessions("edge", MONDAY, tps=45.0),  # exactly 10 %
            *sessions("edge", PREVIOUS, tps=50.0),
        ],
    )
    report = report_of(db)
    called = {(r.model, r.what, r.figure) for r in report.regressions}
    assert called == {
        ("slow", "slower", "tokens_per_second_p50"),
        ("laggy", "slower", "ttft_ms_p50"),
        ("hungry", "hungrier", "joules_per_token"),
        ("edge", "slower", "tokens_per_second_p50"),
    }
    text = render_markdown(report)
    section = text.split("### Regressions", 1)[1]
    assert "- slow is slower: p50 tokens/s 40.0 against 50.0 in 2026-W47 (-20.0 %)" in section
    assert "- hungry is hungrier: J/token 0.600 against 0.500 in 2026-W47 (+20.0 %)" in section
    assert "steady" not in section
    assert "|  | p50 tokens/s | 95.0 | 100.0 | -5.0 % |" in text


def test_no_regression_says_so(full_week: Path) -> None:
    text = render_markdown(report_of(full_week, week=W48 - 7))  # W47: nothing the week before
    assert "No model is 10 % or more slower or hungrier than in 2026-W46." in text


def test_archived_week_reports_the_same(full_week: Path, tmp_path: Path) -> None:
    """Past retention the rows live in Parquet: the report reads them there."""
    before = report_of(full_week)
    archive = tmp_path / "archive"
    run_retention(full_week, archive, retention_days=0, archive=True, now=NOW)
    after = report_of(full_week, archive_dir=archive)
    # Names are the newest SQLite holds (none here: every row moved), the figures all equal.
    assert [g.name for g in after.gpus] == [None, None]
    assert after == replace(before, gpus=tuple(replace(g, name=None) for g in before.gpus))
    assert after.gpus[0].hours_idle == pytest.approx(1.0)


# -- HTML --------------------------------------------------------------------------------------

_VOID = {"meta", "link", "br", "hr", "img", "input"}


class _Checker(HTMLParser):
    """Every element closed in order; the tags and text seen."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == []
    return checker


def test_html_is_well_formed_self_contained_and_escaped(full_week: Path) -> None:
    write(
        full_week,
        sessions=[*sessions(XSS, MONDAY, tps=10.0), *sessions(XSS, PREVIOUS, tps=30.0)],
    )
    report = report_of(full_week)
    text = render_html(report)
    page = check_html(text)
    assert page.tags.count("svg") == 2  # energy by workload, tokens/s by model
    assert page.tags.count("script") == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "src=" not in text
    assert "href=" not in text
    assert "@import" not in text
    words = " ".join(page.text)
    assert f"{XSS} is slower: p50 tokens/s 10.0 against 30.0" in words
    assert "ml_training" in words
    assert "2.000 kWh" in words  # a bar's label
    assert "\\<script\\>alert(1)\\</script\\>" in render_markdown(report)


def test_html_of_an_empty_week(full_week: Path) -> None:
    page = check_html(render_html(report_of(full_week, week=W48 + 14)))
    assert "svg" not in page.tags
    assert any("No data for 2026-W50" in t for t in page.text)


# -- the command -------------------------------------------------------------------------------


def test_gpm_report_writes_the_html_file(
    gpm_process: Callable[..., GpmProcess], full_week: Path, tmp_path: Path
) -> None:
    gpm = gpm_process(GPM_ENERGY_PRICE_PER_KWH="0.20", GPM_ENERGY_CURRENCY="EUR")
    assert full_week.parent == gpm.data_dir
    out = tmp_path / "week.html"
    result = gpm.run("report", "--week", "2026-W48", "--format", "html", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"wrote the 2026-W48 report to {out}" in result.stderr
    page = check_html(out.read_text(encoding="utf-8"))
    words = " ".join(page.text)
    assert "GPM weekly report 2026-W48" in words
    assert "llama3:8b is slower" in words
    assert "cost EUR" in words
    assert page.tags.count("svg") == 2


def test_gpm_report_prints_markdown(
    full_week: Path, cli_env: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env(full_week.parent)
    assert main(["report", "--week", "2026-W48"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# GPM weekly report 2026-W48\n")
    assert "| llm_inference | 1.000 | 31.7 % |" in out


@pytest.mark.parametrize("week", ["2026-W60", "foo"])
def test_bad_week_is_a_usage_error(
    week: str, tmp_path: Path, cli_env: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--week", week])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--week" in err
    assert "YYYY-Www" in err
    assert repr(week) in err


def test_missing_database_is_the_error_sessions_gives(
    tmp_path: Path, cli_env: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env(tmp_path / "nowhere")
    assert main(["sessions"]) == 1
    sessions_err = capsys.readouterr().err
    assert main(["report"]) == 1
    assert capsys.readouterr().err == sessions_err
    assert "`gpm run` first" in sessions_err
