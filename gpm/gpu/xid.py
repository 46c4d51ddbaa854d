"""What the common Xid codes mean, what to do about them, and what they say of the GPU's health.

From NVIDIA's Xid catalog ("Analyzing Xid Errors with the Xid Catalog",
docs.nvidia.com/deploy/xid-errors/): its description and immediate resolution for each code.
``health`` is the verdict an Xid puts on the GPU (None: the application's trouble, not the GPU's).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Xid:
    code: int
    meaning: str
    action: str
    health: str | None  # "failed", "degraded", or None


_TABLE = (
    Xid(13, "graphics engine exception (an application fault)", "restart the application", None),
    Xid(31, "GPU memory page fault (an application fault)", "restart the application", None),
    Xid(43, "GPU stopped processing (an application fault)", "restart the application", None),
    Xid(45, "preemptive cleanup after an earlier error", "look at the Xid before it", None),
    Xid(48, "double-bit ECC error", "drain the GPU and reset it; RMA if it recurs", "failed"),
    Xid(61, "internal micro-controller breakpoint", "reset the GPU; contact support", "failed"),
    Xid(62, "internal micro-controller halt", "reset the GPU; contact support", "failed"),
    Xid(63, "GPU memory row remapping event", "reset the GPU to apply the remap", "degraded"),
    Xid(64, "GPU memory row remapping failure", "reset the GPU; RMA if it recurs", "failed"),
    Xid(74, "NVLink error", "check the NVLink bridge or NVSwitch; reset the GPU", "degraded"),
    Xid(79, "GPU has fallen off the bus", "reboot; check power and the PCIe slot", "failed"),
    Xid(
        92, "high single-bit ECC error rate", "watch it; contact support if it persists", "degraded"
    ),
    Xid(94, "contained memory error", "restart the application that hit it", "degraded"),
    Xid(95, "uncontained memory error", "reset the GPU", "failed"),
    Xid(119, "GSP RPC timeout", "reset the GPU; update the driver", "failed"),
    Xid(120, "GSP error", "reset the GPU; update the driver", "failed"),
)
XIDS: dict[int, Xid] = {x.code: x for x in _TABLE}


def describe(code: int) -> Xid:
    """The code's entry; one not in the table is described as unknown, with no verdict."""
    return XIDS.get(code) or Xid(code, "see NVIDIA's Xid catalog", "look it up by its code", None)
