import { cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { Fleet, FleetGpu, FleetHost } from "../api";
import { FleetView } from "./FleetPage";

afterEach(cleanup);

const gpu = (id: number, extra: Partial<FleetGpu> = {}): FleetGpu => ({
  gpu_id: id,
  name: "NVIDIA H100",
  uuid: `GPU-${id}`,
  utilization_percent: 90,
  memory_used_bytes: 40 * 2 ** 30,
  memory_total_bytes: 80 * 2 ** 30,
  temperature_celsius: 60,
  power_watts: 500,
  power_limit_watts: 700,
  health: "ok",
  throttle_reasons: [],
  processes: 1,
  idle: false,
  idle_memory_held: false,
  hot: false,
  throttled: false,
  ...extra,
});

const host = (name: string, extra: Partial<FleetHost> = {}): FleetHost => ({
  instance: `${name}:9090`,
  host: name,
  up: true,
  last_seen: "2026-12-05T10:00:00Z",
  version: "0.2.0",
  driver_version: "550.54.15",
  cuda_version: "12.4",
  url: `http://${name}:8010`,
  gpus: [gpu(0)],
  models: [{ model: "qwen2:7b", vram_bytes: 5 * 2 ** 30, tokens_per_second_p50: 61.5, ttft_ms_p50: 120 }],
  power_watts: 500,
  energy_joules_24h: 3.6e7,
  cost_24h: 3,
  ...extra,
});

const fleet = (hosts: FleetHost[], extra: Partial<Fleet> = {}): Fleet => ({
  configured: true,
  prometheus_url: "http://prom:9090",
  fetched_at: "2026-12-05T10:00:00Z",
  age_seconds: 1,
  error: null,
  currency: "EUR",
  hosts,
  ...extra,
});

describe("FleetView", () => {
  it("shows every host with its GPUs, models, link and energy", () => {
    const down = host("box-b", { up: false, gpus: [gpu(0), gpu(1, { idle: true, idle_memory_held: true, hot: true, temperature_celsius: null })], power_watts: null, models: [] });
    render(<FleetView data={fleet([host("box-a"), down])} error={null} />);
    const cards = screen.getAllByTestId("fleet-host");
    expect(cards.map((c) => c.dataset.host)).toEqual(["box-a", "box-b"]);
    const a = within(cards[0] as HTMLElement);
    expect(a.getByTestId("fleet-host-link").getAttribute("href")).toBe("http://box-a:8010");
    expect(a.getByTestId("fleet-host-status").textContent).toBe("up");
    expect(a.getByTestId("fleet-model").textContent).toContain("61.5 tok/s");
    expect(a.getByText(/10\.00 kWh in 24 h · 3\.00 EUR/)).toBeTruthy();
    const b = within(cards[1] as HTMLElement);
    expect(b.getByTestId("fleet-host-status").textContent).toBe("down");
    expect(b.getByText(/last seen/)).toBeTruthy();
    expect(b.getAllByTestId("fleet-gpu-flags")[1]?.textContent).toBe("idle, memory held · hot");
    expect(b.getAllByTestId("fleet-gpu")[1]?.textContent).toContain("—");
    expect(b.getByText(/— now/)).toBeTruthy();
  });

  it("filters by text and by flag, and sorts", () => {
    const hot = host("box-c", { gpus: [gpu(0, { hot: true })], power_watts: 900 });
    render(<FleetView data={fleet([host("box-a"), hot, host("box-b", { up: false })])} error={null} />);
    fireEvent.change(screen.getByTestId("fleet-show"), { target: { value: "hot" } });
    expect(screen.getAllByTestId("fleet-host").map((c) => c.dataset.host)).toEqual(["box-c"]);
    fireEvent.change(screen.getByTestId("fleet-show"), { target: { value: "all" } });
    fireEvent.change(screen.getByTestId("fleet-filter"), { target: { value: "BOX-B" } });
    expect(screen.getAllByTestId("fleet-host").map((c) => c.dataset.host)).toEqual(["box-b"]);
    fireEvent.change(screen.getByTestId("fleet-filter"), { target: { value: "" } });
    fireEvent.change(screen.getByTestId("fleet-sort"), { target: { value: "power" } });
    expect(screen.getAllByTestId("fleet-host")[0]?.dataset.host).toBe("box-c");
  });

  it("says when Prometheus failed, and keeps the last answer", () => {
    render(<FleetView data={fleet([host("box-a")], { error: "Prometheus at http://prom:9090 did not answer", age_seconds: 42 })} error={null} />);
    expect(screen.getByTestId("fleet-error").textContent).toContain("from 42 s ago");
    expect(screen.getAllByTestId("fleet-host")).toHaveLength(1);
  });

  it("tells how to turn it on", () => {
    render(<FleetView data={fleet([], { configured: false, error: "no fleet: set fleet.prometheus_url" })} error={null} />);
    expect(screen.getByTestId("fleet-not-configured").textContent).toContain("fleet.prometheus_url");
  });
});
