"""What ``gpm top`` puts in each cell and line of its GPU, process and LLM tables, as Rich text
drawn with gpm.tui.draw: bars, sparklines, colours by the configured thresholds, and a dash
for every value GPM does not have (never a 0).

Pure functions of the JSON shapes a :class:`~gpm.tui.feed.Frame` holds and of a :class:`Look`
(ASCII or not, live or stale), so the widgets in gpm.tui.app only place what these return, and
the column layouts can be checked against a width without a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich.text import Text

from gpm.textfmt import duration, fmt, gib, per, tokens
from gpm.timefmt import parse_rfc3339
from gpm.tui.draw import Column, Look, bar, cell, fit, level_style, sparkline
from gpm.tui.feed import SPARK_SECONDS, Frame, Json, Points, Thresholds

MIB = 2**20
HEALTH_STYLES = {"ok": "green", "degraded": "yellow", "failed": "bold red"}
WORKLOAD_STYLES = {"llm_inference": "magenta", "ml_training": "cyan", "gaming": "green"}
OUTCOME_STYLES = {"completed": "green", "cancelled": "yellow", "error": "red", "rejected": "red"}


def gpu_columns(width: int) -> tuple[Column, ...]:
    """The GPU table's columns for a table ``width`` cells wide: clocks and the sparkline only
    where they fit, wider bars on wider screens."""
    bar = 6 if width < 110 else 10 if width < 150 else 12
    head = [Column("gpu", "GPU", 4)]
    tail = [
        Column("util", "UTIL", bar + 6),
        Column("mem", "MEM GiB", bar + 11),
        Column("temp", "TEMP", 5, True),
        Column("power", "POWER W", 10, True),
        Column("fan", "FAN", 5, True),
    ]
    if width >= 110:
        tail.append(Column("clocks", "CLK MHz", 11, True))
    health = Column("health", "HEALTH", 11)
    free = fit([*head, *tail, health], width)
    if width >= 110:
        spark = min(60, max(8, free - 30))
        return (
            *head,
            Column("name", "NAME", free - spark),
            *tail,
            Column("spark", _spark_label(spark), spark),
            health,
        )
    return (*head, Column("name", "NAME", max(free, 6)), *tail, health)


def _spark_label(width: int) -> str:
    minutes = f"{SPARK_SECONDS / 60:.0f} MIN"
    return f"LAST {minutes}" if width > len(minutes) + 5 else minutes


def process_columns(width: int, mig: bool = False) -> tuple[Column, ...]:
    """The process table's columns; the GPU column widens to name MIG devices when any is used."""
    cols = [
        Column("gpu", "GPU", 9 if mig else 4),
        Column("pid", "PID", 8, True),
        Column("user", "USER", 9),
        Column("workload", "WORKLOAD", 16),
        Column("mem", "GPU MEM", 9, True),
        Column("sm", "SM", 5, True),
        Column("time", "TIME", 8, True),
    ]
    return (*cols, Column("command", "COMMAND", max(fit(cols, width), 8)))


def session_columns(width: int) -> tuple[Column, ...]:
    fixed = [
        Column("time", "TIME", 9),
        Column("tokens", "TOK", 7, True),
        Column("tps", "TOK/S", 7, True),
        Column("ttft", "TTFT ms", 9, True),
        Column("jpt", "J/TOK", 7, True),
        Column("outcome", "OUTCOME", 10),
    ]
    free = max(fit(fixed, width), 16)
    endpoint = min(22, free // 2)
    return (
        fixed[0],
        Column("model", "MODEL", free - endpoint),
        Column("endpoint", "ENDPOINT", endpoint),
        *fixed[1:],
    )


def model_columns(width: int) -> tuple[Column, ...]:
    fixed = [
        Column("sessions", "REQ 15m", 8, True),
        Column("ttft", "TTFT p50", 10, True),
        Column("tps", "TOK/S p50", 10, True),
        Column("vram", "VRAM GiB", 11, True),
    ]
    return (Column("model", "MODEL", max(fit(fixed, width), 10)), *fixed)


def _mem_text(used: float | None, total: float | None, look: Look) -> str:
    if total is not None and total >= 100 * 2**30:  # 141.0 GiB would not fit: whole GiB
        u = look.dash if used is None else f"{used / 2**30:.0f}"
        return f"{u}/{total / 2**30:.0f}"
    return f"{gib(used, look.dash)}/{gib(total, look.dash)}"


def _percent(part: float | None, whole: float | None) -> float | None:
    return None if part is None or not whole else 100 * part / whole


def gpu_cells(
    g: Json,
    cols: Sequence[Column],
    look: Look,
    thresholds: Thresholds,
    history: Points,
    alerts: int,
) -> list[Text]:
    """One GPU's row: every column of ``cols``, in order."""
    d = look.dash
    up = g.get("up", True)
    used, total = g.get("memory_used_bytes"), g.get("memory_total_bytes")
    mem_pct = g.get("memory_percent")
    if mem_pct is None:
        mem_pct = _percent(used, total)
    temp, power = g.get("temperature_celsius"), g.get("power_watts")
    limit = g.get("power_limit_watts")
    health = g.get("health") or ("failed" if not up else None)
    flag = " !" if alerts else ""
    hot_power = power is not None and limit and power >= 0.95 * limit
    values: dict[str, Callable[[Column], Text]] = {
        "gpu": lambda c: cell(look, str(g["gpu_id"])),
        "name": lambda c: cell(look, look.clip(g.get("name") or "?", c.width - 1), "bold"),
        "util": lambda c: _bar_cell(look, g.get("utilization_percent"), c.width - 6, "cyan"),
        "mem": lambda c: _mem_cell(
            look,
            mem_pct,
            _mem_text(used, total, look),
            c.width - 11,
            level_style(mem_pct, thresholds.memory_percent),
        ),
        "temp": lambda c: cell(
            look,
            fmt(temp, "C" if look.ascii else "°C", missing=d),
            level_style(temp, thresholds.temp_celsius),
            True,
        ),
        "power": lambda c: cell(
            look,
            f"{fmt(power, missing=d)}/{fmt(limit, missing=d)}",
            "yellow" if hot_power else "",
            True,
        ),
        "fan": lambda c: cell(look, fmt(g.get("fan_percent"), "%", missing=d), "", True),
        "clocks": lambda c: cell(
            look,
            f"{fmt(g.get('clock_graphics_mhz'), missing=d)}/"
            f"{fmt(g.get('clock_memory_mhz'), missing=d)}",
            "",
            True,
        ),
        "spark": lambda c: _gap(look, sparkline(look, history, c.width - 1, SPARK_SECONDS)),
        "health": lambda c: cell(
            look,
            look.clip(("down" if not up else health or d) + flag, c.width - 1),
            HEALTH_STYLES.get(health or "", "dim") if up else "bold red",
        ),
    }
    if not up:
        blank = {"util", "mem", "temp", "power", "fan", "clocks", "spark"}
        return [cell(look, d, "dim") if c.key in blank else values[c.key](c) for c in cols]
    return [values[c.key](c) for c in cols]


def _gap(look: Look, t: Text) -> Text:
    out = look.text(" ")
    out.append_text(t)
    return out


def _bar_cell(look: Look, percent: float | None, width: int, style: str) -> Text:
    out = look.text(" ")
    out.append_text(bar(look, percent, width, style))
    out.append_text(look.text(f"{fmt(percent, '%', missing=look.dash):>5}"))
    return out


def _mem_cell(look: Look, percent: float | None, text: str, width: int, style: str) -> Text:
    out = look.text(" ")
    out.append_text(bar(look, percent, width, style))
    out.append_text(look.text(f"{text:>10}", style))
    return out


def mig_cells(m: Json, cols: Sequence[Column], look: Look) -> list[Text]:
    """A MIG device's row, under its GPU: its name, utilization and memory; blank elsewhere."""
    used, total = m.get("memory_used_bytes"), m.get("memory_total_bytes")
    pct = _percent(used, total)
    branch = "`-" if look.ascii else "└"
    label = f"{branch} MIG {m.get('index')} {m.get('profile') or '?'}"
    out = []
    for c in cols:
        if c.key == "name":
            out.append(cell(look, look.clip(label, c.width - 1)))
        elif c.key == "util":
            out.append(_bar_cell(look, m.get("utilization_percent"), c.width - 6, "cyan"))
        elif c.key == "mem":
            out.append(_mem_cell(look, pct, _mem_text(used, total, look), c.width - 11, ""))
        else:
            out.append(look.text(""))
    return out


def gpu_detail(g: Json, alerts: Iterable[Json], look: Look, width: int) -> list[Text]:
    """Lines under the GPU table about the selected GPU: what the row has no room for, its
    health reasons and its active alerts."""
    d = look.dash
    if not g.get("up", True):
        down = f"GPU {g['gpu_id']} is down: {g.get('error') or d}"
        return [look.text(look.clip(down, width), "bold red")]
    pstate = g.get("performance_state")
    parts = [
        f"GPU {g['gpu_id']} {g.get('name') or '?'}",
        f"P{pstate}" if pstate is not None else f"P{d}",
        f"gfx {fmt(g.get('clock_graphics_mhz'), missing=d)} MHz",
        f"mem {fmt(g.get('clock_memory_mhz'), missing=d)} MHz",
        f"enc {fmt(g.get('encoder_utilization_percent'), '%', missing=d)}",
        f"dec {fmt(g.get('decoder_utilization_percent'), '%', missing=d)}",
    ]
    throttle = g.get("throttle_reasons")
    if throttle:
        parts.append("throttle " + ",".join(throttle))
    lines = [look.text(look.clip(look.sep.join(parts), width), "dim")]
    style = HEALTH_STYLES.get(g.get("health") or "", "")
    lines += [look.text(look.clip(f"! {r}", width), style) for r in g.get("health_reasons") or ()]
    lines += [
        look.text(look.clip(f"! {a.get('message') or a.get('rule')}", width), "bold red")
        for a in alerts
    ]
    return lines


def alerts_by_gpu(alerts: Iterable[Json]) -> dict[int | None, list[Json]]:
    out: dict[int | None, list[Json]] = {}
    for a in alerts:
        out.setdefault(a.get("gpu_id"), []).append(a)
    return out


# ---- processes ----

SORTS: tuple[tuple[str, str, bool], ...] = (
    # (label, process field, largest first)
    ("GPU memory", "gpu_memory_bytes", True),
    ("SM", "sm_utilization_percent", True),
    ("run time", "run_seconds", True),
    ("pid", "pid", False),
    ("user", "user", False),
    ("workload", "workload", False),
    ("command", "name", False),
)
SORT_COLUMNS = {"mem": 0, "sm": 1, "time": 2, "pid": 3, "user": 4, "workload": 5, "command": 6}


def processes(
    snapshot: Json | None, gpu: int | None, sort: int, reverse: bool, query: str
) -> list[tuple[int, Json]]:
    """``(gpu_id, process)`` pairs of one GPU (or all when ``gpu`` is None), those matching
    ``query`` (name, workload or user), in the order of ``SORTS[sort]``; unknown values last."""
    needle = query.strip().lower()
    rows = [
        (g["gpu_id"], p)
        for g in (snapshot or {}).get("gpus") or ()
        if gpu is None or g["gpu_id"] == gpu
        for p in g.get("processes") or ()
        if not needle
        or any(needle in str(p.get(k) or "").lower() for k in ("name", "workload", "user"))
    ]
    _, key, largest_first = SORTS[sort]
    descending = largest_first != reverse
    known = [r for r in rows if r[1].get(key) is not None]
    unknown = [r for r in rows if r[1].get(key) is None]
    known.sort(key=lambda r: (r[1][key], r[1]["pid"]), reverse=descending)
    return known + unknown


ProcRow = tuple[int | None, Json, int]  # (GPU, process, depth); GPU None: a parent off the GPUs
MAX_DEPTH = 8  # deeper descendants are drawn at this depth


def process_tree(
    rows: Sequence[tuple[int, Json]], scope: Sequence[tuple[int, Json]]
) -> list[ProcRow]:
    """``rows`` (from :func:`processes`, in their order) with each process under its parent.

    A parent that is itself listed takes its children under its first row; a parent that is not
    (``ollama serve`` holds no GPU memory, its runners do) gets a row of its own, taken from
    ``scope`` (the same GPUs unfiltered, so a filter keeps a match's parent, that one's parent and
    so on) or made from the children's ``parent_pid`` and ``parent_name``. A tree stands where
    its first process in the sort order would; siblings keep that order; a process whose parent
    is unknown is a tree alone.
    """
    rank: dict[int, int] = {}
    listed: dict[int, tuple[int | None, Json]] = {}
    for i, (gpu_id, p) in enumerate(rows):
        listed.setdefault(p["pid"], (gpu_id, p))
        rank.setdefault(p["pid"], i)
    everywhere = {p["pid"]: (gpu_id, p) for gpu_id, p in reversed(scope)}
    children: dict[int, list[tuple[int | None, Json]]] = {}
    roots: list[tuple[int | None, Json]] = []
    for given in rows:
        gpu_id, p = given
        while True:  # up the chain of parents, until one is already listed or is a root
            ppid = p.get("parent_pid")
            if ppid is None or ppid == p["pid"]:
                roots.append((gpu_id, p))
                break
            children.setdefault(ppid, []).append((gpu_id, p))
            if ppid in listed:
                break
            parent = everywhere.get(ppid)
            if parent is None:  # off these GPUs: a row made from what its child knows of it
                listed[ppid] = (None, {"pid": ppid, "name": p.get("parent_name")})
                roots.append(listed[ppid])
                break
            listed[ppid] = parent  # filtered out, kept as a match's parent (and so on up)
            gpu_id, p = parent
    placed: set[tuple[int | None, int]] = set()
    expanded: set[int] = set()

    def place(gpu_id: int | None, p: Json, depth: int, block: list[ProcRow]) -> None:
        if (gpu_id, p["pid"]) in placed:
            return
        placed.add((gpu_id, p["pid"]))
        block.append((gpu_id, p, min(depth, MAX_DEPTH)))
        if p["pid"] not in expanded:
            expanded.add(p["pid"])
            for child_gpu, child in children.get(p["pid"], ()):
                place(child_gpu, child, depth + 1, block)

    blocks: list[list[ProcRow]] = []
    for root_gpu, root in roots:
        blocks.append([])
        place(root_gpu, root, 0, blocks[-1])
    for row_gpu, row in rows:  # a loop of parents (a pid reused mid-read) has no root: keep them
        blocks.append([])
        place(row_gpu, row, 0, blocks[-1])

    def first(block: list[ProcRow]) -> int:
        return min(rank.get(p["pid"], len(rows)) for _, p, _ in block)

    return [row for block in sorted((b for b in blocks if b), key=first) for row in block]


def process_cells(
    gpu_id: int | None, p: Json, cols: Sequence[Column], look: Look, depth: int = 0
) -> list[Text]:
    """A process row; under a parent (``depth`` > 0) its command is indented with a branch."""
    d = look.dash
    mem = p.get("gpu_memory_bytes")
    mig = p.get("mig_index")
    branch = ("  " * (depth - 1) + ("`- " if look.ascii else "└ ")) if depth else ""
    values = {
        "gpu": d if gpu_id is None else f"{gpu_id}" if mig is None else f"{gpu_id} MIG{mig}",
        "pid": str(p["pid"]),
        "user": p.get("user") or d,
        "workload": p.get("workload") or d,
        "mem": d if mem is None else f"{mem / MIB:.0f}MiB",
        "sm": fmt(p.get("sm_utilization_percent"), "%", missing=d),
        "time": duration(p.get("run_seconds"), d),
        "command": branch + (p.get("name") or d),
    }
    styles = {"workload": WORKLOAD_STYLES.get(p.get("workload") or "", "")}
    return [
        cell(look, look.clip(values[c.key], c.width - 1), styles.get(c.key, ""), c.right)
        for c in cols
    ]


# ---- LLM ----


def local_time(stamp: str | float | None, missing: str) -> str:
    """An RFC3339 stamp or epoch seconds as local HH:MM:SS."""
    if stamp is None:
        return missing
    ts = parse_rfc3339(stamp) if isinstance(stamp, str) else stamp
    return time.strftime("%H:%M:%S", time.localtime(ts))


def session_cells(s: Json, cols: Sequence[Column], look: Look) -> list[Text]:
    """One finished LLM request; TTFT has ``*`` when the model had to be loaded first."""
    d = look.dash
    ttft = fmt(s.get("ttft_ms"), missing=d) + ("*" if s.get("cold_start") else " ")
    values = {
        "time": local_time(s.get("started_at"), d),
        "model": s.get("model") or d,
        "endpoint": s.get("endpoint") or d,
        "tokens": tokens(s.get("completion_tokens"), s.get("token_source"), d),
        "tps": fmt(s.get("tokens_per_second"), digits=1, missing=d),
        "ttft": ttft,
        "jpt": fmt(per(s.get("tokens_per_joule")), digits=2, missing=d),
        "outcome": s.get("outcome") or d,
    }
    styles = {"outcome": OUTCOME_STYLES.get(s.get("outcome") or "", "")}
    return [
        cell(look, look.clip(values[c.key], c.width - 1), styles.get(c.key, ""), c.right)
        for c in cols
    ]


def model_rows(stats: Iterable[Json], resident: Iterable[Json]) -> list[tuple[str, Json, Json]]:
    """Every model with requests in the window or resident in VRAM: ``(name, stats, resident)``,
    the busiest first."""
    by_stats = {m["model"]: m for m in stats if m.get("model")}
    by_vram = {m["name"]: m for m in resident if m.get("name")}
    names = sorted(
        set(by_stats) | set(by_vram),
        key=lambda n: (-(by_stats.get(n, {}).get("sessions") or 0), n),
    )
    return [(n, by_stats.get(n, {}), by_vram.get(n, {})) for n in names]


def model_cells(
    name: str, stats: Mapping[str, Any], vram: Mapping[str, Any], cols: Sequence[Column], look: Look
) -> list[Text]:
    d = look.dash
    size = vram.get("vram_bytes") if vram else None
    values = {
        "model": name,
        "sessions": fmt(stats.get("sessions"), missing=d) if stats else "0",
        "ttft": fmt(stats.get("ttft_ms_p50"), " ms", missing=d),
        "tps": fmt(stats.get("tokens_per_second_p50"), digits=1, missing=d),
        "vram": (gib(size, d) if size is not None else d) if vram else "not loaded",
    }
    return [
        cell(look, look.clip(values[c.key], c.width - 1), "" if vram else "dim", c.right)
        for c in cols
    ]


# ---- lines ----


def header(frame: Frame, look: Look, width: int) -> Text:
    """The top line: what is being watched, and when it was last read."""
    snap = frame.snapshot or {}
    gpus = len(snap.get("gpus") or ())
    when = local_time(frame.received_at, look.dash)
    if frame.mode == "attached":
        info = frame.info
        host = f" on {info['hostname']}" if info.get("hostname") else ""
        parts = [
            f"GPM top{look.sep}{frame.where}{host}",
            f"source {snap.get('source') or look.dash}",
        ]
    else:
        why = f": {frame.reason}" if frame.reason else ", reading the GPUs itself"
        parts = [f"GPM top{look.sep}standalone{why}", f"source {frame.where}"]
    parts += [f"{gpus} GPUs", when]
    return look.text(look.clip(look.sep.join(parts), width), "bold")


def banner(frame: Frame, look: Look) -> str | None:
    """Why the values are not live, or None while they are."""
    if frame.problem is None:
        return None
    if frame.snapshot is None:
        return f"! {frame.problem}"
    since = local_time(frame.received_at, look.dash)
    return f"! {frame.problem}. Greyed: the last values, from {since}."
