import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { Energy, EnergyFigures } from "../api";
import { EfficiencyView } from "./EfficiencyPanel";

afterEach(cleanup);

const figures = (joules: number, cost: number | null = null): EnergyFigures => ({
  joules,
  kwh: joules / 3.6e6,
  cost,
  co2_grams: null,
});

const energy = (extra: Partial<Energy> = {}): Energy => ({
  hours: 24,
  start: "2026-12-04T10:00:00Z",
  end: "2026-12-05T10:00:00Z",
  currency: "EUR",
  price_per_kwh: null,
  grams_co2_per_kwh: null,
  total: figures(7.2e6),
  idle: figures(3.6e5),
  today: figures(3.6e6),
  this_week: figures(1.8e7),
  gpus: [
    { gpu_id: 0, joules: 7e6, idle_joules: 3.6e5, cost: null, method: "counter" },
    { gpu_id: 1, joules: 2e5, idle_joules: 0, cost: null, method: "power_integral" },
  ],
  workloads: [{ workload: "llm_inference", joules: 5e6, cost: null }],
  models: [
    {
      model: "qwen2:7b",
      sessions: 10,
      sessions_measured: 8,
      joules: 4000,
      completion_tokens: 1000,
      joules_per_token: 4,
      tokens_per_joule: 0.25,
      tokens_per_second_p50: 61.25,
      cost: null,
      cost_per_million_tokens: null,
    },
    {
      model: "remote-model",
      sessions: 2,
      sessions_measured: 0,
      joules: null,
      completion_tokens: null,
      joules_per_token: null,
      tokens_per_joule: null,
      tokens_per_second_p50: null,
      cost: null,
      cost_per_million_tokens: null,
    },
  ],
  series: [{ hour: "2026-12-05T09:00:00Z", workload: "idle", joules: 3600 }],
  waste: [],
  ...extra,
});

describe("EfficiencyView", () => {
  it("shows J/token and tokens/s per model, with — for what is not known", () => {
    render(<EfficiencyView data={energy()} />);
    const rows = screen.getAllByTestId("efficiency-model-row");
    expect(rows.map((r) => r.textContent)).toEqual([
      "qwen2:7b4.0061.310 (8 measured)—",
      "remote-model——2 (0 measured)—",
    ]);
  });

  it("shows kWh today and this week, the cost only with a price", () => {
    const { rerender } = render(<EfficiencyView data={energy()} />);
    expect(screen.getByTestId("energy-today").textContent).toBe("Today1.00 kWhno price set");
    expect(screen.getByTestId("price-hint")).toBeTruthy();
    rerender(<EfficiencyView data={energy({ price_per_kwh: 0.3, today: figures(3.6e6, 0.3) })} />);
    expect(screen.getByTestId("energy-today").textContent).toBe("Today1.00 kWh0.30 EUR");
    expect(screen.queryByTestId("price-hint")).toBeNull();
  });

  it("marks GPUs whose energy is estimated from power", () => {
    render(<EfficiencyView data={energy()} />);
    expect(screen.getByTestId("energy-estimated").textContent).toContain("≈ GPU 1");
  });

  it("lists idle waste, or says there is none", () => {
    const { rerender } = render(<EfficiencyView data={energy()} />);
    expect(screen.getByTestId("idle-waste").textContent).toBe("No idle waste.");
    const waste = {
      gpu_id: 1,
      since: "2026-12-05T09:00:00Z",
      seconds: 1260,
      memory_used_bytes: 6 * 2 ** 30,
      holders: ["ollama (pid 4242)", "model qwen2:7b"],
      joules: 37800,
    };
    rerender(<EfficiencyView data={energy({ waste: [waste] })} />);
    const item = screen.getByTestId("idle-waste-item").textContent ?? "";
    expect(item).toContain("GPU 1 idle for 21 m 00 s");
    expect(item).toContain("6.0 GiB held by ollama (pid 4242), model qwen2:7b: 10.5 Wh");
  });
});
