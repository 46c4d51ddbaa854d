"""The Arch PKGBUILD and the CI workflow: well-formed and consistent with the project."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # PyYAML comes with schemathesis

ROOT = Path(__file__).resolve().parents[2]
PKGBUILD = ROOT / "packaging" / "arch" / "PKGBUILD"


def test_pkgbuild_defines_what_makepkg_needs() -> None:
    assert subprocess.run(["bash", "-n", str(PKGBUILD)], check=False).returncode == 0
    script = (
        f'source "{PKGBUILD}"\n'
        'printf "%s\\n" "$pkgname" "$pkgver" "$pkgrel" "${arch[*]}" "${depends[*]}" '
        '"${makedepends[*]}"\n'
        "declare -F build package\n"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    name, ver, rel, arch, depends, makedepends, *funcs = done.stdout.splitlines()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (name, ver) == (project["name"], project["version"])
    assert rel.isdigit() and arch == "any"
    assert {"python", "python-psutil", "python-aiohttp", "python-fastapi"} <= set(depends.split())
    assert {"python-build", "python-installer"} <= set(makedepends.split())
    assert funcs == ["build", "package"]  # declare -F fails for a missing function
    text = PKGBUILD.read_text()
    assert "python -m build --wheel --no-isolation" in text
    assert 'python -m installer --destdir="$pkgdir"' in text


def test_ci_workflow_runs_the_ci_entry_point() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"push", "pull_request"}
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert "debian:12" in job["strategy"]["matrix"]["container"]
    runs = [step.get("run", "") for step in job["steps"]]
    assert "bash .ci/run" in runs
    assert (ROOT / ".ci" / "run").exists()
