"""Where GPM keeps its files: the one place that knows about per-OS directories."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def default_data_dir() -> Path:
    """``~/.local/share/gpm`` on Linux (honours XDG_DATA_HOME)."""
    return Path(platformdirs.user_data_dir("gpm", appauthor=False))


def default_config_path() -> Path:
    """``~/.config/gpm/config.toml`` on Linux (honours XDG_CONFIG_HOME)."""
    return Path(platformdirs.user_config_dir("gpm", appauthor=False)) / "config.toml"


def user_systemd_dir() -> Path:
    """Where systemd looks for user units."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"
