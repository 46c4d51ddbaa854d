"""What nvidia-smi prints, and how GPM reads it.

nvidia-smi prints CSV (``--query-gpu``/``--query-compute-apps``) and whitespace tables
(``pmon``/``dmon``). The parsers here read both the ``noheader,nounits`` form the source asks for
and the headed form with units (``memory.total [MiB]``, ``81559 MiB``) that users capture by hand,
by column name, so a driver that reorders or renames columns cannot shift values into the wrong
field. Pure functions over text: running nvidia-smi is ``gpm/gpu/smi.py``'s part.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from gpm.gpu.clock_events import decode as decode_clock_event_reasons
from gpm.model import GpuProcess, GpuSample

MIB = 1024 * 1024

# Cells nvidia-smi prints when it has no value.
NO_VALUE = frozenset(
    {
        "N/A",
        "[N/A]",
        "[Not Supported]",
        "[Insufficient Permissions]",
        "[Requested functionality has been deprecated]",
        "[Unknown Error]",
        "",
    }
)

# Other spellings of a field (older drivers, short aliases) -> the name used here.
_ALIASES = {
    "gpu_name": "name",
    "clocks.gr": "clocks.current.graphics",
    "clocks.sm": "clocks.current.sm",
    "clocks.mem": "clocks.current.memory",
    "clocks_throttle_reasons.active": "clocks_event_reasons.active",
    "clocks_event_reasons_active": "clocks_event_reasons.active",
}

EVENT_REASONS_FIELD = "clocks_event_reasons.active"
OLD_EVENT_REASONS_FIELD = "clocks_throttle_reasons.active"

# Fields every driver since the 400 series accepts.
CORE_GPU_FIELDS: tuple[str, ...] = (
    "index",
    "uuid",
    "name",
    "utilization.gpu",
    "utilization.memory",
    "memory.total",
    "memory.used",
    "memory.free",
    "temperature.gpu",
    "power.draw",
    "power.limit",
    "fan.speed",
    "clocks.current.graphics",
    "clocks.current.sm",
    "clocks.current.memory",
    "pstate",
)
# Fields some drivers reject; dropped one by one when the driver says so.
OPTIONAL_GPU_FIELDS: tuple[str, ...] = (
    "utilization.encoder",
    "utilization.decoder",
    EVENT_REASONS_FIELD,
    "ecc.errors.corrected.volatile.total",
    "ecc.errors.uncorrected.volatile.total",
)
APP_FIELDS: tuple[str, ...] = ("gpu_uuid", "pid", "process_name", "used_gpu_memory")

# A process's type letter (pmon's type column, ``-q -x``'s ``<type>``) -> GpuProcess.kind.
PROCESS_KINDS = {"C": "compute", "G": "graphics", "C+G": "compute+graphics"}


class SmiParseError(ValueError):
    """A value nvidia-smi printed that cannot be read as the field's type."""


Row = dict[str, str | None]


def canonical_field(name: str) -> str:
    """``memory.total [MiB]`` or ``clocks.gr`` -> ``memory.total`` / ``clocks.current.graphics``."""
    bare = name.split("[", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare)


def _cell(raw: str) -> str | None:
    text = raw.strip()
    return None if text in NO_VALUE else text


def parse_csv(
    text: str, fields: Sequence[str] | None = None, problems: list[str] | None = None
) -> list[Row]:
    """Rows of a ``--query-*`` output, keyed by canonical field name; no-value cells are None.

    With ``fields`` the text has no header (``noheader``) and those are the columns asked for;
    without, the first line is the header. nvidia-smi does not quote cells, so a process name
    containing ", " spills into extra cells: those are joined back into ``process_name``. Any
    other line with the wrong number of cells is skipped and described in ``problems``.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if fields is None:
        if not lines:
            return []
        header, lines = lines[0].split(","), lines[1:]
    else:
        header = list(fields)
    columns = [canonical_field(h) for h in header]
    spill = columns.index("process_name") if "process_name" in columns else None
    rows: list[Row] = []
    for number, line in enumerate(lines, start=1):
        cells = line.split(",")
        extra = len(cells) - len(columns)
        if extra > 0 and spill is not None:
            cells[spill : spill + extra + 1] = [",".join(cells[spill : spill + extra + 1])]
        if len(cells) != len(columns):
            if problems is not None:
                problems.append(
                    f"nvidia-smi line {number} has {len(cells)} cells, expected "
                    f"{len(columns)}: {line.strip()[:200]!r}"
                )
            continue
        rows.append({col: _cell(cell) for col, cell in zip(columns, cells, strict=True)})
    return rows


def parse_monitor_table(text: str) -> list[Row]:
    """Rows of ``nvidia-smi pmon``/``dmon`` output, keyed by the ``#`` header's column names.

    The units line (``# Idx  W  C ...``) is skipped; ``-`` reads as None. The last column may
    contain spaces (pmon's command name).
    """
    columns: list[str] | None = None
    rows: list[Row] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            if columns is None:
                columns = line.lstrip()[1:].split()
            continue
        if columns is None:
            continue
        cells = line.split(maxsplit=len(columns) - 1)
        if len(cells) != len(columns):
            continue
        values = (None if v.strip() == "-" else _cell(v) for v in cells)
        rows.append(dict(zip(columns, values, strict=True)))
    return rows


def parse_number(value: str | None, field: str) -> float | None:
    """A value's leading number (a unit after it, as in ``81559 MiB``, is ignored).

    Raises SmiParseError when it is not a number, so the caller can report the field.
    """
    if value is None:
        return None
    token = value.split()[0]
    try:
        return float(token)
    except ValueError:
        raise SmiParseError(f"{field}: {value!r} is not a number") from None


def parse_whole(value: str | None, field: str) -> int | None:
    """A count or id (see parse_number)."""
    number = parse_number(value, field)
    return None if number is None else int(number)


def parse_mib_bytes(value: str | None, field: str) -> int | None:
    """A size nvidia-smi prints in MiB, in bytes (see parse_number)."""
    number = parse_number(value, field)
    return None if number is None else round(number * MIB)


def _pstate(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    match = re.fullmatch(r"P(\d{1,2})", value.strip(), re.IGNORECASE)
    if not match:
        raise SmiParseError(f"{field}: {value!r} is not a performance state like P0")
    return int(match.group(1))


def _reasons(value: str | None, field: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    try:
        return decode_clock_event_reasons(int(value.strip(), 0))
    except ValueError:
        raise SmiParseError(
            f"{field}: {value!r} is not a bitmask like 0x0000000000000004"
        ) from None


def _text(value: str | None, field: str) -> str | None:
    return value


# Canonical field -> (GpuSample attribute, converter).
_GPU_COLUMNS: dict[str, tuple[str, Callable[[str | None, str], object]]] = {
    "uuid": ("uuid", _text),
    "name": ("name", _text),
    "utilization.gpu": ("utilization_percent", parse_number),
    "utilization.memory": ("memory_utilization_percent", parse_number),
    "memory.total": ("memory_total_bytes", parse_mib_bytes),
    "memory.used": ("memory_used_bytes", parse_mib_bytes),
    "memory.free": ("memory_free_bytes", parse_mib_bytes),
    "temperature.gpu": ("temperature_celsius", parse_number),
    "power.draw": ("power_watts", parse_number),
    "power.limit": ("power_limit_watts", parse_number),
    "fan.speed": ("fan_percent", parse_number),
    "clocks.current.graphics": ("clock_graphics_mhz", parse_whole),
    "clocks.current.sm": ("clock_sm_mhz", parse_whole),
    "clocks.current.memory": ("clock_memory_mhz", parse_whole),
    "pstate": ("performance_state", _pstate),
    "utilization.encoder": ("encoder_utilization_percent", parse_number),
    "utilization.decoder": ("decoder_utilization_percent", parse_number),
    EVENT_REASONS_FIELD: ("throttle_reasons", _reasons),
    "ecc.errors.corrected.volatile.total": ("ecc_errors_corrected", parse_whole),
    "ecc.errors.uncorrected.volatile.total": ("ecc_errors_uncorrected", parse_whole),
}


def samples_from_rows(
    rows: Iterable[Row],
    now: float,
    processes: Mapping[str, tuple[GpuProcess, ...]] | None = None,
    problems: list[str] | None = None,
) -> tuple[GpuSample, ...]:
    """One GpuSample per ``--query-gpu`` row.

    ``processes`` maps GPU uuid -> its processes; None means the process list is unknown. A cell
    that cannot be read becomes None (noted in ``problems``) so the rest of the row survives.
    ``gpu_id`` is the ``index`` column, or the row's position when it was not queried.
    """
    samples = []
    for position, row in enumerate(rows):
        values: dict[str, object] = {}
        for column, raw in row.items():
            target = _GPU_COLUMNS.get(column)
            if target is None:
                continue
            attribute, convert = target
            try:
                values[attribute] = convert(raw, column)
            except SmiParseError as exc:
                if problems is not None:
                    problems.append(str(exc))
        try:
            gpu_id = parse_whole(row.get("index"), "index")
        except SmiParseError as exc:
            gpu_id = None
            if problems is not None:
                problems.append(str(exc))
        uuid = values.get("uuid")
        procs: tuple[GpuProcess, ...] | None = None
        if processes is not None:
            procs = processes.get(uuid, ()) if isinstance(uuid, str) else ()
        samples.append(
            GpuSample(
                gpu_id=position if gpu_id is None else gpu_id,
                timestamp=now,
                processes=procs,
                **values,  # type: ignore[arg-type]
            )
        )
    return tuple(samples)


def processes_from_rows(
    rows: Iterable[Row], problems: list[str] | None = None
) -> dict[str, tuple[GpuProcess, ...]]:
    """``--query-compute-apps`` rows grouped by GPU uuid (kind "compute")."""
    grouped: dict[str, list[GpuProcess]] = {}
    for row in rows:
        try:
            pid = parse_whole(row.get("pid"), "pid")
            memory = parse_mib_bytes(row.get("used_gpu_memory"), "used_gpu_memory")
        except SmiParseError as exc:
            if problems is not None:
                problems.append(str(exc))
            continue
        uuid = row.get("gpu_uuid")
        if pid is None or uuid is None:
            continue
        grouped.setdefault(uuid, []).append(
            GpuProcess(pid=pid, name=row.get("process_name"), gpu_memory_bytes=memory)
        )
    return {uuid: tuple(procs) for uuid, procs in grouped.items()}


def pmon_processes(rows: Iterable[Row]) -> list[tuple[int, GpuProcess]]:
    """``pmon`` rows as (GPU index, process), with the kind from the C/G column and SM %."""
    found = []
    for row in rows:
        try:
            index = parse_whole(row.get("gpu"), "gpu")
            pid = parse_whole(row.get("pid"), "pid")
            sm = parse_number(row.get("sm"), "sm")
        except SmiParseError:
            continue
        if index is None or pid is None:
            continue  # pmon prints a "-" row for a GPU with no processes
        kind = PROCESS_KINDS.get(row.get("type") or "", "compute")
        found.append(
            (
                index,
                GpuProcess(pid=pid, name=row.get("command"), sm_utilization_percent=sm, kind=kind),
            )
        )
    return found


def merge_pmon(
    samples: Sequence[GpuSample], pmon: Iterable[tuple[int, GpuProcess]]
) -> tuple[GpuSample, ...]:
    """Add pmon's view to the samples: graphics-only processes, SM % and C+G kinds.

    Samples whose process list is unknown are left alone.
    """
    by_gpu: dict[int, list[GpuProcess]] = {}
    for index, proc in pmon:
        by_gpu.setdefault(index, []).append(proc)
    merged = []
    for sample in samples:
        extra = by_gpu.get(sample.gpu_id)
        if sample.processes is None or not extra:
            merged.append(sample)
            continue
        procs = {p.pid: p for p in sample.processes}
        for seen in extra:
            known = procs.get(seen.pid)
            if known is None:
                procs[seen.pid] = seen
            else:
                procs[seen.pid] = replace(
                    known, kind=seen.kind, sm_utilization_percent=seen.sm_utilization_percent
                )
        merged.append(replace(sample, processes=tuple(procs.values())))
    return tuple(merged)
