"""The NVML library itself: binding nvidia-ml-py to the driver's (or a given) libnvidia-ml,
starting and stopping it, and what its errors mean to a user.

Both the GPU source (gpm.gpu.nvml) and the Xid event watch (gpm.gpu.events) start NVML through
here, so its reference count and the library it is bound to stay consistent between them.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading

import pynvml as nv

# Errors that say the GPU (or NVML as a whole) is gone, not that one reading is missing.
LIFECYCLE = frozenset(
    {
        nv.NVML_ERROR_GPU_IS_LOST,
        nv.NVML_ERROR_DRIVER_NOT_LOADED,
        nv.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
        nv.NVML_ERROR_UNINITIALIZED,
        nv.NVML_ERROR_RESET_REQUIRED,
    }
)
# Errors that say a device will never answer this call: remembered until re-initialisation.
UNSUPPORTED = frozenset(
    {
        nv.NVML_ERROR_FUNCTION_NOT_FOUND,
        nv.NVML_ERROR_NOT_SUPPORTED,
        getattr(nv, "NVML_ERROR_ARGUMENT_VERSION_MISMATCH", 25),
    }
)

_SYSTEM_LIBRARY = "libnvidia-ml.so.1"
_bind_lock = threading.Lock()  # serialises library binding, nvmlInit and nvmlShutdown
_bound_path: str | None = None  # the library this module installed into pynvml (None: system)


class NvmlUnavailable(Exception):
    """NVML cannot be used at all; the message says what to check or change."""


def _init_help(exc: nv.NVMLError, library_path: str | None) -> str:
    lib = library_path or _SYSTEM_LIBRARY
    code = exc.value
    if code == nv.NVML_ERROR_LIBRARY_NOT_FOUND:
        return (
            f"NVML library {lib} not found. Is the NVIDIA driver installed? Check with "
            "`ldconfig -p | grep nvidia-ml`; if the library is elsewhere, set gpu.nvml_library "
            "to its path; or set gpu.fallback_to_nvidia_smi = true to read GPUs via nvidia-smi."
        )
    if code == nv.NVML_ERROR_DRIVER_NOT_LOADED:
        return (
            f"NVML ({lib}) found no loaded NVIDIA kernel driver. Check `lsmod | grep nvidia` "
            "and `nvidia-smi`; load it with `sudo modprobe nvidia`, or reboot after installing "
            "a driver."
        )
    if code == nv.NVML_ERROR_NO_PERMISSION:
        return (
            f"NVML ({lib}) was denied access to the GPU device files /dev/nvidia*. Check "
            "`ls -l /dev/nvidia*` and run GPM as a user that may open them (e.g. a member of "
            "their group)."
        )
    if code == nv.NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return (
            f"NVML ({lib}) and the loaded NVIDIA kernel module are different versions, usually "
            "after a driver upgrade. Reboot, or reload the module: `sudo rmmod nvidia_uvm "
            "nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia`."
        )
    return f"NVML ({lib}) could not start: {exc}. Try `nvidia-smi` to see whether the driver works."


def gpu_error(exc: nv.NVMLError) -> str:
    code = exc.value
    if code == nv.NVML_ERROR_GPU_IS_LOST:
        return (
            "GPU is lost (fell off the bus or crashed); GPM keeps retrying, a reboot may be needed"
        )
    if code == nv.NVML_ERROR_RESET_REQUIRED:
        return "GPU requires a reset (`nvidia-smi -r` or a reboot); GPM keeps retrying"
    return f"NVML: {exc}; GPM keeps retrying"


def _bind_library(library_path: str | None) -> None:
    """Point pynvml at ``library_path`` (None: the system library) before nvmlInit.

    pynvml keeps one module-wide library handle and a cache of function pointers taken from it;
    both are swapped under pynvml's own load lock, and only while no one has NVML initialised.
    """
    global _bound_path
    with nv.libLoadLock:
        if nv.nvmlLib is not None and _bound_path == library_path:
            return
        if nv.nvmlLib is not None and nv._nvmlLib_refcount > 0:
            raise NvmlUnavailable(
                f"NVML is already in use in this process from {_bound_path or _SYSTEM_LIBRARY}; "
                f"cannot switch to {library_path or _SYSTEM_LIBRARY} until it is closed"
            )
        if library_path is None:
            nv.nvmlLib = None  # pynvml loads the system library itself in nvmlInit
        else:
            try:
                nv.nvmlLib = ctypes.CDLL(library_path)
            except OSError as exc:
                raise NvmlUnavailable(
                    f"cannot load the NVML library {library_path} (gpu.nvml_library): {exc}. "
                    "Check the path, or leave gpu.nvml_library empty to use the system's "
                    f"{_SYSTEM_LIBRARY}."
                ) from None
        nv._nvmlGetFunctionPointer_cache.clear()
        _bound_path = library_path


def start_nvml(library_path: str | None) -> None:
    with _bind_lock:
        _bind_library(library_path)
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            raise NvmlUnavailable(_init_help(exc, library_path)) from None


def stop_nvml() -> None:
    # An error here means the driver is already gone: nothing is left to release.
    with _bind_lock, contextlib.suppress(nv.NVMLError):
        nv.nvmlShutdown()
