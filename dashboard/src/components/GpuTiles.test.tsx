import { cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { GpuReading } from "../api";
import { DEFAULT_THRESHOLDS } from "../thresholds";
import { GpuTiles } from "./GpuTiles";

afterEach(cleanup);

// Only what a tile reads (checked against the API's type); the other readings are left out.
const gpu = (id: number, extra: Partial<GpuReading> = {}) =>
  ({
    gpu_id: id,
    name: `GPU model ${id}`,
    up: true,
    error: null,
    health: "ok",
    health_reasons: [],
    utilization_percent: 50,
    memory_percent: 40,
    temperature_celsius: 60,
    power_watts: 200,
    power_limit_watts: 400,
    ...extra,
  }) satisfies Partial<GpuReading> as unknown as GpuReading;

describe("GpuTiles", () => {
  it("shows every GPU with its figures and health, and selects one on a click", () => {
    const onSelect = vi.fn();
    const gpus = [
      gpu(0),
      gpu(1, { health: "degraded", health_reasons: ["a memory row remap is pending"], temperature_celsius: null }),
    ];
    render(<GpuTiles gpus={gpus} thresholds={DEFAULT_THRESHOLDS} selection={0} onSelect={onSelect} />);
    const tiles = screen.getAllByTestId("gpu-tile");
    expect(tiles).toHaveLength(2);
    expect(tiles[0]?.getAttribute("aria-pressed")).toBe("true");
    const second = within(tiles[1] as HTMLElement);
    expect(second.getByTestId("health-badge").textContent).toBe("degraded");
    expect(second.getByTestId("health-badge").title).toBe("a memory row remap is pending");
    expect(second.getByTestId("tile-temp").textContent).toBe("temp —");
    expect(second.getByTestId("tile-util").textContent).toBe("util 50 %");
    fireEvent.click(tiles[1] as HTMLElement);
    expect(onSelect).toHaveBeenCalledWith(1);
  });
});
