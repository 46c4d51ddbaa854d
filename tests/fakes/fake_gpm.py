"""A stand-in ``gpm`` for the start/stop script tests: ``gpm run`` serving ``/api/info``.

It stands for the installed ``gpm`` executable that scripts/start-all.sh and stop-all.sh start,
wait for and stop. tests/deploy/test_scripts.py puts a ``gpm`` on the scripts' path that runs
this file (``runpy``), so the scripts' waiting, pid files and signals are tested in seconds.

FAKE_GPM_MODE picks the behaviour: ``serve`` (default), ``crash`` (exit 3 at once),
``stubborn`` (serve and ignore SIGTERM), ``deaf`` (run without serving) or ``once`` (record argv
and exit 0).
Every start appends its argv as a JSON line to FAKE_GPM_CALLS.
"""

import http.server
import json
import os
import signal
import sys
import threading

CONFIG_KEYS = {"GPM_CONFIG", "GPM_SERVICE_DATA_DIR", "GPM_API_PORT"}


class Info(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == "/api/info"
        body = json.dumps({"version": "0.0.0-fake"} if ok else {"detail": "no"}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    mode = os.environ.get("FAKE_GPM_MODE", "serve")
    with open(os.environ["FAKE_GPM_CALLS"], "a") as fh:
        fh.write(json.dumps(sys.argv[1:]) + "\n")
    # Like the real gpm, which reads every GPM_* variable as a config key.
    unknown = sorted(k for k in os.environ if k.startswith("GPM_") and k not in CONFIG_KEYS)
    if unknown:
        print(f"fake gpm: configuration error: unknown setting {unknown[0]}", flush=True)
        return 2
    if mode == "once":
        return 0
    if mode == "crash":
        print("fake gpm: configuration error: bad things", flush=True)
        return 3
    stop = threading.Event()
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if mode == "deaf":
        stop.wait()
        return 0
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", int(os.environ.get("GPM_API_PORT", "8010"))), Info
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("fake gpm: serving", flush=True)
    stop.wait()
    server.shutdown()
    print("fake gpm: SIGTERM, exiting cleanly", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
