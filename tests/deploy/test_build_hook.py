"""`pip install` of a checkout gives a working dashboard: the build hook builds it, and the
wheel, installed where there is no Node, serves it.

A fresh clone of this checkout (no built dashboard, as in git) is built into a wheel by the
real hatchling in an isolated build env; its node_modules are hard links to this checkout's, so
the hook's `npm run build` runs for real without downloading. The wheel goes into a virtualenv
with the dependencies reachable through a .pth line (see test_wheel.py) and `gpm run --demo`
runs from it with a PATH that has no node or npm.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "dashboard" / "node_modules"

pytestmark = pytest.mark.skipif(
    shutil.which("npm") is None or not NODE_MODULES.is_dir() or shutil.which("git") is None,
    reason="needs git, npm and the dashboard's node_modules (scripts/test.sh installs them)",
)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, " ".join(argv) + "\n" + done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_a_checkout_builds_its_dashboard_into_the_wheel(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)])
    # The working tree's uncommitted state is not in the clone; the hook is what is tested.
    assert not (clone / "gpm/api/static/index.html").exists()
    run(["cp", "-al", str(NODE_MODULES), str(clone / "dashboard" / "node_modules")])
    dist = tmp_path / "dist"
    built = run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(clone)])
    assert "npm run build" in built.stderr + built.stdout  # the hook said what it ran
    (wheel,) = dist.glob("gpm_monitor-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(site), str(wheel)])  # fmt: skip

    port = free_port()
    env = {
        "PATH": str(venv / "bin"),  # no node, no npm
        "HOME": str(tmp_path / "home"),
        "GPM_SERVICE_DATA_DIR": str(tmp_path / "data"),
        "GPM_API_PORT": str(port),
        "GPM_API_DASHBOARD_PORT": str(free_port()),
        "GPM_TELEMETRY_METRICS_PORT": str(free_port()),
        "GPM_OLLAMA_PROXY_PORT": str(free_port()),
        "GPM_TELEMETRY_ENABLE_OPENTELEMETRY": "false",
    }
    assert shutil.which("node", path=env["PATH"]) is None
    gpm = subprocess.Popen(
        [str(venv / "bin" / "python"), "-m", "gpm", "run", "--demo"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        def page() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                return str(resp.read().decode())

        html = wait_for(page, timeout=30, what="the dashboard from the installed wheel")
        assert '<div id="root">' in html
        script = html.split('src="', 1)[1].split('"', 1)[0]
        asset = urllib.parse.urljoin(f"http://127.0.0.1:{port}/", script)
        with urllib.request.urlopen(asset, timeout=5) as resp:
            assert resp.status == 200 and len(resp.read()) > 100_000
    finally:
        gpm.terminate()
        gpm.wait(timeout=15)
