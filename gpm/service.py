"""Wiring and lifecycle: sources -> model -> sinks, in one asyncio process.

The poll loop reads the GPUs on a drift-free schedule, classifies processes, evaluates alerts and
hands each snapshot to the sinks (writer, event stream, live state that Prometheus/OTLP/API read).
Every part can be switched off in config, and a part that fails to start is logged with what to
do while the rest keeps running. SIGTERM/SIGINT stop everything within a few seconds, flushing
the writer first.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from gpm import __version__
from gpm.alerts.engine import AlertEngine, gpu_label
from gpm.api.app import ApiContext, create_app
from gpm.api.server import serve_api
from gpm.api.stream import Broadcaster
from gpm.classify import read_and_classify
from gpm.classify.tracker import ProcessTracker
from gpm.energy.meter import EnergyMeter
from gpm.energy.placement import SessionPlacement, local_port
from gpm.energy.waste import WasteWatch
from gpm.errors import UserError
from gpm.fleet import fleet_cache
from gpm.gpu import open_gpu_source
from gpm.gpu.base import DriverInfo, EnergyReader, GpuSource
from gpm.health import HealthWatch
from gpm.llm.recorder import SessionRecorder
from gpm.model import (
    Alert,
    GpuEvent,
    HostInfo,
    LoadedModel,
    ModelEvent,
    ProcessEvent,
    Snapshot,
)
from gpm.net import bind_sockets
from gpm.settings import Config
from gpm.state import LiveState
from gpm.storage.db import DatabaseError
from gpm.storage.queries import Queries
from gpm.storage.writer import Writer

log = logging.getLogger("gpm.service")

SHUTDOWN_TIMEOUT = 5.0


class StartupError(UserError):
    """The service cannot start at all (lock held, database unusable, a port in use)."""


class Service:
    def __init__(
        self,
        config: Config,
        *,
        demo: bool = False,
        clock: Callable[[], float] = time.time,
        source: GpuSource | None = None,
    ) -> None:
        """``source`` replaces the one the config would open (for tests and embedding)."""
        self.config = config
        self.demo = demo
        self.clock = clock
        self._given_source = source
        self.state = LiveState()
        self.hub = Broadcaster()
        self.ready = asyncio.Event()
        self._stoppers: list[Callable[[], Any]] = []  # sync or async, run in reverse order
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        self.state.health.started_at = self.clock()
        try:
            self.writer = Writer(cfg.database_path, logger=logging.getLogger("gpm.storage"))
            self.writer.start()
        except DatabaseError as exc:
            raise StartupError(str(exc)) from None
        self.queries = Queries(cfg.database_path, cfg.storage.archive_dir)
        self.source: GpuSource = self._given_source or open_gpu_source(
            cfg.gpu, demo=self.demo, logger=logging.getLogger("gpm.gpu")
        )
        self.tracker = ProcessTracker(rules=cfg.classifier.rules, clock=self.clock)
        driver, cuda = (
            self.source.driver_versions() if isinstance(self.source, DriverInfo) else (None, None)
        )
        self.state.host = HostInfo(cfg.host_name, __version__, driver, cuda, cfg.url)
        reader = self.source if isinstance(self.source, EnergyReader) else None
        self.placement = SessionPlacement(local_port(cfg.ollama.backend_url))
        self.energy = EnergyMeter(reader, self.placement, clock=self.clock)
        self.waste = WasteWatch(cfg.energy.idle_minutes)
        self.health = HealthWatch()
        self.alerts = AlertEngine(cfg.alerts)
        self.sessions = SessionRecorder(
            self.energy,
            lambda: self.state.snapshot,
            self.state.health.errors,
            sinks=[self.writer.add_session],
        )
        self._gpu_event_sinks: list[Callable[[GpuEvent], None]] = [
            self.writer.add_gpu_event,
            self.health.note,
        ]
        try:
            if self.demo:
                await asyncio.to_thread(self._backfill_demo_history)
            await self._start_parts()
            self.ready.set()
            log.info(
                "GPM running: GPUs from %s, polling every %.1fs",
                self.source.name,
                cfg.service.poll_interval_secs,
            )
            loops = [
                asyncio.create_task(self._poll_loop(stop), name="poll"),
                asyncio.create_task(self._archive_loop(stop), name="archive"),
                asyncio.create_task(self._watchdog_loop(stop), name="watchdog"),
            ]
            await stop.wait()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
        finally:
            await self._shutdown()

    def _backfill_demo_history(self, hours: float = 1.0, step: float = 10.0) -> None:
        """Give a fresh demo database an hour of simulated history, so the charts have a past."""
        if self.queries.data_range() is not None:
            return
        now = self.clock()
        t = now - hours * 3600
        while t < now:
            self.writer.add_snapshot(self.source.poll(t))
            t += step
        self.writer.flush(30)  # the charts have their past before the API answers

    async def _start_parts(self) -> None:
        cfg = self.config
        await self._start_alerts()
        if self.source.name == "nvml":
            self._start_part("Xid event watch", self._start_xid_watch)
        if cfg.telemetry.enable_prometheus:
            self._start_part("Prometheus /metrics", self._start_prometheus)
        if cfg.telemetry.enable_opentelemetry:  # the SDK import is slow: off the loop
            await asyncio.to_thread(self._start_part, "OpenTelemetry export", self._start_otlp)
        if cfg.ollama.enabled:
            await self._start_llm()
        if cfg.api.enabled:
            self._start_part("API and dashboard", self._start_api)

    def _start_part(self, what: str, start: Callable[[], None]) -> None:
        try:
            start()
        except Exception as exc:
            self.state.health.errors["startup"] += 1
            log.error("%s not started: %s; the other parts keep running", what, exc)

    async def _start_alerts(self) -> None:
        from gpm.alerts.notify import Notifier

        self.notifier = Notifier(self.config.alerts, logging.getLogger("gpm.alerts"))
        await self.notifier.start()
        self._stoppers.append(self.notifier.stop)

    def _start_xid_watch(self) -> None:
        from gpm.gpu.events import XidWatcher

        loop = asyncio.get_running_loop()

        def on_event(e: GpuEvent) -> None:  # the watcher's thread: hand over to the loop
            loop.call_soon_threadsafe(self._on_gpu_event, e)

        watcher = XidWatcher(
            self.config.gpu.nvml_library,
            on_event,
            clock=self.clock,
            logger=logging.getLogger("gpm.gpu"),
        )
        watcher.start()
        self._stoppers.append(watcher.stop)

    def _on_gpu_event(self, e: GpuEvent) -> None:
        """An Xid error: stored, counted, judged, and alerted on at once (on the event loop)."""
        for sink in self._gpu_event_sinks:
            try:
                sink(e)
            except Exception:
                log.exception("recording Xid %d on GPU %d failed", e.code, e.gpu_id)
        snap = self.state.snapshot
        named = {g.gpu_id: g for g in snap.gpus} if snap else {}
        gpu = named.get(e.gpu_id)
        label = gpu_label(gpu) if gpu else f"GPU {e.gpu_id}"
        self._handle_alerts(self.alerts.gpu_event(e, label, self.clock()))

    def _start_prometheus(self) -> None:
        from gpm.telemetry.prometheus import MetricsExporter

        t = self.config.telemetry
        exporter = MetricsExporter(
            self.state,
            host=t.metrics_host,
            port=t.metrics_port,
            legacy_names=t.prometheus_legacy_names,
        )
        exporter.start()
        self._stoppers.append(exporter.stop)
        self.sessions.sinks.append(exporter.observe_session)
        self._gpu_event_sinks.append(exporter.observe_gpu_event)
        log.info("Prometheus metrics at http://%s:%d/metrics", t.metrics_host, exporter.port)

    def _start_otlp(self) -> None:
        from gpm.telemetry.otlp import OtlpExporter

        t = self.config.telemetry
        exporter = OtlpExporter(
            self.state,
            endpoint=t.otlp_endpoint,
            interval=t.otlp_export_interval_secs,
            host_name=self.config.host_name,
            instance_id=instance_id(self.config),
            logger=logging.getLogger("gpm.otlp"),
        )
        exporter.start()
        self._stoppers.append(exporter.stop)
        self.sessions.sinks.append(exporter.observe_session)

    async def _start_llm(self) -> None:
        from gpm.llm.proxy import LlmProxy
        from gpm.llm.ps import ModelPoller

        o = self.config.ollama
        backend_url = o.backend_url
        if self.demo:
            from gpm.llm.demo import DemoBackend

            demo_backend = DemoBackend()
            await demo_backend.start()
            self._stoppers.append(demo_backend.stop)
            backend_url = demo_backend.url
            self.placement.backend_port = local_port(backend_url)
        if o.enable_proxy:
            proxy = LlmProxy(
                backend_url,
                o.proxy_host,
                o.proxy_port,
                on_session=self.sessions.finished,
                on_start=self.sessions.started,
                store_prompts=o.store_prompts,
                logger=logging.getLogger("gpm.proxy"),
            )
            try:
                await proxy.start()
            except OSError as exc:
                self.state.health.errors["startup"] += 1
                log.error(
                    "LLM proxy not started: cannot listen on %s:%d (%s). Is Ollama still "
                    "on that port? Move it with OLLAMA_HOST=127.0.0.1:11435, or set "
                    "ollama.proxy_port",
                    o.proxy_host,
                    o.proxy_port,
                    exc.strerror or exc,
                )
            else:
                self._stoppers.append(proxy.stop)
                if self.demo:
                    from gpm.llm.demo import DemoTraffic

                    traffic = DemoTraffic(f"http://127.0.0.1:{proxy.port}", interval=3.0)
                    await traffic.start()
                    self._stoppers.append(traffic.stop)
        ps_url = backend_url if (o.enable_proxy or self.demo) else o.api_url
        poller = ModelPoller(ps_url, o.ps_poll_interval_secs, self._on_models)
        await poller.start()
        self._stoppers.append(poller.stop)

    def _start_api(self) -> None:
        a = self.config.api
        socks = bind_sockets(a.host, [a.port, a.dashboard_port], "API")
        ctx = ApiContext(
            config=self.config,
            queries=self.queries,
            hub=self.hub,
            state=self.state,
            simulated=self.source.name == "simulated",
            clock=self.clock,
            fleet=fleet_cache(self.config),
        )
        server = serve_api(create_app(ctx))
        self._tasks.append(asyncio.create_task(server.serve(sockets=socks), name="api"))
        self._stoppers.append(lambda: setattr(server, "should_exit", True))
        log.info(
            "Dashboard at http://%s:%d/ (and :%d), API under /api/",
            a.host,
            a.port,
            a.dashboard_port,
        )

    async def _shutdown(self) -> None:
        now = self.clock()
        for stop in reversed(self._stoppers):
            try:
                if inspect.iscoroutinefunction(stop):
                    await asyncio.wait_for(stop(), SHUTDOWN_TIMEOUT)
                else:  # e.g. the OTLP exporter's final flush may wait on the network
                    await asyncio.to_thread(stop)
            except Exception as exc:
                log.warning("error while stopping: %s", exc)
        await self.sessions.drain(SHUTDOWN_TIMEOUT)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=SHUTDOWN_TIMEOUT)
        with contextlib.suppress(Exception):
            self.writer.add_process_events(self.tracker.close(now))
        await asyncio.to_thread(self.writer.close, SHUTDOWN_TIMEOUT)
        self.source.close()
        log.info("GPM stopped")

    # -- the poll loop -------------------------------------------------------------------------

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        """Poll every interval on a fixed grid: an overrun skips slots, never queues them."""
        loop = asyncio.get_running_loop()
        interval = self.config.service.poll_interval_secs
        due = loop.time()
        while not stop.is_set():
            await self.poll_once()
            due += interval
            now = loop.time()
            if now > due:
                missed = int((now - due) // interval) + 1
                due += missed * interval
                self.state.health.polls_skipped += missed
                log.warning(
                    "poll took %.2fs, longer than the %.2fs interval: skipped %d poll(s)",
                    self.state.health.last_poll_seconds or 0.0,
                    interval,
                    missed,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, due - loop.time()))

    def _read(self) -> tuple[Snapshot, list[ProcessEvent]]:
        """Read the GPUs and classify their processes: one trip to a worker thread per poll."""
        return read_and_classify(self.source, self.tracker, self.health, self.clock())

    async def poll_once(self) -> None:
        health = self.state.health
        started = time.perf_counter()
        try:
            snap, events = await asyncio.to_thread(self._read)
        except Exception as exc:  # a source bug must not stop the service
            health.errors["poll"] += 1
            log.exception("GPU poll failed: %s", exc)
            return
        finished = self.clock()
        read = time.perf_counter() - started
        health.polls += 1
        health.last_poll_at = finished
        if not snap.gpus or any(g.up for g in snap.gpus):  # read a GPU, or there are none
            health.last_success_at = finished
        for g in snap.gpus:
            if not g.up:
                health.errors["gpu_down"] += 1
        self.state.snapshot = snap
        self.writer.add_snapshot(snap)
        self.writer.add_energy(await self.energy.poll(snap, events))  # ended processes' energy
        if events:
            self.writer.add_process_events(events)
        self.state.energy = self.energy.totals
        wastes = self.waste.update(snap, self.state.models, self.energy.ledger)
        self.state.idle_waste = tuple(wastes)
        self._handle_alerts(
            self.alerts.evaluate(snap, health, finished)
            + self.alerts.idle_waste(snap, wastes, finished)
        )
        self.hub.publish(snap)
        health.last_poll_seconds = time.perf_counter() - started
        gpus = snap.poll_seconds if snap.poll_seconds is not None else read
        health.phase_seconds = {
            "gpus": gpus,
            "classify": max(read - gpus, 0.0),
            "record": health.last_poll_seconds - read,
        }

    def _handle_alerts(self, transitions: list[Alert]) -> None:
        for alert in transitions:
            self.writer.add_alert(alert)
            self.notifier.send(alert)
        self.state.active_alerts = self.alerts.active

    async def _watchdog_loop(self, stop: asyncio.Event) -> None:
        """Check for a stalled poll apart from the poll loop, which cannot see its own stall."""
        period = max(1.0, self.config.alerts.poll_stall_secs / 4)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)
                return
            self._handle_alerts(self.alerts.evaluate(None, self.state.health, self.clock()))

    async def _archive_loop(self, stop: asyncio.Event) -> None:
        from gpm.storage.archive import run_retention

        s = self.config.storage
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=s.archive_interval_secs)
                return
            try:
                report = await asyncio.to_thread(
                    run_retention,
                    self.config.database_path,
                    s.archive_dir,
                    retention_days=s.retention_days,
                    archive=s.enable_parquet_archival,
                    now=self.clock(),
                )
                log.info("retention: %s", report.describe())
            except Exception as exc:  # ArchiveError, a full disk, a locked database
                self.state.health.errors["archive"] += 1
                log.error("retention/archival failed, nothing deleted: %s", exc)

    # -- LLM backend ---------------------------------------------------------------------------

    def _on_models(
        self,
        models: tuple[LoadedModel, ...],
        events: list[ModelEvent],
        backend_up: bool,
        version: str | None,
    ) -> None:
        self.state.models = models
        self.state.backend_up = backend_up
        self.state.backend_version = version
        if events:
            self.writer.add_model_events(events)


def instance_id(cfg: Config) -> str:
    """A stable id for this GPM (its host and data directory): OTLP's service.instance.id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"gpm://{cfg.host_name}{cfg.service.data_dir}"))
