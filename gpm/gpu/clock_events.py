"""NVML clock-event (throttle) reasons: the bits, the short names every source reports, and
which of them mean heat or power trouble."""

from __future__ import annotations

from functools import lru_cache

# Bit -> short name, as NVML's nvmlClocksEventReason* constants.
REASONS: tuple[tuple[int, str], ...] = (
    (0x001, "gpu_idle"),
    (0x002, "applications_clocks_setting"),
    (0x004, "sw_power_cap"),
    (0x008, "hw_slowdown"),
    (0x010, "sync_boost"),
    (0x020, "sw_thermal_slowdown"),
    (0x040, "hw_thermal_slowdown"),
    (0x080, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)
NAMES: tuple[str, ...] = tuple(name for _, name in REASONS)
_KNOWN_BITS = sum(bit for bit, _ in REASONS)

# The slowdowns; sw_power_cap is the GPU keeping to its power limit under load, which is normal.
THERMAL: tuple[str, ...] = ("sw_thermal_slowdown", "hw_thermal_slowdown")
POWER: tuple[str, ...] = ("hw_power_brake_slowdown", "hw_slowdown")


@lru_cache(maxsize=256)
def decode(mask: int) -> tuple[str, ...]:
    """Reason bits -> short names, lowest bit first; bits NVML may add later appear as hex."""
    names = [name for bit, name in REASONS if mask & bit]
    unknown = mask & ~_KNOWN_BITS
    names += [f"0x{1 << b:x}" for b in range(unknown.bit_length()) if unknown >> b & 1]
    return tuple(names)
