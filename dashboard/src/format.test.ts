import { describe, expect, it } from "vitest";
import { formatBytes, formatDuration, formatEnergy, formatMs, formatNumber, formatTime, formatTrend, NA } from "./format";

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [1023, "1023 B"],
    [1536, "1.5 KiB"],
    [80 * 1024 ** 3, "80.0 GiB"],
    [3 * 1024 ** 4, "3.0 TiB"],
  ])("%d bytes is %s", (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it("shows a missing value as a dash, not 0", () => {
    expect(formatBytes(null)).toBe(NA);
    expect(formatBytes(undefined)).toBe(NA);
    expect(formatBytes(Number.NaN)).toBe(NA);
  });
});

describe("formatDuration", () => {
  it.each([
    [4.25, "4.3 s"],
    [42, "42 s"],
    [125, "2 m 05 s"],
    [3 * 3600 + 7 * 60 + 30, "3 h 07 m"],
    [2 * 86400 + 4 * 3600 + 59, "2 d 4 h"],
  ])("%d seconds is %s", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  it("shows a missing value as a dash", () => {
    expect(formatDuration(null)).toBe(NA);
  });
});

describe("formatMs", () => {
  it.each([
    [130.2, "130 ms"],
    [4800, "4.80 s"],
    [61_500, "1 m 02 s"],
  ])("%d ms is %s", (ms, text) => {
    expect(formatMs(ms)).toBe(text);
  });

  it("shows a missing value as a dash", () => {
    expect(formatMs(null)).toBe(NA);
  });
});

describe("formatNumber", () => {
  it("keeps 0 as 0 and null as a dash", () => {
    expect(formatNumber(0, 0, "%")).toBe("0 %");
    expect(formatNumber(null, 0, "%")).toBe(NA);
  });

  it("rounds to the requested digits with thousands separators", () => {
    expect(formatNumber(301.46, 1, "W")).toBe("301.5 W");
    expect(formatNumber(12345)).toBe("12,345");
  });
});

describe("formatTrend", () => {
  it("marks a rise, a fall and a flat line", () => {
    expect(formatTrend(4.24)).toBe("▲ +4.2 %");
    expect(formatTrend(-4.2)).toBe("▼ −4.2 %");
    expect(formatTrend(0.3)).toBe("─ 0.3 %");
    expect(formatTrend(-0.3)).toBe("─ 0.3 %");
  });

  it("says n/a when the trend is unknown", () => {
    expect(formatTrend(null)).toBe("─ n/a");
  });
});

describe("formatTime", () => {
  it("omits the date for today and adds it otherwise", () => {
    const now = new Date("2026-11-27T12:00:00");
    expect(formatTime(new Date("2026-11-27T10:05:09").toISOString(), now)).toBe("10:05:09");
    expect(formatTime(new Date("2026-11-25T10:05:09").toISOString(), now)).toBe("2026-11-25 10:05:09");
  });

  it("shows a dash for a missing or broken timestamp", () => {
    expect(formatTime(null)).toBe(NA);
    expect(formatTime("not a time")).toBe(NA);
  });
});

describe("formatEnergy", () => {
  it.each([
    [0, "0.0 Wh"],
    [13_487.9, "3.7 Wh"],
    [3_599_000, "999.7 Wh"],
    [3_599_900, "1.00 kWh"],
    [3_600_000, "1.00 kWh"],
    [7.2e9, "2,000.00 kWh"],
  ])("%d J is %s", (joules, text) => {
    expect(formatEnergy(joules)).toBe(text);
  });

  it("shows a missing value as a dash, not 0", () => {
    expect(formatEnergy(null)).toBe(NA);
    expect(formatEnergy(Number.NaN)).toBe(NA);
  });
});
