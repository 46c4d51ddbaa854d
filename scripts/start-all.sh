#!/usr/bin/env bash
# Start GPM: `gpm run` (GPU collector, LLM proxy, API and dashboard, exporters, alerts).
#
#   scripts/start-all.sh [--background] [gpm run options, e.g. --demo --config PATH]
#   scripts/start-all.sh --stop          (what scripts/stop-all.sh runs)
#
# In the foreground GPM runs in this terminal until Ctrl-C. With --background it is detached
# (setsid + nohup) with a pid file and a log file in the data dir, and this script waits until
# the API answers or the process exits, and says which.
#
# Environment: GPM_BIN (the gpm executable; default: this checkout's .venv/bin/gpm, else gpm on
# PATH), GPM_SERVICE_DATA_DIR (default ${XDG_DATA_HOME:-~/.local/share}/gpm), GPM_API_PORT
# (default 8010), GPM_START_TIMEOUT and GPM_STOP_TIMEOUT (seconds, default 30 and 20).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="${GPM_SERVICE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/gpm}"
pid_file="$data_dir/gpm.pid"
log_file="$data_dir/gpm.log"
port="${GPM_API_PORT:-8010}"
info_url="http://127.0.0.1:${port}/api/info"
gpm_bin="${GPM_BIN:-}"
start_timeout="${GPM_START_TIMEOUT:-30}"
stop_timeout="${GPM_STOP_TIMEOUT:-20}"
# gpm reads every GPM_* variable as a config key and rejects unknown ones: keep these to us.
unset GPM_BIN GPM_START_TIMEOUT GPM_STOP_TIMEOUT

say() { printf 'gpm: %s\n' "$*"; }
die() { printf 'gpm: %s\n' "$*" >&2; exit 1; }

find_gpm() {
  if [ -n "$gpm_bin" ]; then
    [ -x "$gpm_bin" ] || die "GPM_BIN=$gpm_bin is not an executable file"
    printf '%s\n' "$gpm_bin"
  elif [ -x "$root/.venv/bin/gpm" ]; then
    printf '%s\n' "$root/.venv/bin/gpm"
  elif command -v gpm >/dev/null 2>&1; then
    command -v gpm
  else
    die "gpm not found: run scripts/setup.sh (or install.sh), or set GPM_BIN"
  fi
}

# The kernel's start time of a pid (field 22 of /proc/PID/stat), empty when it is gone or a
# zombie. Stored next to the pid so that a reused pid is never taken for GPM.
start_time() {
  local stat rest
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  rest="${stat##*) }"
  # shellcheck disable=SC2086 # split the numeric fields on purpose
  set -- $rest
  [ "$1" = "Z" ] || printf '%s\n' "${20}"
}

# Prints the pid recorded in the pid file when that process still runs; removes a stale file.
running_pid() {
  [ -f "$pid_file" ] || return 0
  local pid started now
  read -r pid started <"$pid_file" || true
  if [[ "$pid" =~ ^[0-9]+$ ]]; then
    now="$(start_time "$pid")"
    if [ -n "$now" ] && [ "$now" = "$started" ]; then
      printf '%s\n' "$pid"
      return 0
    fi
  fi
  say "removing stale pid file $pid_file (pid ${pid:-?} is not running)" >&2
  rm -f "$pid_file"
}

answers() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$info_url" 2>/dev/null
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "$info_url" 2>/dev/null
  fi
}

start_background() {
  local gpm pid deadline status
  gpm="$(find_gpm)"
  mkdir -p "$data_dir"
  printf '\n== %s: %s run %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$gpm" "$*" >>"$log_file"
  # setsid: its own session, so closing this terminal does not hang it up. Started from a
  # script (not a process-group leader), setsid execs in place, so $! is GPM's own pid.
  setsid nohup "$gpm" run "$@" </dev/null >>"$log_file" 2>&1 &
  pid=$!
  printf '%s %s\n' "$pid" "$(start_time "$pid")" >"$pid_file.tmp"
  mv -f "$pid_file.tmp" "$pid_file"
  deadline=$((SECONDS + $start_timeout))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if [ -z "$(start_time "$pid")" ]; then
      status=0
      wait "$pid" || status=$?
      rm -f "$pid_file"
      echo "gpm: GPM exited during startup (status $status); the end of $log_file:" >&2
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    if answers; then
      say "GPM is running (pid $pid): API and dashboard at http://127.0.0.1:${port}/"
      say "log: $log_file   stop with: $root/scripts/stop-all.sh"
      exit 0
    fi
    sleep 0.2
  done
  echo "gpm: GPM (pid $pid) is still running but $info_url did not answer within" \
    "$start_timeout s; see $log_file (stop it with scripts/stop-all.sh)" >&2
  exit 2
}

stop() {
  local pid deadline
  if [ ! -f "$pid_file" ]; then
    say "GPM is not running (no pid file at $pid_file)"
    return 0
  fi
  pid="$(running_pid)"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + $stop_timeout))
  while [ -n "$(start_time "$pid")" ] && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.1
  done
  if [ -n "$(start_time "$pid")" ]; then
    echo "gpm: pid $pid did not exit within $stop_timeout s of SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while [ -n "$(start_time "$pid")" ] && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.1
    done
  fi
  rm -f "$pid_file"
  say "stopped GPM (pid $pid)"
}

background=0
args=()
for arg in "$@"; do
  case "$arg" in
    --background) background=1 ;;
    --stop) stop; exit 0 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done

pid="$(running_pid)"
[ -z "$pid" ] || die "GPM is already running (pid $pid, pid file $pid_file); stop it with scripts/stop-all.sh"

if [ "$background" -eq 1 ]; then
  start_background "${args[@]}"
else
  gpm="$(find_gpm)"
  exec "$gpm" run "${args[@]}"
fi
