"""GPU sources, and the one place that decides which of them the service reads.

NVML first; nvidia-smi when NVML cannot be loaded and the user allowed the fallback; simulated
GPUs for demos; otherwise a source that reports, on every poll, why there are no GPUs. Each
source is imported only when chosen: the fallback's XML parsing and the simulator cost memory in
every service that never uses them.
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

from gpm.gpu.base import GpuSource
from gpm.model import Snapshot

if TYPE_CHECKING:
    from gpm.settings import GpuConfig

__all__ = ["GpuSource", "NoGpuSource", "open_gpu_source"]

SMI_HINT = (
    "Set gpu.fallback_to_nvidia_smi = true (GPM_GPU_FALLBACK_TO_NVIDIA_SMI=true) to read GPUs "
    "through nvidia-smi."
)
DEMO_HINT = "Set gpu.simulated_gpus = 2 (or run with --demo) to try GPM without a GPU."


class NoGpuSource:
    """GpuSource for a machine where no GPU can be read; every poll says why."""

    name = "none"

    def __init__(self, message: str) -> None:
        self.message = message

    def poll(self, now: float) -> Snapshot:
        return Snapshot(
            timestamp=now, source=self.name, gpus=(), message=self.message, poll_seconds=0.0
        )

    def close(self) -> None:
        """Nothing to release."""


def _open_nvml(library: str, pcie_throughput: bool) -> tuple[GpuSource | None, str]:
    """NvmlSource, or None and the user-facing reason it cannot be used."""
    try:
        from gpm.gpu.nvml import NvmlSource, NvmlUnavailable
    except ImportError as exc:
        return None, f"the NVML reader could not be imported ({exc})"
    try:
        return NvmlSource(library or None, pcie_throughput=pcie_throughput), ""
    except NvmlUnavailable as exc:
        return None, str(exc)


def open_gpu_source(
    cfg: GpuConfig, demo: bool = False, logger: logging.Logger | None = None
) -> GpuSource:
    """The GpuSource the config asks for, falling back as far as the config allows.

    Logs one line when it falls back to nvidia-smi and one warning when it ends with no GPU.
    """
    log = logger or logging.getLogger(__name__)
    if demo or cfg.simulated_gpus > 0:
        from gpm.gpu.simulated import SimulatedSource

        count = cfg.simulated_gpus or 2
        log.info("Reading %d simulated GPUs", count)
        return SimulatedSource(count)
    if cfg.enable_nvml:
        nvml, reason = _open_nvml(cfg.nvml_library, cfg.pcie_throughput)
        if nvml is not None:
            return nvml
    else:
        reason = "NVML is turned off (gpu.enable_nvml = false)"
    if cfg.fallback_to_nvidia_smi:
        found = shutil.which(cfg.nvidia_smi_path)
        if found is not None:
            from gpm.gpu.smi import SmiSource

            log.warning("NVML unavailable (%s); reading GPUs through %s", reason, found)
            return SmiSource(
                found,
                cfg.nvidia_smi_timeout_secs,
                xml_interval=cfg.nvidia_smi_xml_interval_secs,
                logger=log,
            )
        message = (
            f"{reason.rstrip('. ')}. The nvidia-smi fallback is on but {cfg.nvidia_smi_path!r} "
            "was not found: install the NVIDIA driver utilities or set gpu.nvidia_smi_path."
        )
    else:
        # NvmlUnavailable's own message may already suggest the fallback; don't say it twice.
        hint = DEMO_HINT if "fallback_to_nvidia_smi" in reason else f"{SMI_HINT} {DEMO_HINT}"
        message = f"{reason.rstrip('. ')}. {hint}"
    log.warning("No NVIDIA GPU found: %s", message)
    return NoGpuSource(message)
