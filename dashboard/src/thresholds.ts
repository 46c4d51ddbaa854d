/** Gauge colour levels from the alert thresholds that /api/info reports. */

import type { Thresholds } from "./api";

export type Level = "ok" | "warn" | "crit" | "na";

/** How far below a threshold a reading turns amber. */
export const TEMPERATURE_WARN_MARGIN_CELSIUS = 5;
export const MEMORY_WARN_MARGIN_PERCENT = 10;
/** Share of the power limit from which the power gauge turns amber. */
export const POWER_WARN_FRACTION = 0.95;

export const DEFAULT_THRESHOLDS: Thresholds = {
  temp_threshold_celsius: 85,
  memory_threshold_percent: 90,
};

/** "crit" above the threshold (where the alert fires), "warn" within margin of it. */
export function levelFor(
  value: number | null | undefined,
  threshold: number | null | undefined,
  warnMargin: number,
): Level {
  if (value === null || value === undefined || !Number.isFinite(value)) return "na";
  if (threshold === null || threshold === undefined) return "ok";
  if (value > threshold) return "crit";
  if (value >= threshold - warnMargin) return "warn";
  return "ok";
}

export function temperatureLevel(celsius: number | null | undefined, t: Thresholds): Level {
  return levelFor(celsius, t.temp_threshold_celsius, TEMPERATURE_WARN_MARGIN_CELSIUS);
}

export function memoryLevel(percent: number | null | undefined, t: Thresholds): Level {
  return levelFor(percent, t.memory_threshold_percent, MEMORY_WARN_MARGIN_PERCENT);
}

/** Power has no alert rule; amber when drawing close to (or over) the board's limit. */
export function powerLevel(watts: number | null | undefined, limit: number | null | undefined): Level {
  if (watts === null || watts === undefined || !Number.isFinite(watts)) return "na";
  if (!limit) return "ok";
  return watts >= limit * POWER_WARN_FRACTION ? "warn" : "ok";
}

/** Busy is good for a GPU: utilization is never amber or red. */
export function utilizationLevel(percent: number | null | undefined): Level {
  return levelFor(percent, null, 0);
}
