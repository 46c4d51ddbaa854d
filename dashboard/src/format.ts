/** Display formatting. Every helper shows a missing value as "—", never as 0. */

export const NA = "—";

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

function missing(value: number | null | undefined): value is null | undefined {
  return value === null || value === undefined || !Number.isFinite(value);
}

/** Bytes in binary units with one decimal above KiB ("1.5 GiB"). */
export function formatBytes(bytes: number | null | undefined): string {
  if (missing(bytes)) return NA;
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/** A span of seconds as its two largest units ("2 m 05 s", "3 h 07 m", "2 d 4 h"). */
export function formatDuration(seconds: number | null | undefined): string {
  if (missing(seconds)) return NA;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const total = Math.round(seconds);
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  const pad = (n: number): string => String(n).padStart(2, "0");
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours} h ${pad(minutes)} m`;
  return `${minutes} m ${pad(secs)} s`;
}

/** Milliseconds, switching to seconds from one second up ("130 ms", "4.80 s", "2 m 05 s"). */
export function formatMs(ms: number | null | undefined): string {
  if (missing(ms)) return NA;
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
  if (Math.abs(ms) < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  return formatDuration(ms / 1000);
}

/** A number with fixed decimals and an optional unit ("97 %", "301.5 W"). */
export function formatNumber(
  value: number | null | undefined,
  digits = 0,
  unit = "",
): string {
  if (missing(value)) return NA;
  const text = value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  return unit ? `${text} ${unit}` : text;
}

/** Energy from joules: Wh below a kWh ("3.7 Wh"), kWh from there ("1.25 kWh"). */
export function formatEnergy(joules: number | null | undefined): string {
  if (missing(joules)) return NA;
  const wh = joules / 3600;
  // 999.96 Wh would round to "1,000.0 Wh": show it as "1.00 kWh".
  return Math.abs(wh) < 999.95 ? formatNumber(wh, 1, "Wh") : formatNumber(wh / 1000, 2, "kWh");
}

/** Changes smaller than this many percent show as flat. */
export const FLAT_TREND_PERCENT = 0.5;

/** The trend marker next to a chart: "▲ +4.2 %", "▼ −4.2 %", "─ 0.1 %", or "─ n/a". */
export function formatTrend(trendPercent: number | null | undefined): string {
  if (missing(trendPercent)) return "─ n/a";
  const magnitude = Math.abs(trendPercent).toFixed(1);
  if (Math.abs(trendPercent) < FLAT_TREND_PERCENT) return `─ ${magnitude} %`;
  return trendPercent > 0 ? `▲ +${magnitude} %` : `▼ −${magnitude} %`;
}

/** Local wall-clock time of an RFC3339 timestamp, with the date when it is not today. */
export function formatTime(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return NA;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return NA;
  const time = date.toLocaleTimeString("en-GB", { hour12: false });
  if (date.toDateString() === now.toDateString()) return time;
  return `${date.toLocaleDateString("en-CA")} ${time}`;
}
