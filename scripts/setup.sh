#!/usr/bin/env bash
# Install GPM from this checkout into ./.venv (editable), building the dashboard when Node is
# present. `scripts/setup.sh test` also installs what the test suite needs.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "test" ] && extras="[test]"

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${extras}"

if command -v npm >/dev/null 2>&1; then
  (cd dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
else
  echo "setup: npm not found: the dashboard is not built (the API works; install Node 20 to build it)" >&2
fi
echo "setup: done. Start GPM with: .venv/bin/gpm run   (or .venv/bin/gpm run --demo without a GPU)"
