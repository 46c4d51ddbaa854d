"""GPU readings from the ``nvidia-smi`` command, for machines where NVML cannot be loaded.

nvidia-smi prints CSV (``--query-gpu``/``--query-compute-apps``) and whitespace tables
(``pmon``/``dmon``). The parsers here read both the ``noheader,nounits`` form the source asks for
and the headed form with units (``memory.total [MiB]``, ``81559 MiB``) that users capture by hand,
by column name, so a driver that reorders or renames columns cannot shift values into the wrong
field. Every call has a timeout and runs without a shell; a wedged nvidia-smi is killed.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from gpm.model import GpuProcess, GpuSample, Snapshot

_log = logging.getLogger(__name__)

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

# Bit -> short name, as NVML's nvmlClocksEventReason* constants (same names the NVML source uses).
CLOCK_EVENT_REASONS: tuple[tuple[int, str], ...] = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
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

_INVALID_FIELD = re.compile(r'Field "([^"]+)" is not a valid field to query')
_PMON_KINDS = {"C": "compute", "G": "graphics", "C+G": "compute+graphics"}


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


def _number(value: str | None, field: str) -> float | None:
    if value is None:
        return None
    token = value.split()[0]
    try:
        return float(token)
    except ValueError:
        raise SmiParseError(f"{field}: {value!r} is not a number") from None


def _whole(value: str | None, field: str) -> int | None:
    number = _number(value, field)
    return None if number is None else int(number)


def _mib_bytes(value: str | None, field: str) -> int | None:
    number = _number(value, field)
    return None if number is None else round(number * MIB)


def _pstate(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    match = re.fullmatch(r"P(\d{1,2})", value.strip(), re.IGNORECASE)
    if not match:
        raise SmiParseError(f"{field}: {value!r} is not a performance state like P0")
    return int(match.group(1))


def decode_clock_event_reasons(mask: int) -> tuple[str, ...]:
    """The NVML clock-event bitmask as short names, lowest bit first; unknown bits are ignored."""
    return tuple(name for bit, name in CLOCK_EVENT_REASONS if mask & bit)


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
    "utilization.gpu": ("utilization_percent", _number),
    "utilization.memory": ("memory_utilization_percent", _number),
    "memory.total": ("memory_total_bytes", _mib_bytes),
    "memory.used": ("memory_used_bytes", _mib_bytes),
    "memory.free": ("memory_free_bytes", _mib_bytes),
    "temperature.gpu": ("temperature_celsius", _number),
    "power.draw": ("power_watts", _number),
    "power.limit": ("power_limit_watts", _number),
    "fan.speed": ("fan_percent", _number),
    "clocks.current.graphics": ("clock_graphics_mhz", _whole),
    "clocks.current.sm": ("clock_sm_mhz", _whole),
    "clocks.current.memory": ("clock_memory_mhz", _whole),
    "pstate": ("performance_state", _pstate),
    "utilization.encoder": ("encoder_utilization_percent", _number),
    "utilization.decoder": ("decoder_utilization_percent", _number),
    EVENT_REASONS_FIELD: ("throttle_reasons", _reasons),
    "ecc.errors.corrected.volatile.total": ("ecc_errors_corrected", _whole),
    "ecc.errors.uncorrected.volatile.total": ("ecc_errors_uncorrected", _whole),
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
            gpu_id = _whole(row.get("index"), "index")
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
            pid = _whole(row.get("pid"), "pid")
            memory = _mib_bytes(row.get("used_gpu_memory"), "used_gpu_memory")
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
            index = _whole(row.get("gpu"), "gpu")
            pid = _whole(row.get("pid"), "pid")
            sm = _number(row.get("sm"), "sm")
        except SmiParseError:
            continue
        if index is None or pid is None:
            continue  # pmon prints a "-" row for a GPU with no processes
        kind = _PMON_KINDS.get(row.get("type") or "", "compute")
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


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one nvidia-smi invocation gave: its output, or why there is none."""

    stdout: str
    error: str | None  # None when it exited 0
    stderr: str = ""


class _Run:
    """One nvidia-smi child in its own process group, so a timeout kills it and its children."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.argv = list(argv)
        self.proc: subprocess.Popen[str] | None = None
        self.failed: str | None = None
        self.timeout = timeout
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
                env={**os.environ, "LC_ALL": "C"},
            )
        except OSError as exc:
            self.failed = f"cannot run {self.argv[0]}: {exc.strerror or exc}"

    def finish(self, deadline: float) -> RunResult:
        if self.proc is None:
            return RunResult("", self.failed)
        try:
            out, err = self.proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            what = " ".join([self.argv[0], self.argv[1].split("=")[0]])
            return RunResult("", f"{what} timed out after {self.timeout:g} s and was killed")
        if self.proc.returncode != 0:
            detail = (err.strip() or out.strip() or "no output").splitlines()[0][:300]
            error = f"{self.argv[0]} exited with {self.proc.returncode}: {detail}"
            return RunResult(out, error, err)
        return RunResult(out, None, err)

    def kill(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.proc.kill()
        self.proc.communicate()


class SmiSource:
    """GpuSource reading nvidia-smi: a GPU query, the compute apps and ``pmon`` per poll.

    The three commands run in parallel under one deadline of ``timeout`` seconds. ``pmon`` adds
    graphics processes (games) the compute-apps query leaves out; if it fails once it is not
    asked again. A field the driver rejects is dropped for the life of the source.
    """

    name = "nvidia-smi"

    def __init__(
        self,
        executable: str = "nvidia-smi",
        timeout: float = 5.0,
        use_pmon: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        self.executable = executable
        self.timeout = timeout
        self.use_pmon = use_pmon
        self.gpu_fields: list[str] = [*CORE_GPU_FIELDS, *OPTIONAL_GPU_FIELDS]
        self._log = logger or _log
        self._last_message: str | None = None
        self._tried_old_reasons = False

    def _query_gpu_argv(self) -> list[str]:
        return [
            self.executable,
            "--query-gpu=" + ",".join(self.gpu_fields),
            "--format=csv,noheader,nounits",
        ]

    def _apps_argv(self) -> list[str]:
        return [
            self.executable,
            "--query-compute-apps=" + ",".join(APP_FIELDS),
            "--format=csv,noheader,nounits",
        ]

    def _drop_rejected(self, message: str) -> bool:
        """Drop the field the driver rejected; True when there is something left to retry."""
        match = _INVALID_FIELD.search(message)
        rejected = canonical_field(match.group(1)) if match else None
        raw_rejected = match.group(1).lower() if match else None
        if raw_rejected == OLD_EVENT_REASONS_FIELD and OLD_EVENT_REASONS_FIELD in self.gpu_fields:
            self.gpu_fields.remove(OLD_EVENT_REASONS_FIELD)
        elif rejected == EVENT_REASONS_FIELD and not self._tried_old_reasons:
            self._tried_old_reasons = True
            position = self.gpu_fields.index(EVENT_REASONS_FIELD)
            self.gpu_fields[position] = OLD_EVENT_REASONS_FIELD
        elif rejected in OPTIONAL_GPU_FIELDS and rejected in self.gpu_fields:
            self.gpu_fields.remove(rejected)
        else:
            optional = [f for f in self.gpu_fields if f not in CORE_GPU_FIELDS]
            if not optional:
                return False
            for name in optional:
                self.gpu_fields.remove(name)
        self._log.info(
            "nvidia-smi rejected a field (%s); now querying %s",
            match.group(1) if match else message,
            ",".join(self.gpu_fields),
        )
        return True

    def _read(
        self, now: float, deadline: float
    ) -> tuple[tuple[GpuSample, ...], str | None, list[str]]:
        problems: list[str] = []
        gpu = _Run(self._query_gpu_argv(), self.timeout)
        apps = _Run(self._apps_argv(), self.timeout)
        pmon = _Run([self.executable, "pmon", "-c", "1"], self.timeout) if self.use_pmon else None
        try:
            gpu_result = gpu.finish(deadline)
            for _ in range(len(OPTIONAL_GPU_FIELDS) + 1):
                said = gpu_result.stdout + gpu_result.stderr
                if gpu_result.error is None or not _INVALID_FIELD.search(said):
                    break
                if not self._drop_rejected(said):
                    break
                gpu = _Run(self._query_gpu_argv(), self.timeout)
                gpu_result = gpu.finish(deadline)
            apps_result = apps.finish(deadline)
            pmon_result = pmon.finish(deadline) if pmon is not None else None
        finally:
            for run in (gpu, apps, pmon):
                if run is not None:
                    run.kill()
        if gpu_result.error is not None:
            return (), gpu_result.error, problems
        processes = None
        if apps_result.error is None:
            processes = processes_from_rows(
                parse_csv(apps_result.stdout, APP_FIELDS, problems), problems
            )
        else:
            problems.append(f"process list unknown: {apps_result.error}")
        rows = parse_csv(gpu_result.stdout, self.gpu_fields, problems)
        samples = samples_from_rows(rows, now, processes, problems)
        if pmon_result is not None:
            if pmon_result.error is None:
                samples = merge_pmon(
                    samples, pmon_processes(parse_monitor_table(pmon_result.stdout))
                )
            else:
                self.use_pmon = False
                self._log.info(
                    "nvidia-smi pmon unavailable, graphics processes will be missing: %s",
                    pmon_result.error,
                )
        if not samples:
            return (), "nvidia-smi reported no GPUs", problems
        return samples, None, problems

    def poll(self, now: float) -> Snapshot:
        started = time.monotonic()
        samples, message, problems = self._read(now, started + self.timeout)
        report = message or ("; ".join(problems) if problems else None)
        if report != self._last_message:
            if report is not None:
                self._log.warning("nvidia-smi: %s", report)
            elif self._last_message is not None:
                self._log.info("nvidia-smi readings are back to normal")
            self._last_message = report
        return Snapshot(
            timestamp=now,
            source=self.name,
            gpus=samples,
            message=message,
            poll_seconds=time.monotonic() - started,
        )

    def close(self) -> None:
        """Nothing to release: every poll's children are reaped before it returns."""
