import type { Histogram } from "../api";
import { formatNumber } from "../format";

/** A small bar histogram drawn with CSS, cheap enough for one per model. */
export function MiniHistogram({ title, histogram, unit }: { title: string; histogram: Histogram | null; unit: string }) {
  if (!histogram || histogram.counts.length === 0) return null;
  const peak = Math.max(...histogram.counts, 1);
  return (
    <figure className="histogram">
      <figcaption>{title}</figcaption>
      <div className="histogram-bars">
        {histogram.counts.map((count, i) => {
          const low = histogram.edges[i];
          const high = histogram.edges[i + 1];
          return (
            <div
              key={i}
              className="histogram-bar"
              style={{ height: `${(100 * count) / peak}%` }}
              title={`${formatNumber(low, 0)}–${formatNumber(high, 0)} ${unit}: ${count}`}
            />
          );
        })}
      </div>
      <div className="histogram-axis muted">
        <span>{formatNumber(histogram.edges[0], 0)}</span>
        <span>
          {formatNumber(histogram.edges[histogram.edges.length - 1], 0)} {unit}
        </span>
      </div>
    </figure>
  );
}
