"""GPU readings from the ``nvidia-smi`` command, for machines where NVML cannot be loaded.

Each poll runs a GPU query, the compute apps and ``pmon`` in parallel (parsed by
``gpm/gpu/smi_parse.py``); every ``xml_interval`` seconds ``nvidia-smi -q -x`` runs beside them
for memory health and MIG (``gpm/gpu/smi_xml.py``). Every call has a timeout and runs without a
shell; a wedged nvidia-smi is killed.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gpm.gpu.smi_parse import (
    APP_FIELDS,
    CORE_GPU_FIELDS,
    EVENT_REASONS_FIELD,
    OLD_EVENT_REASONS_FIELD,
    OPTIONAL_GPU_FIELDS,
    canonical_field,
    merge_pmon,
    parse_csv,
    parse_monitor_table,
    pmon_processes,
    processes_from_rows,
    samples_from_rows,
)
from gpm.gpu.smi_xml import XmlGpu, merge_xml, parse_xml
from gpm.model import GpuSample, Snapshot

_log = logging.getLogger(__name__)

_INVALID_FIELD = re.compile(r'Field "([^"]+)" is not a valid field to query')


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
            what = f"{self.argv[0]} {' '.join(self.argv[1:]).split('=')[0]}"
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

    The commands run in parallel under one deadline of ``timeout`` seconds. ``pmon`` adds
    graphics processes (games) the compute-apps query leaves out; if it fails once it is not
    asked again. A field the driver rejects is dropped for the life of the source.

    ``nvidia-smi -q -x`` costs far more (about 0.4 s on an 8-GPU machine), so it runs with a poll
    only once ``xml_interval`` seconds of the poll's clock have passed since its last run (0:
    never); what it said is merged into every poll until it runs again. When it fails, the
    polls go on without it until the next run.
    """

    name = "nvidia-smi"

    def __init__(
        self,
        executable: str = "nvidia-smi",
        timeout: float = 5.0,
        use_pmon: bool = True,
        xml_interval: float = 30.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.executable = executable
        self.timeout = timeout
        self.use_pmon = use_pmon
        self.xml_interval = xml_interval
        self.gpu_fields: list[str] = [*CORE_GPU_FIELDS, *OPTIONAL_GPU_FIELDS]
        self._log = logger or _log
        self._last_message: str | None = None
        self._tried_old_reasons = False
        self._xml: tuple[XmlGpu, ...] = ()
        self._xml_read_at: float | None = None
        self._xml_message: str | None = None

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

    def _xml_due(self, now: float) -> bool:
        """Whether this poll runs ``-q -x``: the interval has passed, or the clock went back."""
        if self.xml_interval <= 0:
            return False
        last = self._xml_read_at
        return last is None or not 0 <= now - last < self.xml_interval

    def _take_xml(self, result: RunResult, now: float) -> None:
        """Keep what ``-q -x`` said until its next run, and say it once when that goes wrong."""
        self._xml_read_at = now
        problems: list[str] = []
        if result.error is None:
            self._xml = parse_xml(result.stdout, problems)
        else:
            self._xml = ()
            problems.append(result.error)
        message = "; ".join(problems) or None
        if message != self._xml_message:
            if message is not None:
                self._log.warning(
                    "nvidia-smi -q -x (memory health, MIG; tried every %g s): %s",
                    self.xml_interval,
                    message,
                )
            else:
                self._log.info("nvidia-smi -q -x readings are back")
            self._xml_message = message

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
        xml = _Run([self.executable, "-q", "-x"], self.timeout) if self._xml_due(now) else None
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
            xml_result = xml.finish(deadline) if xml is not None else None
        finally:
            for run in (gpu, apps, pmon, xml):
                if run is not None:
                    run.kill()
        if gpu_result.error is not None:
            # -q -x most likely failed the same way; it is asked again on the next poll.
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
        if xml_result is not None:
            self._take_xml(xml_result, now)
        samples = merge_xml(samples, self._xml)
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
