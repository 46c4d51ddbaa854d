import { useMemo } from "react";
import type { ChartMetric, ChartPoint } from "../api";
import { Chart, GRID_COLOR, TICK_COLOR, useChart } from "../charts";
import { formatNumber } from "../format";

type XY = { x: number; y: number | null };
type LineChart = Chart<"line", XY[]>;

export interface MetricChartProps {
  metric: ChartMetric;
  label: string;
  unit: string;
  color: string;
  points: ChartPoint[];
  /** Range in hours; ticks show dates from a day up. */
  hours: number;
  /** The window the API answered for (RFC3339); the x axis always spans all of it. */
  start: string | null;
  end: string | null;
}

interface Shown {
  points: ChartPoint[];
  hours: number;
  start: string | null;
  end: string | null;
}

function series(points: ChartPoint[], metric: ChartMetric, key: "min" | "avg" | "max"): XY[] {
  return points.map((point) => ({ x: Date.parse(point.timestamp), y: point[metric]?.[key] ?? null }));
}

/** An x-axis label: the time, with the day from ranges over a day. */
export function tickLabel(ms: number, hours: number): string {
  const date = new Date(ms);
  if (hours > 24) return date.toLocaleDateString("en-CA", { month: "2-digit", day: "2-digit" }) + " " + date.getHours() + "h";
  return date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
}

/** Min/max band with the average line over it; the tooltip gives exact time and values. */
export function MetricChart({ metric, label, unit, color, points, hours, start, end }: MetricChartProps) {
  const canvas = useChart<LineChart, Shown>(
    (element) =>
      new Chart<"line", XY[]>(element, {
        type: "line",
        data: {
          datasets: [
            { label: "max", data: [], borderWidth: 0, pointRadius: 0, fill: false },
            {
              label: "min",
              data: [],
              borderWidth: 0,
              pointRadius: 0,
              fill: "-1",
              backgroundColor: `${color}33`,
            },
            { label: "avg", data: [], borderColor: color, borderWidth: 1.5, pointRadius: 0, fill: false },
          ],
        },
        options: {
          animation: false,
          parsing: false,
          normalized: true,
          spanGaps: false,
          responsive: true,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          plugins: {
            legend: { display: false },
            tooltip: {
              callbacks: {
                title: (items) => {
                  const x = items[0]?.parsed.x;
                  return x === undefined || x === null ? "" : new Date(x).toLocaleString();
                },
                label: (item) => `${label} ${item.dataset.label}: ${formatNumber(item.parsed.y, 1, unit)}`,
              },
            },
          },
          scales: {
            x: {
              type: "linear",
              grid: { color: GRID_COLOR },
              ticks: { color: TICK_COLOR, maxTicksLimit: 6, callback: (value) => tickLabel(Number(value), hours) },
            },
            y: { beginAtZero: true, grid: { color: GRID_COLOR }, ticks: { color: TICK_COLOR } },
          },
        },
      }),
    (chart, data) => {
      const [max, min, avg] = chart.data.datasets;
      if (max) max.data = series(data.points, metric, "max");
      if (min) min.data = series(data.points, metric, "min");
      if (avg) {
        avg.data = series(data.points, metric, "avg");
        // A lone bucket draws no line; show it as a dot until there are two.
        avg.pointRadius = data.points.length < 2 ? 3 : 0;
      }
      const x = chart.options.scales?.x;
      if (x) {
        x.min = data.start ? Date.parse(data.start) : undefined;
        x.max = data.end ? Date.parse(data.end) : undefined;
        if (x.ticks) x.ticks.callback = (value) => tickLabel(Number(value), data.hours);
      }
    },
    useMemo(() => ({ points, hours, start, end }), [points, hours, start, end]),
  );
  return (
    <div className="chart-box">
      <canvas ref={canvas} aria-label={`${label} history`} role="img" />
    </div>
  );
}
