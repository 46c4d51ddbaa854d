#!/usr/bin/env bash
# Install GPM for the current user, without root.
#
#   ./install.sh [--no-service] [WHEEL]   install from this checkout, or from a wheel file
#   ./install.sh --uninstall [--purge]    remove it again (--purge also deletes the data)
#
# GPM goes into its own virtualenv at ${XDG_DATA_HOME:-~/.local/share}/gpm/venv (or is installed
# with pipx when pipx is present), `gpm` and `gpm-server` are linked into ~/.local/bin, and
# `gpm service install` sets up the systemd user unit when systemd user services work.
# From a checkout the build hook (hatch_build.py) builds the dashboard when npm is present.
#
# Environment: PYTHON (interpreter for the virtualenv, default python3), GPM_BIN_DIR (default
# ~/.local/bin), GPM_NO_PIPX=1 (use a virtualenv even when pipx exists), GPM_VENV_ARGS and
# GPM_PIP_ARGS (extra arguments for `python -m venv` and `pip install`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
venv="$data_home/gpm/venv"
data_dir="${GPM_SERVICE_DATA_DIR:-$data_home/gpm}"
config_dir="${XDG_CONFIG_HOME:-$HOME/.config}/gpm"
bin_dir="${GPM_BIN_DIR:-$HOME/.local/bin}"
python="${PYTHON:-python3}"
read -r -a venv_args <<<"${GPM_VENV_ARGS:-}"
read -r -a pip_args <<<"${GPM_PIP_ARGS:-}"
no_pipx="${GPM_NO_PIPX:-}"
# gpm reads every GPM_* variable as a config key and rejects unknown ones: keep these to us.
unset GPM_BIN_DIR GPM_NO_PIPX GPM_VENV_ARGS GPM_PIP_ARGS

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

use_pipx() { [ -z "$no_pipx" ] && [ ! -d "$venv" ] && command -v pipx >/dev/null 2>&1; }

pipx_has_gpm() {
  command -v pipx >/dev/null 2>&1 && pipx list --short 2>/dev/null | grep -q '^gpm-monitor '
}

systemd_user_works() {
  command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1
}

link() {
  mkdir -p "$bin_dir"
  local name
  for name in gpm gpm-server; do
    ln -sfn "$venv/bin/$name" "$bin_dir/$name"
  done
}

install_gpm() {
  local src="$1" service="$2"
  if use_pipx; then
    say "installing $src with pipx"
    PIPX_BIN_DIR="$bin_dir" pipx install --force "$src"
  else
    if [ ! -x "$venv/bin/python" ]; then
      say "creating the virtualenv $venv"
      mkdir -p "$(dirname "$venv")"
      "$python" -m venv "${venv_args[@]}" "$venv"
    fi
    say "installing $src into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
      "${pip_args[@]}" "$src"
    link
  fi
  say "installed: $("$bin_dir/gpm" --version)"
  case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) say "note: $bin_dir is not on your PATH; add it, or run $bin_dir/gpm" ;;
  esac

  if [ "$service" = 0 ]; then
    say "not setting up a service (--no-service)"
  elif systemd_user_works; then
    say "setting up the systemd user service"
    PATH="$bin_dir:$PATH" "$bin_dir/gpm" service install ||
      say "'gpm service install' failed; GPM is installed, start it with: gpm run" >&2
  else
    say "systemd user services are not available here, so GPM is not started automatically."
    say "  start it now:        gpm run            (in a terminal; Ctrl-C stops it)"
    if [ -x "$root/scripts/start-all.sh" ]; then
      say "  or in the background: $root/scripts/start-all.sh --background"
    fi
    say "  headless/SSH machine: loginctl enable-linger \"\$USER\", log in again, then" \
      "gpm service install"
  fi
}

uninstall_gpm() {
  local purge="$1" name
  if [ -x "$bin_dir/gpm" ]; then
    "$bin_dir/gpm" service uninstall || say "could not remove the systemd units (see above)" >&2
  fi
  if pipx_has_gpm && [ ! -d "$venv" ]; then
    pipx uninstall gpm-monitor
  fi
  for name in gpm gpm-server; do
    # Only our own links: never a gpm that something else put there.
    if [ -L "$bin_dir/$name" ] && [ "$(readlink "$bin_dir/$name")" = "$venv/bin/$name" ]; then
      rm -f "$bin_dir/$name"
    fi
  done
  if [ -d "$venv" ]; then
    rm -rf "$venv"
    say "removed $venv"
  fi
  if [ "$purge" = 1 ]; then
    rm -rf "$data_dir"
    say "removed the data in $data_dir (the config in $config_dir is kept)"
  else
    say "kept the data in $data_dir and the config in $config_dir (--purge deletes the data)"
  fi
  say "GPM is uninstalled"
}

action=install
purge=0
service=1
wheel=""
for arg in "$@"; do
  case "$arg" in
    --uninstall) action=uninstall ;;
    --purge) purge=1 ;;
    --no-service) service=0 ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option: $arg" ;;
    *) [ -z "$wheel" ] || die "only one wheel at a time"; wheel="$arg" ;;
  esac
done

if [ "$action" = uninstall ]; then
  uninstall_gpm "$purge"
  exit 0
fi
[ "$purge" = 0 ] || die "--purge goes with --uninstall"

if [ -n "$wheel" ]; then
  case "$wheel" in *.whl) ;; *) die "$wheel is not a wheel (*.whl)" ;; esac
  [ -f "$wheel" ] || die "no such wheel: $wheel"
  install_gpm "$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")" "$service"
else
  [ -f "$root/pyproject.toml" ] || die "run this from a GPM checkout, or give a wheel file"
  install_gpm "$root" "$service"
fi
