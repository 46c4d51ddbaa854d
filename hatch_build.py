"""Build hook: the dashboard is built into gpm/api/static whenever a wheel is built from a
checkout or an sdist, so ``pip install .`` and ``pip install git+…`` give a working dashboard.

It runs ``npm ci`` (when node_modules is missing) and ``npm run build`` in dashboard/ when the
built files are missing or older than the sources. Without Node it says so and builds the wheel
without a dashboard (or with the one already built): the API works either way.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCES = ("src", "index.html", "package.json", "package-lock.json", "vite.config.ts")


def _newest(paths: list[Path]) -> float:
    times = [p.stat().st_mtime for p in paths if p.is_file()]
    return max(times, default=0.0)


class DashboardHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "dashboard"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        dashboard = root / "dashboard"
        built = root / "gpm" / "api" / "static" / "index.html"
        if not (dashboard / "package.json").is_file():
            return  # an install from a wheel's contents: nothing to build
        sources = [p for name in SOURCES for p in (dashboard / name).rglob("*")]
        sources += [dashboard / name for name in SOURCES]
        if built.is_file() and built.stat().st_mtime >= _newest(sources):
            return
        npm = shutil.which("npm")
        if npm is None:
            print(
                "gpm: npm not found, so the dashboard is not built"
                + (" (the one built earlier is used)" if built.is_file() else "")
                + ". The API works without it; install Node 20 and build again for it.",
                file=sys.stderr,
            )
            return
        if not (dashboard / "node_modules").is_dir():
            self._run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], dashboard)
        self._run([npm, "run", "build"], dashboard)

    @staticmethod
    def _run(argv: list[str], cwd: Path) -> None:
        print(f"gpm: npm {' '.join(argv[1:])} in {cwd}", file=sys.stderr)
        subprocess.run(argv, cwd=cwd, check=True)
