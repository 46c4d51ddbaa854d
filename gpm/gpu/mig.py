"""MIG devices through NVML: each MIG device of a GPU in MIG mode, its memory and its processes.

A GPU in MIG mode is split into instances that NVML hands out as handles of their own; their
readings are reported apart (never summed into the GPU's) and each process is attributed to the
instance it runs on. A GPU without MIG support, or with MIG off, costs one call per poll and
reads as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pynvml as nv

from gpm.model import MigDevice

if TYPE_CHECKING:
    from gpm.gpu.nvml import Device

# "NVIDIA A100-SXM4-40GB MIG 1g.5gb", "NVIDIA H200 MIG 1c.3g.71gb": the profile is the last word.
_PROFILE = re.compile(r"\bMIG\s+(\S+)\s*$")
_NO_INSTANCE = 0xFFFFFFFF  # a process list entry outside any MIG instance


@dataclass(frozen=True, slots=True)
class MigFacts:
    """What does not change while a MIG device exists: read once per MIG device uuid."""

    profile: str | None
    gpu_instance_id: int | None
    compute_instance_id: int | None


@dataclass(frozen=True, slots=True)
class MigHandle:
    """A MIG device read this poll, with the handle its process list is read through."""

    handle: Any
    device: MigDevice


def profile_of(name: str | bytes | None) -> str | None:
    """The MIG profile ("1g.10gb") at the end of a MIG device's name."""
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    match = _PROFILE.search(name or "")
    return match.group(1) if match else None


def read_migs(dev: Device) -> list[MigHandle] | None:
    """The MIG devices of ``dev``; None when it is not in MIG mode (or cannot say)."""
    mode = dev.read("mig_mode", nv.nvmlDeviceGetMigMode)
    if mode is None or mode[0] != nv.NVML_DEVICE_MIG_ENABLE:
        return None
    count = dev.read("mig_count", nv.nvmlDeviceGetMaxMigDeviceCount) or 0
    found: list[MigHandle] = []
    for index in range(count):
        handle = dev.read("mig_handle", nv.nvmlDeviceGetMigDeviceHandleByIndex, index)
        if handle is None:  # no MIG device at this index
            continue
        uuid = dev.read_on(handle, "mig_uuid", nv.nvmlDeviceGetUUID)
        uuid = uuid.decode(errors="replace") if isinstance(uuid, bytes) else uuid
        facts = dev.migs.get(uuid) if uuid else None
        if facts is None:
            facts = MigFacts(
                profile_of(dev.read_on(handle, "mig_name", nv.nvmlDeviceGetName)),
                dev.read_on(handle, "mig_gi", nv.nvmlDeviceGetGpuInstanceId),
                dev.read_on(handle, "mig_ci", nv.nvmlDeviceGetComputeInstanceId),
            )
            if uuid:
                dev.migs[uuid] = facts
        memory = dev.read_on(handle, "mig_memory", nv.nvmlDeviceGetMemoryInfo)
        util = dev.read_on(handle, "mig_utilization", nv.nvmlDeviceGetUtilizationRates)
        device = MigDevice(
            index=index,
            uuid=uuid,
            profile=facts.profile,
            gpu_instance_id=facts.gpu_instance_id,
            compute_instance_id=facts.compute_instance_id,
            memory_used_bytes=None if memory is None else memory.used,
            memory_total_bytes=None if memory is None else memory.total,
            utilization_percent=None if util is None else float(util.gpu),
        )
        found.append(MigHandle(handle, device))
    return found


def instance_of(proc: Any, migs: list[MigHandle]) -> int | None:
    """The MIG device index a whole-GPU process list entry belongs to, by its instance ids."""
    gi = getattr(proc, "gpuInstanceId", _NO_INSTANCE)
    ci = getattr(proc, "computeInstanceId", _NO_INSTANCE)
    if gi == _NO_INSTANCE:
        return None
    for mig in migs:
        if (mig.device.gpu_instance_id, mig.device.compute_instance_id) == (gi, ci):
            return mig.device.index
    return None
