#!/usr/bin/env bash
# Stop the GPM that scripts/start-all.sh --background started, by its pid file (never by process
# name): SIGTERM, a clean exit within GPM_STOP_TIMEOUT seconds (default 20), SIGKILL only after
# that, with a message. A stale pid file is reported and removed. Honours GPM_SERVICE_DATA_DIR.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/start-all.sh" --stop
