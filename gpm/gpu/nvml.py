"""The NVML GPU source: every GPU's readings and processes through nvidia-ml-py (``pynvml``).

NVML failures are values, not crashes (as in nvitop): a reading the GPU or driver cannot give
becomes None and the rest of the sample stands; a reading that is unsupported on a device is not
asked for again until NVML is re-initialised. A GPU that is lost, needs a reset, or whose driver
went away comes back ``up=False`` with an ``error``; the other GPUs go on, and NVML is shut down
and initialised again on the next poll until the GPU is back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pynvml as nv

from gpm.energy.ledger import EnergyRead
from gpm.gpu.clock_events import decode as decode_throttle_reasons
from gpm.gpu.mig import MigFacts, MigHandle, instance_of, read_migs
from gpm.gpu.nvml_health import field_values, memory_health, nvlink_links, nvlink_totals
from gpm.gpu.nvml_library import (
    LIFECYCLE,
    UNSUPPORTED,
    NvmlUnavailable,
    gpu_error,
    start_nvml,
    stop_nvml,
)
from gpm.model import GpuProcess, GpuSample, Snapshot

__all__ = ["NvmlSource", "NvmlUnavailable", "decode_throttle_reasons"]

_PROCESS_LISTS = (
    ("compute_processes", "compute", nv.nvmlDeviceGetComputeRunningProcesses),
    ("graphics_processes", "graphics", nv.nvmlDeviceGetGraphicsRunningProcesses),
)


# A GPU whose read is still out is shown with its previous reading this long at most, then as
# not answering: a hung driver call must not pass its last values off as live.
STALE_AFTER_SECS = 10.0


class _GpuDown(Exception):
    """A lifecycle error on one GPU; the message is the sample's ``error``."""


class Device:
    """One GPU slot: its handle, static facts, and which calls it does not support."""

    __slots__ = (
        "ecc_enabled",
        "error",
        "handle",
        "index",
        "migs",
        "name",
        "nvlinks",
        "unsupported",
        "util_seen",
        "uuid",
    )

    def __init__(self, index: int, uuid: str | None = None, name: str | None = None) -> None:
        self.index = index
        self.handle: Any = None
        self.uuid = uuid
        self.name = name
        self.error: str | None = None
        self.ecc_enabled = False
        self.nvlinks: int | None = None  # NVLink links, once counted
        self.migs: dict[str, MigFacts] = {}  # MIG devices' fixed facts, by MIG device uuid
        self.unsupported: set[str] = set()
        self.util_seen = 0  # newest process-utilization timestamp seen (microseconds)

    def read(self, key: str, fn: Any, *args: Any) -> Any:
        """``fn(handle, *args)``, None when it fails; raises _GpuDown for lifecycle errors."""
        return self.read_on(self.handle, key, fn, *args)

    def read_on(self, handle: Any, key: str, fn: Any, *args: Any) -> Any:
        """``read`` on another handle of this GPU (one of its MIG devices)."""
        if key in self.unsupported:
            return None
        try:
            return fn(handle, *args)
        except nv.NVMLError as exc:
            if exc.value in LIFECYCLE:
                raise _GpuDown(gpu_error(exc)) from None
            if exc.value in UNSUPPORTED:
                self.unsupported.add(key)
            return None

    def read_first(
        self,
        preferred: tuple[str, Any, tuple[Any, ...]],
        fallback: tuple[str, Any, tuple[Any, ...]],
    ) -> Any:
        """The preferred call, or the fallback once the preferred is known unsupported."""
        key, fn, args = preferred
        value = self.read(key, fn, *args)
        if value is None and key in self.unsupported:
            key, fn, args = fallback
            value = self.read(key, fn, *args)
        return value


def _binding(name: str) -> Any:
    """A pynvml function, or one reporting FunctionNotFound where older bindings lack it."""
    fn = getattr(nv, name, None)
    if fn is not None:
        return fn

    def missing(*_args: Any) -> Any:
        raise nv.NVMLError(nv.NVML_ERROR_FUNCTION_NOT_FOUND)

    return missing


_MEMORY = (
    ("memory_v2", nv.nvmlDeviceGetMemoryInfo, (getattr(nv, "nvmlMemory_v2", None),)),
    ("memory", nv.nvmlDeviceGetMemoryInfo, ()),
)
_TEMPERATURE = (
    ("temperature_v", _binding("nvmlDeviceGetTemperatureV"), (nv.NVML_TEMPERATURE_GPU,)),
    ("temperature", nv.nvmlDeviceGetTemperature, (nv.NVML_TEMPERATURE_GPU,)),
)
_THROTTLE = (
    ("throttle", _binding("nvmlDeviceGetCurrentClocksEventReasons"), ()),
    ("throttle_legacy", nv.nvmlDeviceGetCurrentClocksThrottleReasons, ()),
)


def _text(value: str | bytes | None) -> str | None:
    """Older bindings return bytes for strings."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _down(dev: Device, now: float, error: str | None) -> GpuSample:
    """A GPU that could not be read: who it is, and why."""
    return GpuSample(
        gpu_id=dev.index,
        timestamp=now,
        uuid=dev.uuid,
        name=dev.name,
        up=False,
        error=error,
        processes=None,
    )


def _scaled(value: int | None, factor: float) -> float | None:
    return None if value is None else value * factor


class NvmlSource:
    """Reads every NVIDIA GPU through NVML. Not for use on the event loop: ``poll`` blocks."""

    name = "nvml"

    def __init__(
        self,
        library_path: str | None = None,
        retry_secs: float = 5.0,
        read_timeout: float = 1.5,
        pcie_throughput: bool = True,
    ) -> None:
        """Start NVML, loading ``library_path`` (gpu.nvml_library) instead of the system one.

        After a GPU or the driver is lost, NVML is restarted on the next poll and then at most
        every ``retry_secs`` (of poll time) while anything stays down, since a restart is slow.
        GPUs are read concurrently, each in a worker thread; a GPU whose reading takes longer
        than ``read_timeout`` seconds is reported with its previous reading (up to
        ``STALE_AFTER_SECS`` old; else as not answering) so that it cannot hold up the others,
        and is not asked again until it answers. ``pcie_throughput`` False leaves out the PCIe
        throughput counters, which NVML samples for about 20 ms per direction. Raises
        NvmlUnavailable when NVML cannot start at all.
        """
        self._pcie = pcie_throughput
        self._library_path = library_path or None
        self._retry_secs = retry_secs
        self._read_timeout = read_timeout
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._inflight: dict[int, Future[GpuSample]] = {}  # device index -> its reading
        self._last: dict[int, GpuSample] = {}  # each device's newest reading
        self._lock = threading.Lock()
        self._devices: list[Device] = []
        self._message: str | None = None
        self._reinit = False
        self._restart_after = float("-inf")
        self._closed = False
        start_nvml(self._library_path)
        self._started = True
        self._enumerate()

    def poll(self, now: float) -> Snapshot:
        started = time.perf_counter()
        with self._lock:
            if self._closed:
                return Snapshot(
                    timestamp=now, source=self.name, message="the NVML reader is closed"
                )
            if self._reinit and now >= self._restart_after:
                futures.wait(list(self._inflight.values()), timeout=self._read_timeout)
                self._restart()
                if self._reinit:
                    self._restart_after = now + self._retry_secs
            samples = self._read_all(now)
        message = None if samples else self._message or "NVML reports no NVIDIA GPUs"
        return Snapshot(
            timestamp=now,
            source=self.name,
            gpus=tuple(samples),
            message=message,
            poll_seconds=time.perf_counter() - started,
        )

    def driver_versions(self) -> tuple[str | None, str | None]:
        """The driver's version ("550.54.15") and the CUDA version it supports ("12.4")."""
        with self._lock:
            driver = cuda = None
            with contextlib.suppress(nv.NVMLError):
                driver = _text(nv.nvmlSystemGetDriverVersion())
            with contextlib.suppress(nv.NVMLError):
                code = nv.nvmlSystemGetCudaDriverVersion_v2()
                cuda = f"{code // 1000}.{code % 1000 // 10}"
            return driver, cuda

    def read_energy(self, now: float) -> list[EnergyRead]:
        """Each readable GPU's energy counter (or, without one, its power): the energy ledger's
        read at an LLM session's edge, one or two cheap calls per GPU."""
        reads = []
        with self._lock:
            if self._closed or self._reinit:
                return []
            for dev in self._devices:
                if dev.error is not None:
                    continue
                try:
                    counter = _scaled(
                        dev.read("energy", nv.nvmlDeviceGetTotalEnergyConsumption), 1e-3
                    )
                    power = None
                    if counter is None:
                        power = _scaled(dev.read("power", nv.nvmlDeviceGetPowerUsage), 1e-3)
                except _GpuDown:
                    continue
                reads.append(EnergyRead(dev.index, now, counter, power))
        return reads

    def _read_all(self, now: float) -> list[GpuSample]:
        """Every GPU read at once, each in its own worker thread: a poll takes as long as the
        slowest GPU (at most ``read_timeout``), not the sum of them."""
        devices = self._devices
        if self._pool is None or self._pool_size < len(devices):
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool_size = max(1, len(devices))
            self._pool = ThreadPoolExecutor(self._pool_size, thread_name_prefix="gpm-nvml")
        for dev in devices:
            busy = self._inflight.get(dev.index)
            if busy is None or busy.done():
                self._inflight[dev.index] = self._pool.submit(self._poll_device, dev, now)
        waiting = [self._inflight[dev.index] for dev in devices]
        futures.wait(waiting, timeout=self._read_timeout)
        samples = []
        for dev in devices:
            reading = self._inflight[dev.index]
            if reading.done():
                self._last[dev.index] = reading.result()
                samples.append(self._last[dev.index])
            else:
                last = self._last.get(dev.index)
                if last is not None and now - last.timestamp <= STALE_AFTER_SECS:
                    samples.append(last)
                else:
                    silent = f"NVML has not answered for this GPU within {self._read_timeout:g} s"
                    samples.append(_down(dev, now, silent))
        return samples

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._pool is not None:  # a hung read is given up on, not waited for forever
                self._pool.shutdown(wait=False, cancel_futures=True)
                futures.wait(list(self._inflight.values()), timeout=self._read_timeout)
            if self._started:
                self._started = False
                stop_nvml()

    # ---- lifecycle ---------------------------------------------------------------------------

    def _restart(self) -> None:
        """Shut NVML down and start it again, then re-enumerate; GPUs still gone stay down."""
        if self._started:
            self._started = False
            stop_nvml()
        try:
            start_nvml(self._library_path)
        except NvmlUnavailable as exc:
            self._message = str(exc)
            for dev in self._devices:
                dev.error = str(exc)
            return
        self._started = True
        self._enumerate()

    def _enumerate(self) -> None:
        known = {dev.index: dev for dev in self._devices}
        self._reinit = False
        try:
            count = nv.nvmlDeviceGetCount()
        except nv.NVMLError as exc:
            self._message = f"NVML could not count GPUs: {exc}"
            for dev in self._devices:
                dev.error = gpu_error(exc)
            self._reinit = True
            return
        self._message = None
        self._devices = [self._open(i, known.get(i)) for i in range(count)]

    def _open(self, index: int, previous: Device | None) -> Device:
        dev = Device(
            index, previous.uuid if previous else None, previous.name if previous else None
        )
        try:
            dev.handle = nv.nvmlDeviceGetHandleByIndex(index)
            dev.uuid = _text(dev.read("uuid", nv.nvmlDeviceGetUUID)) or dev.uuid
            dev.name = _text(dev.read("name", nv.nvmlDeviceGetName)) or dev.name
            mode = dev.read("ecc_mode", nv.nvmlDeviceGetEccMode)
            dev.ecc_enabled = bool(mode) and mode[0] == nv.NVML_FEATURE_ENABLED
        except nv.NVMLError as exc:
            dev.error = gpu_error(exc)
            self._reinit = True
        except _GpuDown as exc:
            dev.error = str(exc)
            self._reinit = True
        return dev

    # ---- readings ----------------------------------------------------------------------------

    def _poll_device(self, dev: Device, now: float) -> GpuSample:
        if dev.error is None:
            try:
                return self._sample(dev, now)
            except _GpuDown as exc:
                dev.error = str(exc)
                self._reinit = True
        return _down(dev, now, dev.error)

    def _sample(self, dev: Device, now: float) -> GpuSample:
        read = dev.read
        util = read("utilization", nv.nvmlDeviceGetUtilizationRates)
        memory = dev.read_first(*_MEMORY)
        pstate = read("pstate", nv.nvmlDeviceGetPerformanceState)
        encoder = read("encoder", nv.nvmlDeviceGetEncoderUtilization)
        decoder = read("decoder", nv.nvmlDeviceGetDecoderUtilization)
        tx = rx = None
        if self._pcie:
            tx = read("pcie_tx", nv.nvmlDeviceGetPcieThroughput, nv.NVML_PCIE_UTIL_TX_BYTES)
            rx = read("pcie_rx", nv.nvmlDeviceGetPcieThroughput, nv.NVML_PCIE_UTIL_RX_BYTES)
        reasons = dev.read_first(*_THROTTLE)
        corrected = uncorrected = None
        if dev.ecc_enabled:
            fn, volatile = nv.nvmlDeviceGetTotalEccErrors, nv.NVML_VOLATILE_ECC
            corrected = read("ecc_corrected", fn, nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, volatile)
            uncorrected = read(
                "ecc_uncorrected", fn, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, volatile
            )
        links = nvlink_links(dev)
        health = {**field_values(dev), **memory_health(dev), **nvlink_totals(links)}
        migs = read_migs(dev)
        return GpuSample(
            gpu_id=dev.index,
            timestamp=now,
            uuid=dev.uuid,
            name=dev.name,
            utilization_percent=None if util is None else float(util.gpu),
            memory_utilization_percent=None if util is None else float(util.memory),
            memory_used_bytes=None if memory is None else memory.used,
            memory_total_bytes=None if memory is None else memory.total,
            memory_free_bytes=None if memory is None else memory.free,
            temperature_celsius=_scaled(dev.read_first(*_TEMPERATURE), 1.0),
            power_watts=_scaled(read("power", nv.nvmlDeviceGetPowerUsage), 1e-3),
            power_limit_watts=_scaled(
                read("power_limit", nv.nvmlDeviceGetEnforcedPowerLimit), 1e-3
            ),
            fan_percent=_scaled(read("fan", nv.nvmlDeviceGetFanSpeed), 1.0),
            clock_graphics_mhz=read(
                "clock_graphics", nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_GRAPHICS
            ),
            clock_sm_mhz=read("clock_sm", nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_SM),
            clock_memory_mhz=read("clock_memory", nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_MEM),
            performance_state=None if pstate in (None, nv.NVML_PSTATE_UNKNOWN) else pstate,
            encoder_utilization_percent=None if encoder is None else float(encoder[0]),
            decoder_utilization_percent=None if decoder is None else float(decoder[0]),
            pcie_tx_bytes_per_second=None if tx is None else tx * 1024,
            pcie_rx_bytes_per_second=None if rx is None else rx * 1024,
            throttle_reasons=None if reasons is None else decode_throttle_reasons(reasons),
            energy_joules=_scaled(read("energy", nv.nvmlDeviceGetTotalEnergyConsumption), 1e-3),
            ecc_errors_corrected=corrected,
            ecc_errors_uncorrected=uncorrected,
            processes=self._processes(dev, migs or []),
            readings=health,
            nvlinks=links,
            mig_devices=None if migs is None else tuple(m.device for m in migs),
        )

    def _processes(self, dev: Device, migs: list[MigHandle]) -> tuple[GpuProcess, ...] | None:
        """Compute and graphics lists merged by pid; None when neither list can be read.

        In MIG mode each MIG device's own compute list (readable without privileges) names the
        instance of its processes; the whole GPU's lists add the rest, placed by instance ids.
        """
        if "process_lists" in dev.unsupported:
            return None
        merged: dict[int, list[Any]] = {}  # pid -> [kind, memory bytes, MIG device index]
        lists: list[tuple[Any, str, str, Any, int | None]] = [
            (m.handle, "mig_compute_processes", "compute", _PROCESS_LISTS[0][2], m.device.index)
            for m in migs
        ]
        lists += [(dev.handle, key, kind, fn, None) for key, kind, fn in _PROCESS_LISTS]
        known = False
        for handle, key, kind, fn, mig_index in lists:
            try:
                procs = dev.read_on(handle, key, fn)
            except nv.NVMLLibraryMismatchError:
                dev.unsupported.add("process_lists")  # bindings and driver disagree on structs
                return None
            if procs is None:
                continue
            known = True
            for proc in procs:
                entry = merged.get(proc.pid)
                used = proc.usedGpuMemory
                if entry is None:
                    where = mig_index if mig_index is not None else instance_of(proc, migs)
                    merged[proc.pid] = [kind, used, where]
                    continue
                if kind not in entry[0]:
                    entry[0] = "compute+graphics"
                if used is not None and (entry[1] is None or used > entry[1]):
                    entry[1] = used
        if not known:
            return None
        sm = self._sm_utilization(dev) if merged else {}
        return tuple(
            GpuProcess(
                pid=pid,
                gpu_memory_bytes=used,
                kind=kind,
                sm_utilization_percent=sm.get(pid),
                mig_index=mig_index,
            )
            for pid, (kind, used, mig_index) in merged.items()
        )

    def _sm_utilization(self, dev: Device) -> dict[int, float]:
        """Per-process SM utilization from the samples newer than the last poll's."""
        samples = dev.read("process_utilization", nv.nvmlDeviceGetProcessUtilization, dev.util_seen)
        if not samples:
            return {}
        newest: dict[int, tuple[int, float]] = {}
        for s in samples:
            seen = newest.get(s.pid)
            if seen is None or s.timeStamp >= seen[0]:
                newest[s.pid] = (s.timeStamp, float(s.smUtil))
        dev.util_seen = max(ts for ts, _ in newest.values())
        return {pid: util for pid, (_, util) in newest.items()}
