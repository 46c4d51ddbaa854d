"""systemd user units: written into a temp unit dir, driven through a fake systemctl."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gpm import systemd
from tests.fakes.fake_command import calls_of
from tests.fakes.fake_systemctl import fake_systemctl


@pytest.fixture
def gpm_exe(tmp_path: Path) -> Path:
    bindir = tmp_path / "my apps"  # a space, to prove the quoting
    bindir.mkdir()
    for name in ("gpm", "gpm-server"):
        (bindir / name).write_text("#!/bin/sh\nexit 0\n")
        (bindir / name).chmod(0o755)
    return bindir / "gpm"


def test_install_writes_units_and_enables_them(tmp_path: Path, gpm_exe: Path) -> None:
    ctl, calls = fake_systemctl(tmp_path)
    units = tmp_path / "units"
    config = tmp_path / "conf dir" / "config.toml"
    written = systemd.install(
        gpm_executable=gpm_exe, config_path=config, with_server=True, unit_dir=units,
        systemctl=str(ctl),
    )  # fmt: skip
    assert written == [units / "gpm.service", units / "gpm-server.service"]
    service = written[0].read_text()
    assert f'ExecStart="{gpm_exe}" run --config "{config}"\n' in service
    for line in ("Type=simple", "Restart=on-failure", "RestartSec=5",
                 "Environment=PYTHONUNBUFFERED=1", "WantedBy=default.target"):  # fmt: skip
        assert f"\n{line}\n" in service
    server = written[1].read_text()
    assert f'ExecStart="{gpm_exe.with_name("gpm-server")}" --config "{config}"\n' in server
    assert calls_of(calls) == [
        ["--user", "show-environment"],
        ["--user", "daemon-reload"],
        ["--user", "enable", "--now", "gpm.service", "gpm-server.service"],
    ]
    assert not list(units.glob(".*.tmp"))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path, gpm_exe: Path) -> None:
    ctl, _ = fake_systemctl(tmp_path)
    written = systemd.install(
        gpm_executable=gpm_exe, config_path=None, with_server=True,
        unit_dir=tmp_path / "units", systemctl=str(ctl),
    )  # fmt: skip
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    done = subprocess.run(
        ["systemd-analyze", "--user", "verify", *map(str, written)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    # verify exits 0 even for lines it ignores, so any output at all is a failure.
    assert (done.returncode, done.stderr.strip()) == (0, "")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_catches_a_missing_executable(tmp_path: Path) -> None:
    """Proves the verify test above can fail."""
    ctl, _ = fake_systemctl(tmp_path)
    written = systemd.install(
        gpm_executable=tmp_path / "nowhere" / "gpm", config_path=None, with_server=False,
        unit_dir=tmp_path / "units", systemctl=str(ctl),
    )  # fmt: skip
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    done = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(written[0])],
        capture_output=True, text=True, env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "is not executable" in done.stderr


def test_no_user_bus_gives_instructions_but_keeps_the_files(tmp_path: Path, gpm_exe: Path) -> None:
    ctl, calls = fake_systemctl(tmp_path, bus_ok=False)
    units = tmp_path / "units"
    with pytest.raises(systemd.SystemdUnavailable) as caught:
        systemd.install(
            gpm_executable=gpm_exe, config_path=None, with_server=False, unit_dir=units,
            systemctl=str(ctl),
        )  # fmt: skip
    text = str(caught.value)
    assert "systemd user services are not available" in text
    assert "Failed to connect to bus: No medium found" in text
    assert "scripts/start-all.sh --background" in text
    assert "loginctl enable-linger" in text
    assert str(units / "gpm.service") in text
    assert caught.value.units == [units / "gpm.service"]
    assert (units / "gpm.service").exists()
    assert calls_of(calls) == [["--user", "show-environment"]]  # nothing enabled


def test_no_systemctl_at_all(tmp_path: Path, gpm_exe: Path) -> None:
    with pytest.raises(systemd.SystemdUnavailable, match="was not found"):
        systemd.install(
            gpm_executable=gpm_exe, config_path=None, with_server=False,
            unit_dir=tmp_path / "units", systemctl=str(tmp_path / "no-systemctl"),
        )  # fmt: skip


def test_no_enable_writes_and_reloads_only(tmp_path: Path, gpm_exe: Path) -> None:
    ctl, calls = fake_systemctl(tmp_path)
    systemd.install(
        gpm_executable=gpm_exe, config_path=None, with_server=False,
        unit_dir=tmp_path / "units", enable=False, systemctl=str(ctl),
    )  # fmt: skip
    assert calls_of(calls) == [["--user", "show-environment"], ["--user", "daemon-reload"]]
    (tmp_path / "down").mkdir()
    ctl_down, _ = fake_systemctl(tmp_path / "down", bus_ok=False)
    assert systemd.install(
        gpm_executable=gpm_exe, config_path=None, with_server=False,
        unit_dir=tmp_path / "units2", enable=False, systemctl=str(ctl_down),
    ) == [tmp_path / "units2" / "gpm.service"]  # fmt: skip


def test_failed_enable_raises_with_systemctl_output(tmp_path: Path, gpm_exe: Path) -> None:
    ctl, _ = fake_systemctl(tmp_path, refuse_enable="Unit file is masked.")
    with pytest.raises(
        systemd.SystemdError, match=r"enable --now gpm\.service' failed: Unit file is masked"
    ):
        systemd.install(
            gpm_executable=gpm_exe, config_path=None, with_server=False,
            unit_dir=tmp_path / "units", systemctl=str(ctl),
        )  # fmt: skip


def test_status_and_uninstall(tmp_path: Path, gpm_exe: Path) -> None:
    ctl, calls = fake_systemctl(tmp_path)
    units = tmp_path / "units"
    before = systemd.status(unit_dir=units, systemctl=str(ctl))
    assert before.available and not any(u.installed for u in before.units)
    assert "Install with: gpm service install" in str(before)
    systemd.install(
        gpm_executable=gpm_exe, config_path=None, with_server=False, unit_dir=units,
        systemctl=str(ctl),
    )  # fmt: skip
    report = systemd.status(unit_dir=units, systemctl=str(ctl))
    assert str(report).splitlines() == [
        f"gpm.service: active, enabled ({units / 'gpm.service'})",
        f"gpm-server.service: not installed ({units / 'gpm-server.service'})",
    ]
    calls.unlink()
    assert systemd.uninstall(unit_dir=units, systemctl=str(ctl)) == [units / "gpm.service"]
    assert not (units / "gpm.service").exists()
    assert calls_of(calls) == [
        ["--user", "show-environment"],
        ["--user", "disable", "--now", "gpm.service"],
        ["--user", "daemon-reload"],
    ]
    assert systemd.uninstall(unit_dir=units, systemctl=str(ctl)) == []


def test_status_and_uninstall_without_systemd(tmp_path: Path, gpm_exe: Path) -> None:
    ctl, _ = fake_systemctl(tmp_path, bus_ok=False)
    units = tmp_path / "units"
    systemd.install(
        gpm_executable=gpm_exe, config_path=None, with_server=False, unit_dir=units,
        enable=False, systemctl=str(ctl),
    )  # fmt: skip
    report = systemd.status(unit_dir=units, systemctl=str(ctl))
    assert not report.available
    assert f"gpm.service: installed at {units / 'gpm.service'}" in str(report)
    assert "loginctl enable-linger" in str(report)
    assert systemd.uninstall(unit_dir=units, systemctl=str(ctl)) == [units / "gpm.service"]
    assert not (units / "gpm.service").exists()


@pytest.mark.parametrize(
    ("arg", "word"),
    [
        ("/usr/bin/gpm", "/usr/bin/gpm"),
        ("/home/a b/gpm", '"/home/a b/gpm"'),
        ("/x/100%/$HOME", "/x/100%%/$$HOME"),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
        ("", '""'),
    ],
)
def test_exec_start_quoting(arg: str, word: str) -> None:
    assert systemd.systemd_quote(arg) == word
