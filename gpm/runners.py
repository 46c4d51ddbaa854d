"""``gpm run`` and ``gpm-server``: the data-directory lock, signals, and the event loop each
runs on. A failure the user can fix comes out as a StartupError, one line for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

from gpm.api.app import ApiContext, create_app
from gpm.api.server import serve_api
from gpm.api.stream import Broadcaster
from gpm.config import LoadedConfig
from gpm.fleet import fleet_cache
from gpm.lock import AlreadyRunning, DataDirLock
from gpm.net import bind_sockets
from gpm.service import SHUTDOWN_TIMEOUT, Service, StartupError
from gpm.storage.queries import Queries

log = logging.getLogger("gpm.service")


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS), else asyncio's own loop.

    On loopback it roughly halves what the LLM proxy adds to time to first token (bench/proxy.py).
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _run(main: Callable[[asyncio.Event], Any]) -> int:
    """Run ``main(stop)`` with SIGTERM/SIGINT setting ``stop``; 0 on a clean stop."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    with asyncio.Runner(loop_factory=event_loop_factory()) as loop_runner:
        loop_runner.run(runner())
    return 0


def run_service(loaded: LoadedConfig, *, demo: bool = False) -> int:
    """``gpm run``."""
    cfg = loaded.config
    lock = DataDirLock(cfg.service.data_dir)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(f"cannot use data directory {cfg.service.data_dir}: {exc}") from None
    try:
        return _run(Service(cfg, demo=demo).run)
    finally:
        lock.release()


def run_server(loaded: LoadedConfig) -> int:
    """``gpm-server``: the API and dashboard over a database another gpm writes."""
    cfg = loaded.config
    if not cfg.database_path.exists():
        raise StartupError(
            f"no database at {cfg.database_path}: start `gpm run` first, or point "
            "service.data_dir at its data directory"
        )

    async def main(stop: asyncio.Event) -> None:
        queries = Queries(cfg.database_path, cfg.storage.archive_dir)
        hub = Broadcaster()
        a = cfg.api
        socks = bind_sockets(a.host, [a.port, a.dashboard_port], "API")
        ctx = ApiContext(config=cfg, queries=queries, hub=hub, fleet=fleet_cache(cfg))
        server = serve_api(create_app(ctx))
        task = asyncio.create_task(server.serve(sockets=socks))
        log.info(
            "gpm-server: dashboard at http://%s:%d/ reading %s", a.host, a.port, cfg.database_path
        )
        failing = False  # warn once per outage, not once per poll
        while not stop.is_set():  # follow the writer: publish each new poll to the stream
            try:
                snap = await asyncio.to_thread(queries.latest_snapshot)
            except Exception as exc:
                if not failing:
                    log.warning("reading the latest snapshot failed (retrying): %s", exc)
                failing, snap = True, None
            else:
                if failing:
                    log.info("reading the latest snapshot works again")
                failing = False
            if snap is not None and snap.timestamp != hub.latest_timestamp:
                hub.publish(snap)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=cfg.service.poll_interval_secs)
        server.should_exit = True
        await asyncio.wait([task], timeout=SHUTDOWN_TIMEOUT)

    try:
        return _run(main)
    except OSError as exc:
        raise StartupError(str(exc)) from None
