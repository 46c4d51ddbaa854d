/**
 * Chart.js, registering only what the dashboard draws so the bundle tree-shakes the rest, and a
 * hook that creates a chart once, updates its data in place and destroys it on unmount.
 */

import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  Legend,
} from "chart.js";
import { type RefObject, useEffect, useRef } from "react";

Chart.register(
  LineController,
  LineElement,
  PointElement,
  BarController,
  BarElement,
  LinearScale,
  CategoryScale,
  Filler,
  Tooltip,
  Legend,
);

export { Chart };

/** Readable on both the light and the dark theme. */
export const GRID_COLOR = "rgba(128, 128, 128, 0.2)";
export const TICK_COLOR = "rgba(128, 128, 128, 0.9)";

interface Updatable {
  update(mode?: "none"): void;
  destroy(): void;
}

/**
 * `create` runs once per canvas; `apply` copies new data into the existing chart whenever `data`
 * changes, and the chart redraws without animation. Nothing is re-allocated per update.
 */
export function useChart<C extends Updatable, D>(
  create: (canvas: HTMLCanvasElement) => C,
  apply: (chart: C, data: D) => void,
  data: D,
): RefObject<HTMLCanvasElement | null> {
  const canvas = useRef<HTMLCanvasElement | null>(null);
  const chart = useRef<C | null>(null);
  const latest = useRef({ create, apply, data });
  latest.current = { create, apply, data };
  useEffect(() => {
    if (!canvas.current) return undefined;
    const instance = latest.current.create(canvas.current);
    chart.current = instance;
    latest.current.apply(instance, latest.current.data);
    instance.update("none");
    return () => {
      instance.destroy();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    if (!chart.current) return;
    latest.current.apply(chart.current, data);
    chart.current.update("none");
  }, [data]);
  return canvas;
}
