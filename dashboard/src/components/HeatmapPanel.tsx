import { memo } from "react";
import type { Heatmap } from "../api";
import { formatNumber } from "../format";
import { usePeriodic } from "../hooks";

const REFRESH_MS = 60_000;
const HOURS = Array.from({ length: 24 }, (_, h) => h);

/** Average utilization by hour of day (UTC) for each day of the last week. */
export const HeatmapPanel = memo(function HeatmapPanel({ gpuId }: { gpuId: number }) {
  const { data } = usePeriodic<Heatmap>(`/api/heatmap?gpu_id=${gpuId}&days=7`, REFRESH_MS);
  const byCell = new Map<string, number | null>();
  for (const cell of data?.cells ?? []) byCell.set(`${cell.day}/${cell.hour}`, cell.utilization_percent);
  return (
    <section className="panel heatmap" data-testid="heatmap" data-gpu={gpuId}>
      <h2>Utilization by hour — GPU {gpuId}</h2>
      <div className="heatmap-grid" role="table" aria-label="Average utilization by day and hour (UTC)">
        <div className="heatmap-row" role="row">
          <span className="heatmap-day" />
          {HOURS.map((h) => (
            <span key={h} className="heatmap-hour" role="columnheader">
              {h % 6 === 0 ? h : ""}
            </span>
          ))}
        </div>
        {(data?.days ?? []).map((day) => (
          <div key={day} className="heatmap-row" role="row">
            <span className="heatmap-day" role="rowheader">
              {day.slice(5)}
            </span>
            {HOURS.map((h) => {
              const value = byCell.get(`${day}/${h}`) ?? null;
              return (
                <span
                  key={h}
                  role="cell"
                  className="heatmap-cell"
                  style={{ opacity: value === null ? 0.08 : 0.15 + (0.85 * value) / 100 }}
                  title={`${day} ${h}:00 UTC: ${formatNumber(value, 0, "%")}`}
                />
              );
            })}
          </div>
        ))}
      </div>
    </section>
  );
});
