import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { GpuReading } from "../api";
import { DEFAULT_THRESHOLDS } from "../thresholds";
import { GpuGauges } from "./GpuGauges";

afterEach(cleanup);

// Only what the gauges read (checked against the API's type); the other readings are left out.
const reading = {
  gpu_id: 0,
  name: "Simulated GPU",
  up: true,
  error: null,
  health: "ok",
  health_reasons: [],
  utilization_percent: 97,
  memory_used_bytes: 75 * 1024 ** 3,
  memory_total_bytes: 80 * 1024 ** 3,
  memory_percent: 93.75,
  temperature_celsius: 82,
  power_watts: 0,
  power_limit_watts: 350,
  processes: [],
} satisfies Partial<GpuReading> as unknown as GpuReading;

describe("GpuGauges", () => {
  it("shows each value as text and colours by the thresholds", () => {
    render(<GpuGauges gpu={reading} thresholds={DEFAULT_THRESHOLDS} timestamp="2026-11-27T10:00:00Z" />);
    expect(screen.getByTestId("gauge-utilization-value").textContent).toBe("97 %");
    expect(screen.getByTestId("gauge-memory-value").textContent).toBe("94 %");
    expect(screen.getByTestId("gauge-memory").dataset.level).toBe("crit");
    expect(screen.getByTestId("gauge-temperature").dataset.level).toBe("warn");
    expect(screen.getByTestId("gauge-temperature-value").textContent).toBe("82 °C");
    expect(screen.getByTestId("gauge-power-value").textContent).toBe("0 W");
    expect(screen.getByTestId("gpu-gauges").dataset.snapshotTimestamp).toBe("2026-11-27T10:00:00Z");
  });

  it("shows a dash, not 0, for readings the GPU did not give", () => {
    const lost: GpuReading = {
      ...reading,
      up: false,
      error: "GPU is lost",
      utilization_percent: null,
      memory_used_bytes: null,
      memory_total_bytes: null,
      memory_percent: null,
      temperature_celsius: null,
      power_watts: null,
    };
    render(<GpuGauges gpu={lost} thresholds={DEFAULT_THRESHOLDS} timestamp="t" />);
    for (const id of ["utilization", "memory", "temperature", "power"]) {
      expect(screen.getByTestId(`gauge-${id}-value`).textContent).toBe("—");
      expect(screen.getByTestId(`gauge-${id}`).dataset.level).toBe("na");
    }
    expect(screen.getByRole("status").textContent).toContain("GPU is lost");
  });

  it("badges the health verdict and lists its reasons", () => {
    const reasons = ["a memory row remap is pending: reset the GPU to apply it"];
    render(
      <GpuGauges
        gpu={{ ...reading, health: "degraded", health_reasons: reasons }}
        thresholds={DEFAULT_THRESHOLDS}
        timestamp="t"
      />,
    );
    const badge = screen.getByTestId("health-badge");
    expect(badge.textContent).toBe("degraded");
    expect(badge.className).toContain("health-degraded");
    expect(screen.getByTestId("health-reasons").textContent).toBe(reasons[0]);
  });

  it("shows no badge before the GPU was judged", () => {
    render(<GpuGauges gpu={{ ...reading, health: null }} thresholds={DEFAULT_THRESHOLDS} timestamp="t" />);
    expect(screen.queryByTestId("health-badge")).toBeNull();
  });
});
