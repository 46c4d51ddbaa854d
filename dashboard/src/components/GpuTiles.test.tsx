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

  it("lists a MIG GPU's devices inside its tile, and nothing for a GPU without MIG", () => {
    const gib = 2 ** 30;
    const mig = (index: number, profile: string | null, used: number | null, total: number) => ({
      index,
      uuid: `MIG-${index}`,
      profile,
      gpu_instance_id: index + 1,
      compute_instance_id: 0,
      memory_used_bytes: used,
      memory_total_bytes: total,
      utilization_percent: null,
    });
    const gpus = [
      gpu(0, { mig_devices: [mig(0, "3g.40gb", 20 * gib, 40 * gib), mig(1, null, null, 10 * gib)] }),
      gpu(1, { mig_devices: null }),
    ];
    render(<GpuTiles gpus={gpus} thresholds={DEFAULT_THRESHOLDS} selection={0} onSelect={vi.fn()} />);
    const [first, second] = screen.getAllByTestId("gpu-tile") as HTMLElement[];
    const rows = within(first as HTMLElement).getAllByTestId("mig-device").map((r) => r.textContent);
    expect(rows).toEqual(["MIG 0 3g.40gb 20.0 GiB / 40.0 GiB", "MIG 1 — — / 10.0 GiB"]);
    expect(within(second as HTMLElement).queryByTestId("mig-devices")).toBeNull();
  });
});
