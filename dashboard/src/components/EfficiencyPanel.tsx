import { memo, type ReactNode, useMemo } from "react";
import type { Energy, EnergyFigures, HourEnergy } from "../api";
import { Chart, GRID_COLOR, TICK_COLOR, useChart } from "../charts";
import { formatBytes, formatDuration, formatEnergy, formatNumber, formatTime, NA } from "../format";
import { usePeriodic } from "../hooks";
import { RANGES } from "./ChartsPanel";
import { tickLabel } from "./MetricChart";

/** The LLM panel's stats cadence: J/token moves with every finished session. */
const REFRESH_MS = 10_000;
const NO_SERIES: HourEnergy[] = [];
const WORKLOAD_COLORS: Record<string, string> = {
  idle: "#9ca3af",
  unattributed: "#6b7280",
  llm_inference: "#3b82f6",
  ml_training: "#a855f7",
  gaming: "#22c55e",
  general_compute: "#f97316",
};
/** Stacked from the bottom: idle and unattributed first, then the workloads by name. */
const BOTTOM_WORKLOADS = ["idle", "unattributed"];
export const ESTIMATED_TITLE =
  "Estimated: this GPU has no energy counter, so its energy is integrated from power readings";

export function energyUrl(hours: number): string {
  return `/api/energy?hours=${hours}`;
}

/** "24h", as the range picker names it. */
export function rangeLabel(hours: number): string {
  return RANGES.find((range) => range.hours === hours)?.label ?? `${formatNumber(hours, 0)}h`;
}

/** Energy, efficiency and cost over the range picked for the history charts (GET /api/energy). */
export const EfficiencyPanel = memo(function EfficiencyPanel({ hours }: { hours: number }) {
  const url = energyUrl(hours);
  const { data, url: loadedUrl, error } = usePeriodic<Energy>(url, REFRESH_MS);
  const series = data?.series ?? NO_SERIES;
  const chartHours = data?.hours ?? hours;
  return (
    <EfficiencyView data={data} error={error} loading={loadedUrl !== url}>
      <WorkloadChart series={series} hours={chartHours} />
    </EfficiencyView>
  );
});

function Figures(props: { label: string; figures: EnergyFigures; currency: string; testId: string }) {
  const { label, figures, currency, testId } = props;
  const extra = [
    figures.cost === null ? null : `${formatNumber(figures.cost, 2)} ${currency}`,
    figures.co2_grams === null ? null : formatNumber(figures.co2_grams / 1000, 2, "kg CO₂"),
  ].filter((text) => text !== null);
  return (
    <div className="stat-card" data-testid={testId}>
      <span className="stat-label">{label}</span>
      <span className="stat-value">{formatEnergy(figures.joules)}</span>
      {extra.length > 0 ? <span className="muted">{extra.join(" · ")}</span> : null}
    </div>
  );
}

interface EfficiencyViewProps {
  /** One /api/energy answer, null until the first. */
  data: Energy | null;
  error?: string | null;
  /** A new range is being fetched: `data` is still the previous range's. */
  loading?: boolean;
  /** The energy-by-workload chart (a canvas, so left out where there is none). */
  children?: ReactNode;
}

export function EfficiencyView({ data, error = null, loading = false, children }: EfficiencyViewProps) {
  const range = data === null ? "" : rangeLabel(data.hours);
  return (
    <section
      className="panel efficiency"
      data-testid="efficiency"
      data-range={data !== null && !loading ? data.hours : ""}
      aria-busy={data === null || loading}
    >
      <h2>
        Efficiency {range ? <span className="muted">· last {range}</span> : null}
      </h2>
      {data === null ? (
        <p className={error ? "error" : "muted"}>
          {error ? `Could not load energy figures: ${error}` : "Waiting for the first energy figures…"}
        </p>
      ) : (
        <EnergyFiguresView data={data} range={range}>
          {children}
        </EnergyFiguresView>
      )}
    </section>
  );
}

function EnergyFiguresView({ data, range, children }: { data: Energy; range: string; children?: ReactNode }) {
  const priced = data.price_per_kwh !== null;
  return (
    <>
      <div className="stat-cards">
        <Figures label="Today" figures={data.today} currency={data.currency} testId="energy-today" />
        <Figures label="This week" figures={data.this_week} currency={data.currency} testId="energy-week" />
        <Figures label={`Last ${range}`} figures={data.total} currency={data.currency} testId="energy-total" />
        <Figures label={`Idle, last ${range}`} figures={data.idle} currency={data.currency} testId="energy-idle" />
      </div>
      {priced ? null : (
        <p className="muted" data-testid="price-hint">
          Set <code>energy.price_per_kwh</code> in the config to see what this costs.
        </p>
      )}
      {data.gpus.length > 0 ? (
        <ul className="energy-gpus" data-testid="energy-gpus">
          {data.gpus.map((gpu) => {
            const estimated = gpu.method === "power_integral";
            return (
              <li
                key={gpu.gpu_id}
                data-testid="energy-gpu"
                data-estimated={estimated}
                title={estimated ? ESTIMATED_TITLE : undefined}
              >
                GPU {gpu.gpu_id}{" "}
                <strong>
                  {estimated ? <span className="estimated">≈ </span> : null}
                  {formatEnergy(gpu.joules)}
                </strong>
                <span className="muted">
                  {" "}
                  idle {formatEnergy(gpu.idle_joules)}
                  {gpu.cost === null ? "" : ` · ${formatNumber(gpu.cost, 2)} ${data.currency}`}
                </span>
              </li>
            );
          })}
        </ul>
      ) : null}
      <div className="two-col">
        <div className="table-wrap">
          <h3>Per model</h3>
          {data.models.length === 0 ? (
            <p className="muted" data-testid="efficiency-no-models">
              No LLM sessions in the last {range}.
            </p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th>Model</th>
                  <th title="Joules per completion token">J/token</th>
                  <th title="Median decode speed">tokens/s (p50)</th>
                  <th>Sessions</th>
                  {priced ? <th>{data.currency} per 1M tokens</th> : null}
                </tr>
              </thead>
              <tbody>
                {data.models.map((m) => (
                  <tr key={m.model} data-testid="efficiency-model-row">
                    <td data-testid="efficiency-model">{m.model}</td>
                    <td data-testid="joules-per-token">{formatNumber(m.joules_per_token, 2)}</td>
                    <td data-testid="tokens-per-second">{formatNumber(m.tokens_per_second_p50, 1)}</td>
                    <td>
                      {m.sessions}
                      {m.sessions_measured < m.sessions ? (
                        <span className="muted" title="Sessions whose energy is known">
                          {" "}
                          ({m.sessions_measured} measured)
                        </span>
                      ) : null}
                    </td>
                    {priced ? <td>{formatNumber(m.cost_per_million_tokens, 2)}</td> : null}
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
        <div>
          <h3>Energy by workload (Wh per hour)</h3>
          {data.series.length === 0 ? <p className="muted">No energy recorded in the last {range}.</p> : null}
          {children}
        </div>
      </div>
      <h3>Idle waste</h3>
      {data.waste.length === 0 ? (
        <p className="muted" data-testid="idle-waste">
          No idle waste.
        </p>
      ) : (
        <div className="table-wrap">
          <table data-testid="idle-waste">
            <caption>GPUs idle now with memory still held</caption>
            <thead>
              <tr>
                <th>GPU</th>
                <th>Idle for</th>
                <th>Since</th>
                <th>Memory held</th>
                <th>Held by</th>
                <th>Energy</th>
              </tr>
            </thead>
            <tbody>
              {data.waste.map((w) => (
                <tr key={w.gpu_id} data-testid="idle-waste-item">
                  <td>{w.gpu_id}</td>
                  <td>{formatDuration(w.seconds)}</td>
                  <td>{formatTime(w.since)}</td>
                  <td>{formatBytes(w.memory_used_bytes)}</td>
                  <td className="reason">{w.holders.length > 0 ? w.holders.join(", ") : NA}</td>
                  <td>{formatEnergy(w.joules)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

/** Hours (sorted) and workloads (idle and unattributed at the bottom of the stack) of a series,
 * with each workload's Wh per hour, 0 where an hour has no row for it. */
export function stackSeries(series: HourEnergy[]): { hours: string[]; stacks: { workload: string; wh: number[] }[] } {
  const byKey = new Map<string, number>();
  const hours = new Set<string>();
  const workloads = new Set<string>();
  for (const row of series) {
    if (row.hour === null) continue;
    hours.add(row.hour);
    workloads.add(row.workload);
    const key = `${row.hour}|${row.workload}`;
    byKey.set(key, (byKey.get(key) ?? 0) + row.joules / 3600);
  }
  const sortedHours = [...hours].sort((a, b) => Date.parse(a) - Date.parse(b));
  const rank = (w: string): number => {
    const index = BOTTOM_WORKLOADS.indexOf(w);
    return index === -1 ? BOTTOM_WORKLOADS.length : index;
  };
  const sortedWorkloads = [...workloads].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return {
    hours: sortedHours,
    stacks: sortedWorkloads.map((workload) => ({
      workload,
      wh: sortedHours.map((hour) => byKey.get(`${hour}|${workload}`) ?? 0),
    })),
  };
}

type BarChart = Chart<"bar", number[], string>;

/** Stacked bars: each hour's energy by workload, idle included. */
function WorkloadChart({ series, hours }: { series: HourEnergy[]; hours: number }) {
  const canvas = useChart<BarChart, { series: HourEnergy[]; hours: number }>(
    (element) =>
      new Chart<"bar", number[], string>(element, {
        type: "bar",
        data: { labels: [], datasets: [] },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          plugins: {
            legend: { labels: { color: TICK_COLOR, boxWidth: 12 } },
            tooltip: {
              callbacks: { label: (item) => `${item.dataset.label ?? ""}: ${formatNumber(item.parsed.y, 1, "Wh")}` },
            },
          },
          scales: {
            x: { stacked: true, grid: { color: GRID_COLOR }, ticks: { color: TICK_COLOR, maxTicksLimit: 12 } },
            y: {
              stacked: true,
              beginAtZero: true,
              grid: { color: GRID_COLOR },
              ticks: { color: TICK_COLOR },
              title: { display: true, text: "Wh", color: TICK_COLOR },
            },
          },
        },
      }),
    (chart, data) => {
      const { hours: rows, stacks } = stackSeries(data.series);
      chart.data.labels = rows.map((hour) => tickLabel(Date.parse(hour), data.hours));
      chart.data.datasets = stacks.map(({ workload, wh }) => ({
        label: workload,
        backgroundColor: WORKLOAD_COLORS[workload] ?? "#94a3b8",
        maxBarThickness: 48,
        data: wh,
      }));
    },
    useMemo(() => ({ series, hours }), [series, hours]),
  );
  return (
    <div className="chart-box" data-testid="workload-energy-chart">
      <canvas ref={canvas} role="img" aria-label="Energy by workload per hour" />
    </div>
  );
}
