"""systemd user units for GPM: write, enable, remove and report on them.

GPM runs as the logged-in user (it needs that user's NVML access and session), so these are
``systemctl --user`` units, never system ones. ``systemctl`` is run with an argument list and the
runner is a parameter, so tests use a real subprocess with a stand-in ``systemctl``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpm.paths import user_systemd_dir

Runner = Callable[..., "subprocess.CompletedProcess[str]"]

SERVICE_UNIT = "gpm.service"
SERVER_UNIT = "gpm-server.service"
UNITS = (SERVICE_UNIT, SERVER_UNIT)
RESTART_SEC = 5
_TIMEOUT_SECS = 30.0

NO_SYSTEMD_HELP = (
    "Without it, start GPM in the background with 'scripts/start-all.sh --background' (stop it "
    "with 'scripts/stop-all.sh'), or run 'gpm run' in a terminal. On a headless machine or over "
    "SSH, 'loginctl enable-linger $USER' gives you a user manager that runs without a login; "
    "then run 'gpm service install' again."
)


class SystemdError(Exception):
    """A ``systemctl --user`` command failed; the message has its output."""


class SystemdUnavailable(SystemdError):
    """There is no systemd user manager to talk to (no systemctl, or no user bus)."""

    def __init__(self, reason: str, units: Sequence[Path] = ()) -> None:
        self.reason = reason
        self.units = list(units)
        written = (
            f" The unit files were written ({', '.join(str(u) for u in units)}) and will be "
            "picked up once a user manager runs."
            if units
            else ""
        )
        super().__init__(f"systemd user services are not available: {reason}.{written} "
                         f"{NO_SYSTEMD_HELP}")  # fmt: skip


@dataclass(frozen=True, slots=True)
class UnitStatus:
    name: str
    path: Path
    installed: bool
    active: str | None = None  # systemctl is-active: "active", "inactive", "failed", ...
    enabled: str | None = None  # systemctl is-enabled: "enabled", "disabled", ...


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What ``gpm service status`` prints; ``str()`` gives the human-readable form."""

    available: bool
    units: tuple[UnitStatus, ...]
    message: str = ""

    def __str__(self) -> str:
        lines = []
        for unit in self.units:
            if not unit.installed:
                lines.append(f"{unit.name}: not installed ({unit.path})")
            elif unit.active is None:
                lines.append(f"{unit.name}: installed at {unit.path}")
            else:
                lines.append(f"{unit.name}: {unit.active}, {unit.enabled} ({unit.path})")
        if self.message:
            lines.append(self.message)
        return "\n".join(lines)


def systemd_quote(arg: str) -> str:
    """One ExecStart word: quoted when needed, with ``%`` and ``$`` kept literal."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if text and not any(c.isspace() or c in "\"'\\;" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(description: str, argv: Sequence[str]) -> str:
    """A user unit that runs ``argv`` directly (no shell) and restarts it if it crashes."""
    exec_start = " ".join(systemd_quote(a) for a in argv)
    return (
        "[Unit]\n"
        f"Description={description}\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={exec_start}\n"
        "Restart=on-failure\n"
        f"RestartSec={RESTART_SEC}\n"
        "Environment=PYTHONUNBUFFERED=1\n"
        "TimeoutStopSec=30\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def _units(gpm_executable: Path, config_path: Path | None, with_server: bool) -> dict[str, str]:
    gpm = gpm_executable.absolute()
    config = ["--config", str(config_path.absolute())] if config_path is not None else []
    units = {SERVICE_UNIT: render_unit("GPM GPU and LLM monitor", [str(gpm), "run", *config])}
    if with_server:
        units[SERVER_UNIT] = render_unit(
            "GPM API and dashboard over the GPM database",
            [str(gpm.with_name("gpm-server")), *config],
        )
    return units


def _systemctl(runner: Runner, systemctl: str, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return runner(
            [systemctl, "--user", *args],
            capture_output=True, text=True, timeout=_TIMEOUT_SECS, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise SystemdUnavailable(f"{systemctl!r} was not found") from None
    except subprocess.TimeoutExpired:
        raise SystemdError(f"'systemctl --user {' '.join(args)}' did not answer in "
                           f"{_TIMEOUT_SECS:.0f} s") from None  # fmt: skip


def _check_available(runner: Runner, systemctl: str) -> None:
    """Raise SystemdUnavailable unless a user manager answers."""
    probe = _systemctl(runner, systemctl, "show-environment")
    if probe.returncode != 0:
        why = (probe.stderr or probe.stdout).strip() or f"exit status {probe.returncode}"
        raise SystemdUnavailable(f"'systemctl --user' failed ({why})")


def _run_checked(runner: Runner, systemctl: str, *args: str) -> None:
    done = _systemctl(runner, systemctl, *args)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise SystemdError(f"'systemctl --user {' '.join(args)}' failed: {output}")


def install(
    *,
    gpm_executable: Path,
    config_path: Path | None,
    with_server: bool,
    unit_dir: Path | None = None,
    enable: bool = True,
    runner: Runner = subprocess.run,
    systemctl: str = "systemctl",
) -> list[Path]:
    """Write the units, then reload systemd and (with ``enable``) enable and start them.

    The files are written even when systemd is unavailable; then, with ``enable``,
    SystemdUnavailable says so (listing the files) and how to run GPM instead.
    """
    directory = unit_dir or user_systemd_dir()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in _units(gpm_executable, config_path, with_server).items():
        path = directory / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    try:
        _check_available(runner, systemctl)
    except SystemdUnavailable as exc:
        if enable:
            raise SystemdUnavailable(exc.reason, written) from None
        return written
    _run_checked(runner, systemctl, "daemon-reload")
    if enable:
        _run_checked(runner, systemctl, "enable", "--now", *(p.name for p in written))
    return written


def uninstall(
    *,
    unit_dir: Path | None = None,
    runner: Runner = subprocess.run,
    systemctl: str = "systemctl",
) -> list[Path]:
    """Stop, disable and remove whichever GPM units exist; returns the removed files.

    Without systemd the files are still removed (nothing can be running under it).
    """
    directory = unit_dir or user_systemd_dir()
    present = [directory / name for name in UNITS if (directory / name).exists()]
    if not present:
        return []
    try:
        _check_available(runner, systemctl)
        available = True
    except SystemdUnavailable:
        available = False
    if available:
        _run_checked(runner, systemctl, "disable", "--now", *(p.name for p in present))
    for path in present:
        path.unlink(missing_ok=True)
    if available:
        _run_checked(runner, systemctl, "daemon-reload")
    return present


def status(
    *,
    unit_dir: Path | None = None,
    runner: Runner = subprocess.run,
    systemctl: str = "systemctl",
) -> StatusReport:
    """Which units are installed and, where systemd answers, whether they run."""
    directory = unit_dir or user_systemd_dir()
    try:
        _check_available(runner, systemctl)
    except SystemdUnavailable as exc:
        units = tuple(UnitStatus(n, directory / n, (directory / n).exists()) for n in UNITS)
        return StatusReport(False, units, str(exc))
    rows = []
    for name in UNITS:
        path = directory / name
        if not path.exists():
            rows.append(UnitStatus(name, path, False))
            continue
        active = _systemctl(runner, systemctl, "is-active", name).stdout.strip() or "unknown"
        enabled = _systemctl(runner, systemctl, "is-enabled", name).stdout.strip() or "unknown"
        rows.append(UnitStatus(name, path, True, active, enabled))
    hint = "" if any(r.installed for r in rows) else "Install with: gpm service install"
    return StatusReport(True, tuple(rows), hint)
