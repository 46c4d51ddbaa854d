import { memo, useMemo } from "react";
import type { ChartData, ChartMetric } from "../api";
import { formatNumber, formatTrend } from "../format";
import { usePeriodic } from "../hooks";
import { MetricChart } from "./MetricChart";

export const RANGES: { label: string; hours: number }[] = [
  { label: "1h", hours: 1 },
  { label: "6h", hours: 6 },
  { label: "24h", hours: 24 },
  { label: "7d", hours: 168 },
];

const METRICS: { metric: ChartMetric; id: string; label: string; unit: string; color: string; digits: number }[] = [
  { metric: "utilization_percent", id: "utilization", label: "Utilization", unit: "%", color: "#3b82f6", digits: 0 },
  { metric: "memory_percent", id: "memory", label: "Memory", unit: "%", color: "#8b5cf6", digits: 0 },
  { metric: "temperature_celsius", id: "temperature", label: "Temperature", unit: "°C", color: "#f97316", digits: 0 },
  { metric: "power_watts", id: "power", label: "Power", unit: "W", color: "#10b981", digits: 0 },
];

/** Points per chart: enough for a smooth line on a wide screen, few enough to redraw cheaply. */
const CHART_POINTS = 300;
const REFRESH_MS = 10_000;

export function chartUrl(gpuId: number, hours: number): string {
  return `/api/chart?gpu_id=${gpuId}&hours=${hours}&points=${CHART_POINTS}`;
}

export function trendClass(trend: number | null | undefined): string {
  const text = formatTrend(trend);
  return text.startsWith("▲") ? "trend-up" : text.startsWith("▼") ? "trend-down" : "trend-flat";
}

export function RangeButtons({ hours, onChange }: { hours: number; onChange: (hours: number) => void }) {
  return (
    <div className="range-buttons" role="group" aria-label="Chart range">
      {RANGES.map((range) => (
        <button
          key={range.hours}
          type="button"
          aria-pressed={range.hours === hours}
          data-testid={`range-${range.label}`}
          onClick={() => onChange(range.hours)}
        >
          {range.label}
        </button>
      ))}
    </div>
  );
}

/** The four history charts of one GPU over the chosen range. */
export const ChartsPanel = memo(function ChartsPanel({ gpuId, hours }: { gpuId: number; hours: number }) {
  const url = chartUrl(gpuId, hours);
  const { data, url: loadedUrl, error } = usePeriodic<ChartData>(url, REFRESH_MS);
  const points = useMemo(() => data?.points ?? [], [data]);
  const fresh = loadedUrl === url;
  return (
    <section
      className="panel charts"
      data-testid="charts"
      data-gpu={gpuId}
      data-range={fresh ? hours : ""}
      data-url={loadedUrl ?? ""}
      aria-busy={!fresh}
    >
      <h2>History — GPU {gpuId}</h2>
      {error && !data ? <p className="error">Could not load history: {error}</p> : null}
      <div className="chart-grid">
        {METRICS.map((m) => {
          const stats = data?.stats[m.metric] ?? null;
          return (
            <article key={m.metric} className="chart-card" data-testid={`chart-${m.id}`}>
              <header>
                <h3>{m.label}</h3>
                <span className={`trend ${trendClass(stats?.trend_percent)}`} data-testid={`trend-${m.id}`}>
                  {formatTrend(stats?.trend_percent)}
                </span>
              </header>
              <MetricChart
                metric={m.metric}
                label={m.label}
                unit={m.unit}
                color={m.color}
                points={points}
                hours={hours}
                start={data?.start ?? null}
                end={data?.end ?? null}
              />
              <dl className="min-avg-max">
                <dt>Min</dt>
                <dd>{formatNumber(stats?.min, m.digits, m.unit)}</dd>
                <dt>Avg</dt>
                <dd>{formatNumber(stats?.avg, m.digits, m.unit)}</dd>
                <dt>Max</dt>
                <dd>{formatNumber(stats?.max, m.digits, m.unit)}</dd>
              </dl>
            </article>
          );
        })}
      </div>
    </section>
  );
});
