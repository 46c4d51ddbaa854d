import type { ReactNode } from "react";
import type { Energy, EnergyFigures, HourEnergy } from "../api";
import { Chart, GRID_COLOR, TICK_COLOR, useChart } from "../charts";
import { formatBytes, formatDuration, formatNumber, formatTime, NA } from "../format";
import { usePeriodic } from "../hooks";

const REFRESH_MS = 30_000;
const WORKLOAD_COLORS: Record<string, string> = {
  llm_inference: "#3b82f6",
  ml_training: "#a855f7",
  gaming: "#22c55e",
  general_compute: "#f97316",
  idle: "#9ca3af",
  unattributed: "#6b7280",
};

/** Energy, efficiency and cost over the last 24 hours (GET /api/energy; docs/energy.md). */
export function EfficiencyPanel() {
  const energy = usePeriodic<Energy>("/api/energy?hours=24", REFRESH_MS);
  return (
    <EfficiencyView data={energy.data}>
      <WorkloadChart series={energy.data?.series ?? []} />
    </EfficiencyView>
  );
}

function Figures({ label, figures, currency, testId }: { label: string; figures: EnergyFigures; currency: string; testId: string }) {
  return (
    <div className="stat-card" data-testid={testId}>
      <span className="stat-label">{label}</span>
      <span className="stat-value">{formatNumber(figures.kwh, 2, "kWh")}</span>
      <span className="muted">
        {figures.cost !== null ? `${formatNumber(figures.cost, 2)} ${currency}` : "no price set"}
        {figures.co2_grams !== null ? ` · ${formatNumber(figures.co2_grams / 1000, 2, "kg CO₂")}` : ""}
      </span>
    </div>
  );
}

/** The panel for one /api/energy answer (``data`` null until the first); ``children`` is the
 * energy-by-workload chart. */
export function EfficiencyView({ data, children }: { data: Energy | null; children?: ReactNode }) {
  if (data === null) {
    return (
      <section className="panel efficiency" data-testid="efficiency">
        <h2>Efficiency</h2>
        <p className="muted">Waiting for the first energy figures…</p>
      </section>
    );
  }
  const estimated = data.gpus.filter((g) => g.method === "power_integral").map((g) => g.gpu_id);
  return (
    <section className="panel efficiency" data-testid="efficiency">
      <h2>Efficiency</h2>
      <div className="stat-cards">
        <Figures label="Today" figures={data.today} currency={data.currency} testId="energy-today" />
        <Figures label="This week" figures={data.this_week} currency={data.currency} testId="energy-week" />
        <Figures label="Idle (24 h)" figures={data.idle} currency={data.currency} testId="energy-idle" />
      </div>
      {data.price_per_kwh === null ? (
        <p className="muted" data-testid="price-hint">
          Set <code>energy.price_per_kwh</code> (and <code>currency</code>) to see what it costs.
        </p>
      ) : null}
      {estimated.length > 0 ? (
        <p className="muted" data-testid="energy-estimated" title="Energy integrated from power readings: these GPUs have no energy counter">
          ≈ GPU {estimated.join(", ")}: estimated from power readings.
        </p>
      ) : null}
      <div className="two-col">
        <div className="table-wrap">
          <h3>Per model</h3>
          {data.models.length === 0 ? (
            <p className="muted">No LLM sessions in the last 24 hours.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th>Model</th>
                  <th>J/token</th>
                  <th>tokens/s (p50)</th>
                  <th>sessions</th>
                  <th>per 1M tokens</th>
                </tr>
              </thead>
              <tbody>
                {data.models.map((m) => (
                  <tr key={m.model} data-testid="efficiency-model-row">
                    <td>{m.model}</td>
                    <td data-testid="joules-per-token">{formatNumber(m.joules_per_token, 2)}</td>
                    <td>{formatNumber(m.tokens_per_second_p50, 1)}</td>
                    <td>
                      {m.sessions}
                      {m.sessions_measured < m.sessions ? <span className="muted"> ({m.sessions_measured} measured)</span> : null}
                    </td>
                    <td>{m.cost_per_million_tokens !== null ? `${formatNumber(m.cost_per_million_tokens, 2)} ${data.currency}` : NA}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
        <div>
          <h3>Energy by workload (Wh per hour)</h3>
          {children}
        </div>
      </div>
      <h3>Idle waste</h3>
      {data.waste.length === 0 ? (
        <p className="muted" data-testid="idle-waste">
          No idle waste.
        </p>
      ) : (
        <ul data-testid="idle-waste">
          {data.waste.map((w) => (
            <li key={w.gpu_id} data-testid="idle-waste-item">
              GPU {w.gpu_id} idle for {formatDuration(w.seconds)} (since {formatTime(w.since)}) with{" "}
              {formatBytes(w.memory_used_bytes)} held by {w.holders.join(", ")}:{" "}
              {formatNumber(w.joules === null ? null : w.joules / 3600, 1, "Wh")}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

type BarChart = Chart<"bar", number[], string>;

/** Stacked bars: each hour's energy by workload, idle included. */
function WorkloadChart({ series }: { series: HourEnergy[] }) {
  const canvas = useChart<BarChart, HourEnergy[]>(
    (element) =>
      new Chart<"bar", number[], string>(element, {
        type: "bar",
        data: { labels: [], datasets: [] },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          plugins: { legend: { labels: { color: TICK_COLOR } } },
          scales: {
            x: { stacked: true, grid: { color: GRID_COLOR }, ticks: { color: TICK_COLOR } },
            y: { stacked: true, beginAtZero: true, grid: { color: GRID_COLOR }, ticks: { color: TICK_COLOR } },
          },
        },
      }),
    (chart, data) => {
      const hours = [...new Set(data.map((x) => x.hour ?? ""))].sort();
      const workloads = [...new Set(data.map((x) => x.workload))].sort();
      chart.data.labels = hours.map((h) => new Date(h).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" }));
      chart.data.datasets = workloads.map((workload) => ({
        label: workload,
        backgroundColor: WORKLOAD_COLORS[workload] ?? "#94a3b8",
        data: hours.map((h) => {
          const point = data.find((x) => x.hour === h && x.workload === workload);
          return point ? point.joules / 3600 : 0;
        }),
      }));
    },
    series,
  );
  return (
    <div className="chart-box" data-testid="workload-energy-chart">
      <canvas ref={canvas} role="img" aria-label="Energy by workload per hour" />
    </div>
  );
}
