import { describe, expect, it } from "vitest";
import { DEFAULT_THRESHOLDS, memoryLevel, powerLevel, temperatureLevel, utilizationLevel } from "./thresholds";

describe("gauge levels", () => {
  it("turns temperature red above the alert threshold and amber near it", () => {
    expect(temperatureLevel(70, DEFAULT_THRESHOLDS)).toBe("ok");
    expect(temperatureLevel(80, DEFAULT_THRESHOLDS)).toBe("warn");
    expect(temperatureLevel(85, DEFAULT_THRESHOLDS)).toBe("warn");
    expect(temperatureLevel(85.5, DEFAULT_THRESHOLDS)).toBe("crit");
  });

  it("turns memory red above 90 % by default and amber from 80 %", () => {
    expect(memoryLevel(79.9, DEFAULT_THRESHOLDS)).toBe("ok");
    expect(memoryLevel(80, DEFAULT_THRESHOLDS)).toBe("warn");
    expect(memoryLevel(90.1, DEFAULT_THRESHOLDS)).toBe("crit");
  });

  it("follows the thresholds the API reports", () => {
    const strict = { temp_threshold_celsius: 60, memory_threshold_percent: 50 };
    expect(temperatureLevel(70, strict)).toBe("crit");
    expect(memoryLevel(45, strict)).toBe("warn");
  });

  it("gives n/a for a missing reading, never a colour for 0", () => {
    expect(temperatureLevel(null, DEFAULT_THRESHOLDS)).toBe("na");
    expect(memoryLevel(null, DEFAULT_THRESHOLDS)).toBe("na");
    expect(utilizationLevel(null)).toBe("na");
    expect(powerLevel(null, 350)).toBe("na");
    expect(utilizationLevel(0)).toBe("ok");
  });

  it("warns on power only close to the board limit", () => {
    expect(powerLevel(300, 350)).toBe("ok");
    expect(powerLevel(340, 350)).toBe("warn");
    expect(powerLevel(340, null)).toBe("ok");
  });
});
