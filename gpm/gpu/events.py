"""Xid errors from NVML's event API, watched by a thread of its own.

The thread waits in ``nvmlEventSetWait_v2`` with a short timeout (no CPU while nothing happens)
and hands each Xid to a callback as a :class:`~gpm.model.GpuEvent`, so the poll loop never waits
on events. A GPU or driver without event support is said once and left unwatched; the rest is
read as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pynvml as nv

from gpm.gpu.nvml_library import NvmlUnavailable, start_nvml, stop_nvml
from gpm.model import GpuEvent

WAIT_MS = 500  # how long one wait lasts; also how soon stop() is noticed


def _address(handle: Any) -> int | None:
    return ctypes.cast(handle, ctypes.c_void_p).value


class XidWatcher:
    """Calls ``on_event`` (from its own thread) for every Xid error NVML reports."""

    def __init__(
        self,
        library_path: str | None,
        on_event: Callable[[GpuEvent], None],
        *,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self._library_path = library_path or None
        self._on_event = on_event
        self._clock = clock
        self._log = logger or logging.getLogger("gpm.gpu")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # set once the GPUs are registered (or could not be)
        self.watched: list[int] = []  # GPU indexes whose Xid errors are watched
        self.unwatched: dict[int, str] = {}  # GPU index -> why not

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpm-xid-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            start_nvml(self._library_path)
        except NvmlUnavailable as exc:
            self._log.info("Xid events are not watched: %s", exc)
            self.ready.set()
            return
        event_set = None
        try:
            event_set = nv.nvmlEventSetCreate()
            gpus = self._register(event_set)
            self.ready.set()
            if gpus:
                self._wait(event_set, gpus)
        except nv.NVMLError as exc:
            self._log.info("Xid events are not watched: %s", exc)
        finally:
            self.ready.set()
            if event_set is not None:
                with contextlib.suppress(nv.NVMLError):
                    nv.nvmlEventSetFree(event_set)
            stop_nvml()

    def _register(self, event_set: Any) -> dict[int | None, tuple[int, str | None]]:
        """Register every GPU for Xid errors: handle address -> (index, uuid)."""
        gpus: dict[int | None, tuple[int, str | None]] = {}
        for index in range(nv.nvmlDeviceGetCount()):
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(index)
                nv.nvmlDeviceRegisterEvents(handle, nv.nvmlEventTypeXidCriticalError, event_set)
                uuid = nv.nvmlDeviceGetUUID(handle)
            except nv.NVMLError as exc:
                self.unwatched[index] = str(exc)
                continue
            text = uuid.decode(errors="replace") if isinstance(uuid, bytes) else uuid
            gpus[_address(handle)] = (index, text)
            self.watched.append(index)
        if self.unwatched:
            said = "; ".join(f"GPU {i}: {why}" for i, why in sorted(self.unwatched.items()))
            self._log.info("Xid events are not watched on some GPUs (%s)", said)
        if self.watched:
            self._log.info("Xid events watched on GPU %s", ", ".join(map(str, self.watched)))
        return gpus

    def _wait(self, event_set: Any, gpus: dict[int | None, tuple[int, str | None]]) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                data = nv.nvmlEventSetWait_v2(event_set, WAIT_MS)
            except nv.NVMLError_Timeout:
                continue
            except nv.NVMLError as exc:
                if not failing:
                    self._log.warning("waiting for Xid events failed (retrying): %s", exc)
                failing = True
                self._stop.wait(1.0)
                continue
            failing = False
            index, uuid = gpus.get(_address(data.device), (None, None))
            if index is None or data.eventType != nv.nvmlEventTypeXidCriticalError:
                continue
            event = GpuEvent(self._clock(), index, uuid, "xid", int(data.eventData))
            try:
                self._on_event(event)
            except Exception:
                self._log.exception("handling Xid %d on GPU %d failed", event.code, index)
