"""The real wheel, installed by install.sh into a temporary HOME, then uninstalled.

Building the wheel runs hatchling in an isolated build env (from the package index), so this
takes ~15 s. To stay fast and offline after that, install.sh is given ``--no-deps --no-index``
and a pre-made virtualenv whose one ``.pth`` line points at this checkout's .venv site-packages
for the dependencies. A ``.pth`` path line does not run the .pth files in that directory, so
the checkout's editable ``gpm`` stays invisible: ``gpm`` can only come from the wheel, which
the test checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.fakes.fake_command import calls_of
from tests.fakes.fake_systemctl import fake_systemctl

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "install.sh"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / "gpm" / "api" / "static" / "index.html").exists():
        pytest.skip("the dashboard is not built (scripts/setup.sh builds it); the wheel needs it")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (built,) = out.glob("gpm_monitor-*.whl")
    return built


class Home:
    def __init__(self, tmp: Path, systemd_ok: bool) -> None:
        self.home = tmp / "home"
        self.venv = self.home / ".local/share/gpm/venv"
        self.bin = self.home / ".local/bin"
        self.units = self.home / ".config/systemd/user"
        ctl, self.calls = fake_systemctl(tmp, bus_ok=systemd_ok)
        self.env = {
            "HOME": str(self.home),
            "PATH": f"{ctl.parent}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "GPM_NO_PIPX": "1",
            "GPM_PIP_ARGS": "--no-deps --no-index",
        }
        # The virtualenv install.sh will reuse, with the dependencies reachable (see above).
        # No pip of its own: the .pth makes the checkout's pip importable, saving ensurepip.
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(self.venv)], check=True, timeout=120
        )
        (site,) = self.venv.glob("lib/python*/site-packages")
        (site / "gpm_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    def sh(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", *args], env=self.env, cwd=self.home.parent, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip


def test_wheel_holds_the_dashboard(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "gpm/api/static/index.html" in names
    assert "gpm/alerts/engine.py" in names and "gpm/systemd.py" in names
    assert not any(n.startswith(("tests/", "dashboard/")) for n in names)


def test_install_sh_with_systemd_then_uninstall(wheel: Path, tmp_path: Path) -> None:
    h = Home(tmp_path, systemd_ok=True)
    done = h.sh(str(INSTALL), str(wheel))
    assert done.returncode == 0, done.stdout + done.stderr
    gpm = h.bin / "gpm"
    assert gpm.is_symlink() and os.readlink(gpm) == str(h.venv / "bin" / "gpm")
    assert (h.bin / "gpm-server").resolve() == (h.venv / "bin" / "gpm-server").resolve()
    version = subprocess.run([str(gpm), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip().startswith("gpm 0.")
    where = subprocess.run(
        [str(h.venv / "bin" / "python"), "-c", "import gpm, sys; print(gpm.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,  # not the checkout as cwd
    ).stdout.strip()  # fmt: skip
    installed = Path(where).parent
    assert installed.is_relative_to(h.venv), where  # from the wheel, not the checkout
    assert (installed / "api" / "static" / "index.html").is_file()

    unit = (h.units / "gpm.service").read_text()
    assert f"ExecStart={gpm} run\n" in unit
    assert ["--user", "enable", "--now", "gpm.service"] in calls_of(h.calls)

    data = h.home / ".local/share/gpm/gpm.db"
    data.write_text("history")
    removed = h.sh(str(INSTALL), "--uninstall")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not h.venv.exists() and not gpm.exists() and not (h.bin / "gpm-server").exists()
    assert not (h.units / "gpm.service").exists()
    assert ["--user", "disable", "--now", "gpm.service"] in calls_of(h.calls)
    assert data.read_text() == "history"  # kept without --purge
    assert h.sh(str(INSTALL), "--uninstall", "--purge").returncode == 0
    assert not data.parent.exists()


def test_install_sh_without_systemd_says_how_to_start(wheel: Path, tmp_path: Path) -> None:
    h = Home(tmp_path, systemd_ok=False)
    done = h.sh(str(INSTALL), str(wheel))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "systemd user services are not available here" in done.stdout
    assert "scripts/start-all.sh --background" in done.stdout
    assert "loginctl enable-linger" in done.stdout
    assert f"{h.bin} is not on your PATH" in done.stdout
    assert not h.units.exists()
    assert (h.bin / "gpm").exists()


def test_install_sh_rejects_bad_input(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def sh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(INSTALL), *args], env=env, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip

    assert "no such wheel" in sh(str(tmp_path / "missing.whl")).stderr
    assert "is not a wheel" in sh(str(tmp_path / "thing.tar.gz")).stderr
    assert "unknown option: --bogus" in sh("--bogus").stderr
    assert "--purge goes with --uninstall" in sh("--purge").stderr
    assert sh("--help").stdout.startswith("Install GPM for the current user")
    assert not (tmp_path / ".local").exists()  # nothing was touched
    assert subprocess.run(["bash", "-n", str(INSTALL)], check=False).returncode == 0
