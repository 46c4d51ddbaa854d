import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { Energy, EnergyFigures, IdleWaste } from "../api";
import { EfficiencyView, energyUrl, rangeLabel, stackSeries } from "./EfficiencyPanel";

afterEach(cleanup);

const figures = (joules: number, cost: number | null = null): EnergyFigures =>
  ({ joules, kwh: joules / 3.6e6, cost, co2_grams: null }) satisfies EnergyFigures;

const energy = (extra: Partial<Energy> = {}): Energy =>
  ({
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
  }) satisfies Energy;

const cells = (row: HTMLElement): (string | null)[] =>
  within(row)
    .getAllByRole("cell")
    .map((cell) => cell.textContent);

describe("EfficiencyView", () => {
  it("shows J/token and tokens/s side by side per model, — for what is not known", () => {
    render(<EfficiencyView data={energy()} />);
    const rows = screen.getAllByTestId("efficiency-model-row");
    expect(rows.map(cells)).toEqual([
      ["qwen2:7b", "4.00", "61.3", "10 (8 measured)"],
      ["remote-model", "—", "—", "2 (0 measured)"],
    ]);
  });

  it("says nothing about measuring when every session was measured", () => {
    const [model] = energy().models;
    render(<EfficiencyView data={energy({ models: [{ ...model!, sessions_measured: 10 }] })} />);
    expect(cells(screen.getByTestId("efficiency-model-row"))).toEqual(["qwen2:7b", "4.00", "61.3", "10"]);
  });

  it("shows energy today and this week without a cost, and says how to get one", () => {
    render(<EfficiencyView data={energy()} />);
    expect(screen.getByTestId("energy-today").textContent).toBe("Today1.00 kWh");
    expect(screen.getByTestId("energy-week").textContent).toBe("This week5.00 kWh");
    expect(screen.getByTestId("price-hint").textContent).toContain("energy.price_per_kwh");
    expect(screen.queryByText(/EUR/)).toBeNull();
  });

  it("shows the cost with its currency once a price is set", () => {
    const priced = energy({
      price_per_kwh: 0.3,
      today: figures(3.6e6, 0.3),
      this_week: figures(1.8e7, 1.5),
      models: energy().models.map((m) => ({ ...m, cost_per_million_tokens: m.joules === null ? null : 333.33 })),
    });
    render(<EfficiencyView data={priced} />);
    expect(screen.getByTestId("energy-today").textContent).toBe("Today1.00 kWh0.30 EUR");
    expect(screen.getByTestId("energy-week").textContent).toBe("This week5.00 kWh1.50 EUR");
    expect(screen.queryByTestId("price-hint")).toBeNull();
    expect(screen.getByText("EUR per 1M tokens")).toBeTruthy();
    expect(screen.getAllByTestId("efficiency-model-row").map((row) => cells(row)[4])).toEqual(["333.33", "—"]);
  });

  it("shows small figures in Wh rather than 0.00 kWh", () => {
    render(<EfficiencyView data={energy({ today: figures(13_487.9) })} />);
    expect(screen.getByTestId("energy-today").textContent).toBe("Today3.7 Wh");
  });

  it("marks a GPU whose energy is integrated from power as estimated", () => {
    render(<EfficiencyView data={energy()} />);
    const [counter, integral] = screen.getAllByTestId("energy-gpu");
    expect(counter!.textContent).not.toContain("≈");
    expect(counter!.getAttribute("title")).toBeNull();
    expect(integral!.textContent).toBe("GPU 1 ≈ 55.6 Wh idle 0.0 Wh");
    expect(integral!.getAttribute("title")).toMatch(/integrated from power readings/);
  });

  it("lists idle waste, or says there is none", () => {
    const { rerender } = render(<EfficiencyView data={energy()} />);
    expect(screen.getByTestId("idle-waste").textContent).toBe("No idle waste.");
    const waste = {
      gpu_id: 1,
      since: null,
      seconds: 1260,
      memory_used_bytes: 6 * 2 ** 30,
      holders: ["ollama (pid 4242)", "model qwen2:7b"],
      joules: 37_800,
    } satisfies IdleWaste;
    rerender(<EfficiencyView data={energy({ waste: [waste, { ...waste, gpu_id: 2, holders: [], joules: null }] })} />);
    const rows = screen.getAllByTestId("idle-waste-item");
    expect(rows.map(cells)).toEqual([
      ["1", "21 m 00 s", "—", "6.0 GiB", "ollama (pid 4242), model qwen2:7b", "10.5 Wh"],
      ["2", "21 m 00 s", "—", "6.0 GiB", "—", "—"],
    ]);
  });

  it("names the range it covers, and is busy until it has the range asked for", () => {
    const { rerender } = render(<EfficiencyView data={null} />);
    expect(screen.getByTestId("efficiency").getAttribute("aria-busy")).toBe("true");
    rerender(<EfficiencyView data={energy({ hours: 168 })} loading />);
    expect(screen.getByTestId("efficiency").getAttribute("data-range")).toBe("");
    rerender(<EfficiencyView data={energy({ hours: 168 })} />);
    expect(screen.getByTestId("efficiency").getAttribute("data-range")).toBe("168");
    expect(screen.getByRole("heading", { level: 2 }).textContent).toBe("Efficiency · last 7d");
    expect(energyUrl(6)).toBe("/api/energy?hours=6");
    expect(rangeLabel(48)).toBe("48h");
  });
});

describe("stackSeries", () => {
  it("gives one Wh stack per workload over the hours, idle at the bottom and 0 for gaps", () => {
    const stacked = stackSeries([
      { hour: "2026-12-05T10:00:00Z", workload: "llm_inference", joules: 7200 },
      { hour: "2026-12-05T09:00:00Z", workload: "llm_inference", joules: 3600 },
      { hour: "2026-12-05T09:00:00Z", workload: "idle", joules: 1800 },
      { hour: "2026-12-05T10:00:00Z", workload: "unattributed", joules: 360 },
      { hour: null, workload: "gaming", joules: 1 },
    ]);
    expect(stacked).toEqual({
      hours: ["2026-12-05T09:00:00Z", "2026-12-05T10:00:00Z"],
      stacks: [
        { workload: "idle", wh: [0.5, 0] },
        { workload: "unattributed", wh: [0, 0.1] },
        { workload: "llm_inference", wh: [1, 2] },
      ],
    });
  });
});
