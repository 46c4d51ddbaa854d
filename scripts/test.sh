#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: system packages, Python and npm
# dependencies, the dashboard build and type check, lint, types, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: gcc builds the fake libnvidia-ml.so.1, g++ builds llama.cpp (the real inference
# server behind the proxy tests), chromium runs the dashboard tests, prometheus/promtool check the
# metrics, tmux runs `gpm top` in a real terminal.
missing=()
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v g++ >/dev/null || missing+=(g++)
command -v chromium >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
command -v tmux >/dev/null || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

scripts/setup.sh test

echo "== dashboard: API types match the API schema"
scripts/gen-api-types.sh --check

echo "== dashboard: type check and component tests"
(cd dashboard && npm run --silent typecheck && npm test --silent)

echo "== lint and types"
.venv/bin/ruff check gpm tests bench
.venv/bin/ruff format --check gpm tests bench
.venv/bin/mypy

echo "== tests"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
