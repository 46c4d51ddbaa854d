#!/usr/bin/env bash
# Install GPM from this checkout into ./.venv (editable); installing builds the dashboard when
# Node is present. `scripts/setup.sh test` also installs what the test suite needs.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "test" ] && extras="[test]"

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The build hook (hatch_build.py) runs npm ci and npm run build when the dashboard is missing or
# older than its sources: installing builds it.
.venv/bin/python -m pip install --quiet -e ".${extras}"

if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm not found: the dashboard is not built (the API works; install Node 20 to build it)" >&2
fi
echo "setup: done. Start GPM with: .venv/bin/gpm run   (or .venv/bin/gpm run --demo without a GPU)"
