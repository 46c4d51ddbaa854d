"""What energy costs: money at the configured price per kWh, carbon at the configured grams per
kWh. Either is None (not shown) while its price is not configured."""

from __future__ import annotations

from dataclasses import dataclass

JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True, slots=True)
class Prices:
    price_per_kwh: float | None
    currency: str
    grams_co2_per_kwh: float | None

    def cost(self, joules: float | None) -> float | None:
        if joules is None or self.price_per_kwh is None:
            return None
        return joules / JOULES_PER_KWH * self.price_per_kwh

    def co2_grams(self, joules: float | None) -> float | None:
        if joules is None or self.grams_co2_per_kwh is None:
            return None
        return joules / JOULES_PER_KWH * self.grams_co2_per_kwh
