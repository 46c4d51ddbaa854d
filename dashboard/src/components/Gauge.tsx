import type { Level } from "../thresholds";

/** The arc covers 270°, open at the bottom. */
const RADIUS = 42;
const ARC_FRACTION = 0.75;
const CIRCUMFERENCE = 2 * Math.PI * RADIUS;

export interface GaugeProps {
  /** Used in the data-testid: `gauge-<id>` (root) and `gauge-<id>-value` (the number). */
  id: string;
  label: string;
  value: number | null;
  max: number;
  /** The number as shown; "—" when value is null. */
  text: string;
  detail?: string;
  level: Level;
}

/** A circular gauge; the colour comes from `level`, so thresholds live in one place. */
export function Gauge({ id, label, value, max, text, detail, level }: GaugeProps) {
  const fraction = value === null || max <= 0 ? 0 : Math.min(Math.max(value / max, 0), 1);
  const track = CIRCUMFERENCE * ARC_FRACTION;
  return (
    <figure
      className={`gauge level-${level}`}
      data-testid={`gauge-${id}`}
      data-level={level}
      data-value={value === null ? "" : String(value)}
    >
      <svg viewBox="0 0 100 100" role="img" aria-label={`${label}: ${text}`}>
        <circle
          className="gauge-track"
          cx="50"
          cy="50"
          r={RADIUS}
          strokeDasharray={`${track} ${CIRCUMFERENCE}`}
          transform="rotate(135 50 50)"
        />
        <circle
          className="gauge-fill"
          cx="50"
          cy="50"
          r={RADIUS}
          strokeDasharray={`${track * fraction} ${CIRCUMFERENCE}`}
          transform="rotate(135 50 50)"
        />
        <text x="50" y="54" textAnchor="middle" className="gauge-value" data-testid={`gauge-${id}-value`}>
          {text}
        </text>
      </svg>
      <figcaption>
        <span className="gauge-label">{label}</span>
        {detail ? <span className="gauge-detail">{detail}</span> : null}
      </figcaption>
    </figure>
  );
}
