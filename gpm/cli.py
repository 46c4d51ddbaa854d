"""The ``gpm`` and ``gpm-server`` commands.

Exit codes: 0 ok; 2 bad usage or bad configuration; 1 anything else, with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from gpm import __version__
from gpm.config import ConfigError, LoadedConfig, describe, load_config
from gpm.errors import UserError
from gpm.model import Snapshot
from gpm.tables import sessions_table, status_table
from gpm.timefmt import parse_since, to_rfc3339
from gpm.views import session_view, snapshot_view

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CliError(UserError):
    """A failure of a command's own the user can act on; printed as one line, exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config file (default ~/.config/gpm/config.toml or $GPM_CONFIG)",
    )

    parser = _Parser(prog="gpm", description="GPU and LLM monitor", parents=[common])
    parser.add_argument("--version", action="version", version=f"gpm {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", parents=[common], help="run the service (the default)")
    run.add_argument(
        "--demo",
        action="store_true",
        help="simulated GPUs and LLM traffic, for machines without an NVIDIA GPU",
    )

    status = sub.add_parser("status", parents=[common], help="one snapshot of GPUs and processes")
    status.add_argument("--json", action="store_true", help="print JSON (the /api/realtime shape)")
    status.add_argument("--demo", action="store_true", help="read simulated GPUs")
    status.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        metavar="SECONDS",
        help="read again every SECONDS (default 2) and print each reading, until Ctrl-C",
    )

    top = sub.add_parser(
        "top", parents=[common], help="live full-screen view of GPUs, processes and LLM traffic"
    )
    top.add_argument(
        "--url",
        help="the GPM service to read (default http://<api.host>:<api.port> from the config); "
        "without --url, GPM top reads the GPUs itself when no service answers there",
    )
    top.add_argument("--token", help="bearer token (default $GPM_API_TOKEN or api.token)")
    top.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between refreshes of sessions, stats, models and alerts, or between "
        "GPU reads in standalone mode (default 1)",
    )
    top.add_argument(
        "--demo", action="store_true", help="read simulated GPUs itself, not a service"
    )
    top.add_argument("--ascii", action="store_true", help="plain ASCII bars and marks")

    sessions = sub.add_parser("sessions", parents=[common], help="recent LLM sessions")
    sessions.add_argument("--since", default="24h", help="e.g. 30m, 24h, 7d or an RFC3339 date")
    sessions.add_argument("--model", help="only this model")
    sessions.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    sessions.add_argument(
        "--json", action="store_true", help="print JSON (/api/llm-sessions shape)"
    )

    export = sub.add_parser("export", parents=[common], help="metrics and sessions for a range")
    export.add_argument("--from", dest="start", required=True, help="start: 24h, 7d or RFC3339")
    export.add_argument("--to", dest="end", default=None, help="end: RFC3339 (default now)")
    export.add_argument("--format", choices=("csv", "parquet", "json"), default="csv")
    export.add_argument(
        "--table",
        default="all",
        choices=("all", "gpu_metrics", "llm_sessions", "process_events", "alerts"),
    )
    export.add_argument(
        "--out",
        metavar="PATH",
        help="file (or, for parquet with --table all, a directory); default stdout",
    )

    report = sub.add_parser(
        "report", parents=[common], help="a report of one week: GPU hours, energy, models"
    )
    report.add_argument(
        "--week",
        type=_week,
        metavar="YYYY-Www",
        help="ISO week in UTC, e.g. 2026-W48 (default: the last complete week)",
    )
    report.add_argument("--format", choices=("md", "html"), default="md")
    report.add_argument("--output", metavar="FILE", help="write to FILE (default stdout)")

    sub.add_parser("archive", parents=[common], help="run retention and Parquet archival now")
    sub.add_parser(
        "config", parents=[common], help="the effective config and where each value came from"
    )

    service = sub.add_parser("service", parents=[common], help="systemd user units")
    service.add_argument("action", choices=("install", "uninstall", "status"))
    service.add_argument(
        "--with-server", action="store_true", help="also install gpm-server.service"
    )
    service.add_argument(
        "--no-enable", action="store_true", help="write the units but do not enable or start them"
    )
    return parser


def _week(text: str) -> int:
    """``--week``: argparse turns the error into a usage error (exit code 2)."""
    from gpm.report import parse_week

    try:
        return parse_week(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load(args: argparse.Namespace) -> LoadedConfig:
    loaded = load_config(args.config)
    _setup_logging(loaded.config.service.log_level)
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gpm``."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    command = args.command or "run"
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _cmd_run,
        "status": _cmd_status,
        "top": _cmd_top,
        "sessions": _cmd_sessions,
        "export": _cmd_export,
        "report": _cmd_report,
        "archive": _cmd_archive,
        "config": _cmd_config,
        "service": _cmd_service,
    }
    if not hasattr(args, "demo"):
        args.demo = False
    return _guarded(lambda: handlers[command](args))


def server_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gpm-server``: the API and dashboard over another gpm's database."""
    parser = _Parser(
        prog="gpm-server", description="GPM API and dashboard over an existing database"
    )
    parser.add_argument("--config", metavar="PATH")
    parser.add_argument("--version", action="version", version=f"gpm {__version__}")
    args = parser.parse_args(argv)

    def run() -> int:
        from gpm.runners import run_server

        return run_server(_load(args))

    return _guarded(run)


def _guarded(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except ConfigError as exc:
        print(f"gpm: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as exc:
        print(f"gpm: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the one-line contract: no traceback for users
        logging.getLogger("gpm").debug("unexpected error", exc_info=True)
        print(f"gpm: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _cmd_run(args: argparse.Namespace) -> int:
    from gpm.runners import run_service

    return run_service(_load(args), demo=args.demo)


def _cmd_config(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    print(f"# config file: {loaded.file if loaded.file else '(none; defaults and environment)'}")
    section = ""
    for key, value, source in describe(loaded):
        sec, name = key.split(".", 1)
        if sec != section:
            print(f"{'' if not section else chr(10)}[{sec}]")
            section = sec
        print(f"{name} = {value}  # {source}")
    return EXIT_OK


@contextmanager
def _reader(loaded: LoadedConfig, demo: bool) -> Iterator[Callable[[], Snapshot]]:
    """A function that reads and classifies every GPU once per call, on one open source."""
    from gpm.classify import read_and_classify
    from gpm.classify.tracker import ProcessTracker
    from gpm.gpu import open_gpu_source
    from gpm.health import HealthWatch

    source = open_gpu_source(loaded.config.gpu, demo=demo, logger=logging.getLogger("gpm.gpu"))
    tracker = ProcessTracker(rules=loaded.config.classifier.rules)
    health = HealthWatch()
    try:
        yield lambda: read_and_classify(source, tracker, health, time.time())[0]
    finally:
        source.close()


def _cmd_status(args: argparse.Namespace) -> int:
    if args.watch is not None and not args.watch > 0:
        print("gpm status: --watch takes a number of seconds above 0", file=sys.stderr)
        return EXIT_USAGE
    loaded = _load(args)
    with _reader(loaded, args.demo) as read:
        if args.watch is None:
            print(_status_text(read(), args.json, indent=2))
            return EXIT_OK
        # Plain lines, no screen control: the output can be piped, logged or grepped.
        next_at = time.monotonic()
        while True:
            print(_status_text(read(), args.json), end="\n" if args.json else "\n\n", flush=True)
            next_at = max(next_at + args.watch, time.monotonic())  # a slow read delays, once
            time.sleep(max(0.0, next_at - time.monotonic()))


def _status_text(snap: Snapshot, as_json: bool, indent: int | None = None) -> str:
    """The table, or the /api/realtime object (on one line unless ``indent``)."""
    if as_json:
        return json.dumps(snapshot_view(snap), indent=indent)
    return status_table(snap)


def _cmd_top(args: argparse.Namespace) -> int:
    from gpm.tui import run_top

    if not args.interval > 0:
        print("gpm top: --interval takes a number of seconds above 0", file=sys.stderr)
        return EXIT_USAGE
    return run_top(
        load_config(args.config),
        url=args.url,
        token=args.token,
        interval=args.interval,
        demo=args.demo,
        ascii_only=args.ascii,
    )


def _open_queries(loaded: LoadedConfig) -> Any:
    from gpm.storage.queries import Queries

    db = loaded.config.database_path
    if not db.exists():
        raise CliError(f"no database at {db} yet: start the service with `gpm run` first")
    return Queries(db, loaded.config.storage.archive_dir)


def _cmd_sessions(args: argparse.Namespace) -> int:
    loaded = _load(args)
    now = time.time()
    try:
        start = parse_since(args.since, now)
    except ValueError as exc:
        print(f"gpm sessions: --since: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.limit < 1:
        print("gpm sessions: --limit must be 1 or more", file=sys.stderr)
        return EXIT_USAGE
    total, sessions, _ = _open_queries(loaded).sessions(
        start, now, model=args.model, limit=args.limit
    )
    if args.json:
        print(
            json.dumps({"total": total, "sessions": [session_view(s) for s in sessions]}, indent=2)
        )
        return EXIT_OK
    if not sessions:
        print(f"No LLM sessions since {to_rfc3339(start)}.")
        return EXIT_OK
    print(sessions_table(sessions))
    if total > len(sessions):
        print(f"({total - len(sessions)} more; use --limit)")
    print("~ counted by the proxy (the server sent no count); * cold start (model loaded first)")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from gpm.storage.export import TABLES, export, export_files

    loaded = _load(args)
    now = time.time()
    try:
        start = parse_since(args.start, now)
        end = now if args.end is None else parse_since(args.end, now)
    except ValueError as exc:
        print(f"gpm export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if end <= start:
        print("gpm export: --to must be after --from", file=sys.stderr)
        return EXIT_USAGE
    queries = _open_queries(loaded)
    if args.table == "all" and args.format != "json":
        if not args.out:
            print(
                f"gpm export: {args.format} with --table all writes one file per table: "
                "give --out DIR (or --table, or --format json)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        written = export_files(
            queries, tables=TABLES, start=start, end=end, fmt=args.format, out_dir=Path(args.out)
        )
        for path, rows in written.values():
            print(f"wrote {rows} rows to {path}", file=sys.stderr)
        return EXIT_OK
    if args.out:
        with open(args.out, "wb") as fh:
            rows = export(queries, table=args.table, start=start, end=end, fmt=args.format, out=fh)
        print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
        return EXIT_OK
    if args.format == "parquet" and sys.stdout.isatty():
        print("gpm export: refusing to write Parquet to a terminal; use --out", file=sys.stderr)
        return EXIT_USAGE
    export(queries, table=args.table, start=start, end=end, fmt=args.format, out=sys.stdout.buffer)
    sys.stdout.flush()
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from gpm.energy.cost import Prices
    from gpm.report import build_report, last_complete_week
    from gpm.report.html import render_html
    from gpm.report.markdown import render_markdown

    loaded = _load(args)
    now = time.time()
    e = loaded.config.energy
    report = build_report(
        _open_queries(loaded),
        Prices(e.price_per_kwh, e.currency, e.grams_co2_per_kwh),
        last_complete_week(now) if args.week is None else args.week,
        now=now,
    )
    text = render_html(report) if args.format == "html" else render_markdown(report)
    if not args.output:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote the {report.week} report to {args.output}", file=sys.stderr)
    return EXIT_OK


def _cmd_archive(args: argparse.Namespace) -> int:
    from gpm.storage.archive import ArchiveError, run_retention

    loaded = _load(args)
    cfg = loaded.config
    if not cfg.database_path.exists():
        raise CliError(f"no database at {cfg.database_path}: nothing to archive")
    try:
        report = run_retention(
            cfg.database_path,
            cfg.storage.archive_dir,
            retention_days=cfg.storage.retention_days,
            archive=cfg.storage.enable_parquet_archival,
            now=time.time(),
        )
    except ArchiveError as exc:
        raise CliError(f"archival failed, nothing was deleted: {exc}") from None
    print(report.describe())
    return EXIT_OK


def _cmd_service(args: argparse.Namespace) -> int:
    from gpm import systemd

    loaded = load_config(args.config)
    gpm_exe = Path(shutil.which("gpm") or Path(sys.argv[0]).resolve())
    try:
        if args.action == "install":
            paths = systemd.install(
                gpm_executable=gpm_exe,
                config_path=loaded.file,
                with_server=args.with_server,
                enable=not args.no_enable,
            )
            for p in paths:
                print(f"wrote {p}")
        elif args.action == "uninstall":
            for p in systemd.uninstall():
                print(f"removed {p}")
        else:
            print(systemd.status())
    except systemd.SystemdError as exc:
        raise CliError(str(exc)) from None
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
