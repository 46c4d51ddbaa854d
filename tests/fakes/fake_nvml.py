"""A fake ``libnvidia-ml.so.1`` for tests: built from fake_nvml.c, driven by a scenario file.

The real nvidia-ml-py bindings (``pynvml``) load the fake library and call it exactly as they
would call the driver's, so GPM's NVML source is tested end to end without a GPU.

Using it
--------
In a test (the fixtures below are importable into a conftest.py)::

    from tests.fakes.fake_nvml import Scenario, build_fake_nvml

    lib = build_fake_nvml(tmp_dir)                 # compiled once per directory and omit set
    scenario = Scenario(tmp_dir / "scenario.txt")
    scenario.set_gpu(0, name="NVIDIA H100", temperature_c=65, util_gpu=97)
    scenario.set_processes(0, compute=[(4242, 2 << 30)], graphics=[(4242, None)])
    scenario.write()
    os.environ["FAKE_NVML_SCENARIO"] = str(scenario.path)   # or monkeypatch.setenv
    source = NvmlSource(library_path=str(lib))

In a subprocess (``gpm status --json``, ``gpm run``) put ``GPM_GPU_NVML_LIBRARY=<lib>`` and
``FAKE_NVML_SCENARIO=<scenario file>`` in its environment. Setting ``LD_LIBRARY_PATH`` inside a
running process has no effect on ``dlopen``; load the library by explicit path instead.

``build_fake_nvml(out_dir, omit=("nvmlDeviceGetFanSpeed",))`` leaves those entry points out of
the library, so the bindings raise ``NVMLError_FunctionNotFound`` as with an older driver.
``fake_nvml_call_count(lib, "nvmlDeviceGetFanSpeed")`` tells how often an entry point was called.

Scenario file format
--------------------
One statement per line; ``#`` starts a comment. The file is re-read whenever it changes (inode,
size or modification time), so write it atomically (``Scenario.write`` does: temp file, then
rename, with a strictly increasing mtime)::

    init <ERROR>                    nvmlInit fails with NVML_ERROR_<ERROR>, e.g. DRIVER_NOT_LOADED
    driver <version>                what nvmlSystemGetDriverVersion says, e.g. 550.54.15
    cuda <number>                   nvmlSystemGetCudaDriverVersion_v2, e.g. 12040 (CUDA 12.4)
    latency <symbol> <us>           every call of the entry point takes this long (microseconds,
                                    spent without the library's lock, so GPUs overlap)
    gpu <i> latency <symbol> <us>   the same on one GPU (wins over the line for all)
    gpu <i>                         declares GPU i (the device count is the highest index + 1)
    gpu <i> name <text>             default "Fake GPU <i>"
    gpu <i> uuid <text>             default "GPU-fake-000<i>"
    gpu <i> <value> <number>        one of VALUE_NAMES below (decimal or 0x hex); with
                                    energy_rate_mw the energy counter also runs in real time
                                    (energy_mj + rate x seconds since the epoch)
    gpu <i> state <ERROR|OK>        every call on the GPU fails with it, e.g. GPU_IS_LOST
    gpu <i> fail <field> <ERROR>    one reading fails, e.g. ``fail fan NOT_SUPPORTED``
    gpu <i> compute <pid> <bytes|na>    a compute process (``na``: memory not available)
    gpu <i> graphics <pid> <bytes|na>   a graphics process
    gpu <i> sm_util <pid> <percent>     a process utilization sample
    gpu <i> xid <code>              an Xid event, delivered once to an event set created before it
    gpu <i> mig <k> [<key> <value>] MIG device k (0-6) of a GPU with ``mig_mode 1``; keys: name
                                    (default "Fake GPU <i> MIG 1g.10gb"), uuid, gi, ci,
                                    memory_total, memory_used, compute <pid> <bytes|na>

On a GPU in MIG mode the whole GPU's compute list also holds its MIG devices' processes, with
their instance ids, as NVML gives a privileged caller; a MIG device's handle answers name, uuid,
memory, its own processes and its instance ids, and NOT_SUPPORTED to every other call.

A value never given reads as NOT_SUPPORTED; ``Scenario.set_gpu`` fills every value from
``DEFAULTS`` the first time it sees a GPU. ERROR is an NVML error name without the
``NVML_ERROR_`` prefix (see ``ERRORS``); FIELDS lists the readings ``fail`` accepts. The library
prints a line on stderr for a line it cannot use and keeps the previous scenario.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pytest

SOURCE = Path(__file__).with_name("fake_nvml.c")
LIBRARY_NAME = "libnvidia-ml.so.1"

VALUE_NAMES = (
    "util_gpu",
    "util_memory",
    "memory_total",
    "memory_used",
    "memory_reserved",
    "temperature_c",
    "power_mw",
    "power_limit_mw",
    "fan_percent",
    "clock_graphics_mhz",
    "clock_sm_mhz",
    "clock_memory_mhz",
    "pstate",
    "encoder_util",
    "decoder_util",
    "pcie_tx_kbps",
    "pcie_rx_kbps",
    "throttle_reasons",
    "energy_mj",
    "ecc_enabled",
    "ecc_corrected",
    "ecc_uncorrected",
    "memory_temperature_c",
    "remap_correctable",
    "remap_uncorrectable",
    "remap_pending",
    "remap_failure",
    "retired_sbe",
    "retired_dbe",
    "retired_pending",
    "ecc_corrected_aggregate",
    "ecc_uncorrected_aggregate",
    "nvlink_links",
    "nvlink_active",
    "nvlink_crc",
    "nvlink_replay",
    "nvlink_recovery",
    "pcie_replay",
    "mig_mode",
    "energy_rate_mw",
)
FIELDS = (
    "name",
    "uuid",
    "utilization",
    "memory",
    "temperature",
    "power",
    "power_limit",
    "fan",
    "clock_graphics",
    "clock_sm",
    "clock_memory",
    "pstate",
    "encoder",
    "decoder",
    "pcie_tx",
    "pcie_rx",
    "throttle",
    "energy",
    "ecc_mode",
    "ecc_corrected",
    "ecc_uncorrected",
    "compute_processes",
    "graphics_processes",
    "process_utilization",
    "memory_temperature",
    "remapped_rows",
    "retired_pages",
    "ecc_aggregate",
    "nvlink",
    "pcie_replay",
    "events",
    "mig",
    "mig_devices",
    "mig_processes",
)
ERRORS = (
    "OK",
    "UNINITIALIZED",
    "INVALID_ARGUMENT",
    "NOT_SUPPORTED",
    "NO_PERMISSION",
    "NOT_FOUND",
    "INSUFFICIENT_SIZE",
    "DRIVER_NOT_LOADED",
    "TIMEOUT",
    "LIBRARY_NOT_FOUND",
    "FUNCTION_NOT_FOUND",
    "GPU_IS_LOST",
    "RESET_REQUIRED",
    "LIB_RM_VERSION_MISMATCH",
    "ARGUMENT_VERSION_MISMATCH",
    "UNKNOWN",
)

GIB = 1 << 30
DEFAULTS: dict[str, int] = {
    "util_gpu": 0,
    "util_memory": 0,
    "memory_total": 16 * GIB,
    "memory_used": 0,
    "memory_reserved": 0,
    "temperature_c": 40,
    "power_mw": 50_000,
    "power_limit_mw": 250_000,
    "fan_percent": 30,
    "clock_graphics_mhz": 1500,
    "clock_sm_mhz": 1500,
    "clock_memory_mhz": 5000,
    "pstate": 0,
    "encoder_util": 0,
    "decoder_util": 0,
    "pcie_tx_kbps": 0,
    "pcie_rx_kbps": 0,
    "throttle_reasons": 0,
    "energy_mj": 0,
    "ecc_enabled": 0,
    "ecc_corrected": 0,
    "ecc_uncorrected": 0,
}


# Which scenario value a GPU source reads as which catalog reading, and the factor from the value's
# NVML unit to the reading's (milliwatts -> watts, KB/s -> bytes/s, millijoules -> joules).
# ECC counts are read only where ``ecc_enabled`` is 1.
SERVES: dict[str, tuple[str, float]] = {
    "utilization_percent": ("util_gpu", 1.0),
    "memory_utilization_percent": ("util_memory", 1.0),
    "memory_used_bytes": ("memory_used", 1.0),
    "memory_total_bytes": ("memory_total", 1.0),
    "temperature_celsius": ("temperature_c", 1.0),
    "power_watts": ("power_mw", 1e-3),
    "power_limit_watts": ("power_limit_mw", 1e-3),
    "fan_percent": ("fan_percent", 1.0),
    "clock_graphics_mhz": ("clock_graphics_mhz", 1.0),
    "clock_sm_mhz": ("clock_sm_mhz", 1.0),
    "clock_memory_mhz": ("clock_memory_mhz", 1.0),
    "performance_state": ("pstate", 1.0),
    "encoder_utilization_percent": ("encoder_util", 1.0),
    "decoder_utilization_percent": ("decoder_util", 1.0),
    "pcie_tx_bytes_per_second": ("pcie_tx_kbps", 1024.0),
    "pcie_rx_bytes_per_second": ("pcie_rx_kbps", 1024.0),
    "energy_joules": ("energy_mj", 1e-3),
    "ecc_errors_corrected": ("ecc_corrected", 1.0),
    "ecc_errors_uncorrected": ("ecc_uncorrected", 1.0),
    "memory_temperature_celsius": ("memory_temperature_c", 1.0),
    "ecc_errors_corrected_aggregate": ("ecc_corrected_aggregate", 1.0),
    "ecc_errors_uncorrected_aggregate": ("ecc_uncorrected_aggregate", 1.0),
    "remapped_rows_correctable": ("remap_correctable", 1.0),
    "remapped_rows_uncorrectable": ("remap_uncorrectable", 1.0),
    "retired_pages_single_bit": ("retired_sbe", 1.0),
    "retired_pages_double_bit": ("retired_dbe", 1.0),
    "nvlink_links_active": ("nvlink_active", 1.0),
    "pcie_replay_errors": ("pcie_replay", 1.0),
}
# Readings the fake serves as more than one value each (checked by their own tests): flags,
# memory free (total - used - reserved), NVLink sums over links.
SERVED_OTHERWISE = frozenset(
    {
        "memory_free_bytes",
        "remap_pending",
        "remap_failed",
        "retired_pages_pending",
        "nvlink_links_inactive",
        "nvlink_crc_errors",
        "nvlink_replay_errors",
        "nvlink_recovery_errors",
    }
)


# What NVML's slow calls take on real hardware (microseconds): the PCIe throughput counters
# sample for about 20 ms per direction, per-process utilization and the process lists a few
# milliseconds, ECC and field-value queries about a millisecond (nvidia_gpu_exporter and nvitop
# issues; docs in bench/README.md). The rest answer in tens of microseconds.
REALISTIC_LATENCIES_US: dict[str, int] = {
    "nvmlDeviceGetPcieThroughput": 20_000,
    "nvmlDeviceGetProcessUtilization": 3_000,
    "nvmlDeviceGetComputeRunningProcesses_v3": 1_000,
    "nvmlDeviceGetGraphicsRunningProcesses_v3": 1_000,
    "nvmlDeviceGetTotalEccErrors": 1_000,
    "nvmlDeviceGetFieldValues": 1_000,
    "nvmlDeviceGetUtilizationRates": 50,
    "nvmlDeviceGetMemoryInfo_v2": 50,
    "nvmlDeviceGetTemperatureV": 50,
    "nvmlDeviceGetPowerUsage": 100,
    "nvmlDeviceGetClockInfo": 50,
}


class FakeNvmlUnavailable(Exception):
    """The fake cannot be built here (no C compiler or no nvml.h)."""


def omittable_symbols() -> frozenset[str]:
    """Entry points that ``omit`` may name (every ``#ifndef OMIT_<symbol>`` in the source)."""
    return frozenset(re.findall(r"#ifndef OMIT_(\w+)", SOURCE.read_text()))


def _header_dirs() -> Iterator[Path]:
    if os.environ.get("NVML_INCLUDE_DIR"):
        yield Path(os.environ["NVML_INCLUDE_DIR"])
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        yield from sorted(p.parent for p in Path(root).glob("*/include/nvml.h"))
    yield from (Path("/usr/local/cuda/include"), Path("/usr/include"))


def find_nvml_header() -> Path:
    """The directory holding the real nvml.h (PyPI ``nvidia-nvml-dev`` or a CUDA install)."""
    for directory in _header_dirs():
        if (directory / "nvml.h").is_file():
            return directory
    raise FakeNvmlUnavailable(
        "nvml.h not found: install the test extra (pip install nvidia-nvml-dev) "
        "or set NVML_INCLUDE_DIR to a directory containing nvml.h"
    )


def build_fake_nvml(out_dir: Path, omit: Sequence[str] = ()) -> Path:
    """Compile the fake into ``out_dir/<key>/libnvidia-ml.so.1``, reusing an earlier build.

    The key hashes the source and the omit set, so each variant is compiled once per directory.
    """
    unknown = sorted(set(omit) - omittable_symbols())
    if unknown:
        raise ValueError(f"cannot omit {unknown}: not in fake_nvml.c")
    compiler = shutil.which(os.environ.get("CC", "gcc"))
    if compiler is None:
        raise FakeNvmlUnavailable("no C compiler (gcc) on PATH to build the fake NVML library")
    include = find_nvml_header()
    flags = ["-shared", "-fPIC", "-O2", "-Wall", "-Werror", f"-I{include}"]
    flags += [f"-DOMIT_{name}" for name in sorted(set(omit))]
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    target = Path(out_dir) / key / LIBRARY_NAME
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    result = subprocess.run(
        [compiler, *flags, "-o", str(partial), str(SOURCE), "-lpthread"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the fake NVML library failed:\n{result.stderr}")
    partial.replace(target)
    return target


def fake_nvml_call_count(library: Path, symbol: str) -> int:
    """How often ``symbol`` was called in this process (the library is shared with pynvml)."""
    fn = ctypes.CDLL(str(library)).fakeNvmlCallCount
    fn.restype = ctypes.c_ulong
    fn.argtypes = [ctypes.c_char_p]
    return int(fn(symbol.encode()))


class Scenario:
    """Builds a scenario file for the fake library; every setter returns ``self``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._init: str | None = None
        self._versions: dict[str, str] = {}
        self._latencies: dict[tuple[int | None, str], int] = {}
        self._gpus: dict[int, dict[str, int | str]] = {}
        self._state: dict[int, str] = {}
        self._fails: dict[int, dict[str, str]] = {}
        self._procs: dict[int, tuple[list[tuple[int, int | None]], ...]] = {}
        self._sm: dict[int, dict[int, int]] = {}
        self._xids: dict[int, list[int]] = {}
        self._migs: dict[int, dict[int, dict[str, object]]] = {}
        self._last_mtime_ns = 0

    def set_gpu(self, index: int, **values: int | str) -> Scenario:
        """Set readings of GPU ``index`` (``name``, ``uuid`` or any of VALUE_NAMES)."""
        unknown = sorted(set(values) - set(VALUE_NAMES) - {"name", "uuid"})
        if unknown:
            raise ValueError(f"unknown GPU values {unknown}; known: name, uuid, {VALUE_NAMES}")
        self._gpus.setdefault(index, dict(DEFAULTS)).update(values)
        return self

    def set_processes(
        self,
        index: int,
        compute: Iterable[tuple[int, int | None]] = (),
        graphics: Iterable[tuple[int, int | None]] = (),
    ) -> Scenario:
        """Replace the process lists: ``(pid, used_bytes)``, None bytes meaning not available."""
        self._gpu(index)
        self._procs[index] = (list(compute), list(graphics))
        return self

    def set_process_utilization(self, index: int, sm_percent: dict[int, int]) -> Scenario:
        self._gpu(index)
        self._sm[index] = dict(sm_percent)
        return self

    def add_xid(self, index: int, code: int) -> Scenario:
        """An Xid event on GPU ``index``, delivered once to an event set waiting on the GPU."""
        self._gpu(index)
        self._xids.setdefault(index, []).append(code)
        return self

    def set_mig(
        self,
        index: int,
        mig: int,
        compute: Iterable[tuple[int, int | None]] | None = None,
        **values: int | str,
    ) -> Scenario:
        """Set MIG device ``mig`` of GPU ``index`` (turns MIG mode on): ``name``, ``uuid``,
        ``gi``, ``ci``, ``memory_total``, ``memory_used``, and its compute processes (None:
        as before)."""
        unknown = sorted(set(values) - {"name", "uuid", "gi", "ci", "memory_total", "memory_used"})
        if unknown:
            raise ValueError(f"unknown MIG values {unknown}")
        self.set_gpu(index, mig_mode=1)
        device = self._migs.setdefault(index, {}).setdefault(mig, {"compute": []})
        device.update(values)
        if compute is not None:
            device["compute"] = list(compute)
        return self

    def lose_gpu(self, index: int, error: str = "GPU_IS_LOST") -> Scenario:
        """Make every call on the GPU fail with ``error`` until ``restore_gpu``."""
        self._gpu(index)
        self._state[index] = _check(error, ERRORS, "error")
        return self

    def restore_gpu(self, index: int) -> Scenario:
        self._state.pop(index, None)
        return self

    def fail(self, index: int, field: str, error: str) -> Scenario:
        self._gpu(index)
        self._fails.setdefault(index, {})[_check(field, FIELDS, "field")] = _check(
            error, ERRORS, "error"
        )
        return self

    def not_supported(self, index: int, field: str) -> Scenario:
        return self.fail(index, field, "NOT_SUPPORTED")

    def clear_failure(self, index: int, field: str) -> Scenario:
        self._fails.get(index, {}).pop(field, None)
        return self

    def set_driver(self, driver: str, cuda: int) -> Scenario:
        """The driver and CUDA versions NVML reports (``cuda`` as NVML encodes it: 12040)."""
        self._versions = {"driver": driver, "cuda": str(cuda)}
        return self

    def set_latency(self, symbol: str, microseconds: int, gpu: int | None = None) -> Scenario:
        """Make every call of ``symbol`` (on GPU ``gpu``, or all) take ``microseconds``."""
        if symbol not in omittable_symbols():
            raise ValueError(f"{symbol} is not an entry point of fake_nvml.c")
        self._latencies[(gpu, symbol)] = microseconds
        return self

    def realistic_latencies(self) -> Scenario:
        """What the slow calls take on a real driver (REALISTIC_LATENCIES_US), on every GPU."""
        for symbol, us in REALISTIC_LATENCIES_US.items():
            self.set_latency(symbol, us)
        return self

    def init_error(self, error: str | None) -> Scenario:
        """Make nvmlInit fail with ``error`` (None: succeed)."""
        self._init = None if error is None else _check(error, ERRORS, "error")
        return self

    def render(self) -> str:
        lines = [] if self._init is None else [f"init {self._init}"]
        lines += [f"{key} {value}" for key, value in self._versions.items()]
        lines += [
            f"latency {symbol} {us}" if gpu is None else f"gpu {gpu} latency {symbol} {us}"
            for (gpu, symbol), us in self._latencies.items()
        ]
        for i in sorted(self._gpus):
            lines.append(f"gpu {i}")
            lines += [f"gpu {i} {key} {value}" for key, value in self._gpus[i].items()]
            if i in self._state:
                lines.append(f"gpu {i} state {self._state[i]}")
            lines += [f"gpu {i} fail {f} {e}" for f, e in self._fails.get(i, {}).items()]
            compute, graphics = self._procs.get(i, ([], []))
            for kind, procs in (("compute", compute), ("graphics", graphics)):
                lines += [f"gpu {i} {kind} {pid} {'na' if b is None else b}" for pid, b in procs]
            lines += [f"gpu {i} sm_util {pid} {sm}" for pid, sm in self._sm.get(i, {}).items()]
            lines += [f"gpu {i} xid {code}" for code in self._xids.get(i, [])]
            for k, mig in self._migs.get(i, {}).items():
                lines.append(f"gpu {i} mig {k}")
                for key, value in mig.items():
                    if key == "compute":
                        assert isinstance(value, list)
                        lines += [
                            f"gpu {i} mig {k} compute {pid} {'na' if b is None else b}"
                            for pid, b in value
                        ]
                    else:
                        lines.append(f"gpu {i} mig {k} {key} {value}")
        return "\n".join(lines) + "\n"

    def write(self) -> Path:
        """Replace the file atomically, with an mtime the library cannot mistake for the last."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".scenario-")
        with os.fdopen(fd, "w") as fh:
            fh.write(self.render())
        self._last_mtime_ns = max(time.time_ns(), self._last_mtime_ns + 1_000)
        os.utime(tmp, ns=(self._last_mtime_ns, self._last_mtime_ns))
        os.replace(tmp, self.path)
        return self.path

    def _gpu(self, index: int) -> None:
        self._gpus.setdefault(index, dict(DEFAULTS))


def _check(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(allowed)}")
    return value


# ---- pytest fixtures (import them into a conftest.py) --------------------------------------


@pytest.fixture(scope="session")
def fake_nvml_build(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``fake_nvml_build(omit=())`` -> library path; skips when gcc or nvml.h is missing."""
    out_dir = tmp_path_factory.getbasetemp() / "fake_nvml"

    def build(omit: Sequence[str] = ()) -> Path:
        try:
            return build_fake_nvml(out_dir, omit)
        except FakeNvmlUnavailable as exc:
            pytest.skip(str(exc))

    return build


@pytest.fixture(scope="session")
def fake_nvml_lib(fake_nvml_build: Callable[..., Path]) -> Path:
    """The fake library with every entry point."""
    return fake_nvml_build()


@pytest.fixture
def fake_nvml_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """An empty scenario, named in FAKE_NVML_SCENARIO for this test; call ``.write()``."""
    scenario = Scenario(tmp_path / "nvml-scenario.txt")
    scenario.write()
    monkeypatch.setenv("FAKE_NVML_SCENARIO", str(scenario.path))
    return scenario
