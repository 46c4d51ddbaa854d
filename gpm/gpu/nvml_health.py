"""The readings NVML gives outside the everyday calls: field values (fetched together in one
``nvmlDeviceGetFieldValues`` trip), memory health (row remapping, page retirement, lifetime ECC
counts) and NVLink. Each returns only what the GPU reported; the rest stays unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pynvml as nv

from gpm.model import NvLink

if TYPE_CHECKING:
    from gpm.gpu.nvml import Device

# Readings NVML serves as field values, fetched together in one nvmlDeviceGetFieldValues trip.
_FIELD_VALUES = (
    ("memory_temperature_celsius", getattr(nv, "NVML_FI_DEV_MEMORY_TEMP", 82)),
    ("pcie_replay_errors", getattr(nv, "NVML_FI_DEV_PCIE_REPLAY_COUNTER", 94)),
)


def field_values(dev: Device) -> dict[str, float]:
    """The field-value readings this GPU reports (one it does not have is left out)."""
    values = dev.read("field_values", nv.nvmlDeviceGetFieldValues, [f for _, f in _FIELD_VALUES])
    out: dict[str, float] = {}
    for (name, _), v in zip(_FIELD_VALUES, values or (), strict=False):
        if v.nvmlReturn != nv.NVML_SUCCESS:
            continue
        kind, value = v.valueType, v.value
        if kind == nv.NVML_VALUE_TYPE_DOUBLE:
            out[name] = float(value.dVal)
        elif kind == nv.NVML_VALUE_TYPE_UNSIGNED_INT:
            out[name] = float(value.uiVal)
        elif kind in (nv.NVML_VALUE_TYPE_UNSIGNED_LONG, nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG):
            out[name] = float(value.ullVal)
        elif kind == nv.NVML_VALUE_TYPE_SIGNED_LONG_LONG:
            out[name] = float(value.sllVal)
    return out


def memory_health(dev: Device) -> dict[str, float]:
    """Row remapping (Ampere and later), page retirement (before), lifetime ECC counts."""
    out: dict[str, float] = {}
    remap = dev.read("remapped_rows", nv.nvmlDeviceGetRemappedRows)
    if remap is not None:
        corrected, uncorrected, pending, failure = remap
        out["remapped_rows_correctable"] = corrected
        out["remapped_rows_uncorrectable"] = uncorrected
        out["remap_pending"] = 1 if pending else 0
        out["remap_failed"] = 1 if failure else 0
    for name, cause in (
        ("retired_pages_single_bit", nv.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
        ("retired_pages_double_bit", nv.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR),
    ):
        pages = dev.read(name, nv.nvmlDeviceGetRetiredPages, cause)
        if pages is not None:
            out[name] = len(pages)
    pending = dev.read("retired_pages_pending", nv.nvmlDeviceGetRetiredPagesPendingStatus)
    if pending is not None:
        out["retired_pages_pending"] = 1 if pending == nv.NVML_FEATURE_ENABLED else 0
    if dev.ecc_enabled:
        fn, aggregate = nv.nvmlDeviceGetTotalEccErrors, nv.NVML_AGGREGATE_ECC
        for name, kind in (
            ("ecc_errors_corrected_aggregate", nv.NVML_MEMORY_ERROR_TYPE_CORRECTED),
            ("ecc_errors_uncorrected_aggregate", nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
        ):
            count = dev.read(name, fn, kind, aggregate)
            if count is not None:
                out[name] = count
    return out


_NVLINK_COUNTERS = (
    ("crc_errors", nv.NVML_NVLINK_ERROR_DL_CRC_FLIT),
    ("replay_errors", nv.NVML_NVLINK_ERROR_DL_REPLAY),
    ("recovery_errors", nv.NVML_NVLINK_ERROR_DL_RECOVERY),
)


def nvlink_links(dev: Device) -> tuple[NvLink, ...] | None:
    """Each NVLink link's state and error counters; None on a GPU without NVLink.

    The links are counted once: they answer from 0 up to the last one the GPU has.
    """
    state = nv.nvmlDeviceGetNvLinkState
    if dev.nvlinks is None:
        n = 0
        while n < nv.NVML_NVLINK_MAX_LINKS and dev.read("nvlink_state", state, n) is not None:
            n += 1
        dev.nvlinks = n
    links = []
    for link in range(dev.nvlinks):
        up = dev.read("nvlink_state", state, link)
        if up is None:
            continue
        counters = {
            name: dev.read(f"nvlink_{name}", nv.nvmlDeviceGetNvLinkErrorCounter, link, counter)
            for name, counter in _NVLINK_COUNTERS
        }
        links.append(NvLink(link, up == nv.NVML_FEATURE_ENABLED, **counters))
    return tuple(links) or None


def nvlink_totals(links: tuple[NvLink, ...] | None) -> dict[str, float]:
    """Links up and down, and each error counter summed over the links that read it (a counter
    no link read is left out: unknown, not 0)."""
    if not links:
        return {}
    active = sum(link.active for link in links)
    out: dict[str, float] = {
        "nvlink_links_active": active,
        "nvlink_links_inactive": len(links) - active,
    }
    for name, _ in _NVLINK_COUNTERS:
        values = [getattr(link, name) for link in links]
        if all(v is not None for v in values):
            out[f"nvlink_{name}"] = sum(values)
    return out
