import type { ModelStats } from "../api";
import { Chart, GRID_COLOR, TICK_COLOR, useChart } from "../charts";

type BarChart = Chart<"bar", (number | null)[], string>;

/** Median decode speed (left axis) and time to first token (right axis) per model. */
export function ModelComparison({ models }: { models: ModelStats[] }) {
  const canvas = useChart<BarChart, ModelStats[]>(
    (element) =>
      new Chart<"bar", (number | null)[], string>(element, {
        type: "bar",
        data: {
          labels: [],
          datasets: [
            { label: "Tokens/s (p50)", data: [], backgroundColor: "#3b82f6", yAxisID: "y" },
            { label: "TTFT ms (p50)", data: [], backgroundColor: "#f97316", yAxisID: "y1" },
          ],
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          plugins: { legend: { labels: { color: TICK_COLOR } } },
          scales: {
            x: { grid: { color: GRID_COLOR }, ticks: { color: TICK_COLOR } },
            y: { beginAtZero: true, position: "left", grid: { color: GRID_COLOR }, ticks: { color: TICK_COLOR } },
            y1: { beginAtZero: true, position: "right", grid: { display: false }, ticks: { color: TICK_COLOR } },
          },
        },
      }),
    (chart, data) => {
      chart.data.labels = data.map((m) => m.model ?? "unknown");
      const [tps, ttft] = chart.data.datasets;
      if (tps) tps.data = data.map((m) => m.tokens_per_second_p50);
      if (ttft) ttft.data = data.map((m) => m.ttft_ms_p50);
    },
    models,
  );
  return (
    <div className="chart-box" data-testid="model-comparison">
      <canvas ref={canvas} role="img" aria-label="Tokens per second and time to first token by model" />
    </div>
  );
}
