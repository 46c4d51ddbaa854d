import type { GpuReading, Thresholds } from "../api";
import { formatBytes, formatNumber, NA } from "../format";
import { memoryLevel, powerLevel, temperatureLevel, utilizationLevel } from "../thresholds";
import { Gauge } from "./Gauge";

/** Gauge scale for temperature: most GPUs shut down before 100 °C. */
const TEMPERATURE_SCALE_CELSIUS = 100;

export interface GpuGaugesProps {
  gpu: GpuReading;
  thresholds: Thresholds;
  /** The snapshot these readings came from, exposed for checks against the API. */
  timestamp: string;
}

/** The GPU's health verdict; its reasons are listed under the heading and in the tooltip. */
export function HealthBadge({ gpu }: { gpu: GpuReading }) {
  if (gpu.health === null) return null;
  return (
    <span
      className={`badge health-${gpu.health}`}
      data-testid="health-badge"
      title={gpu.health_reasons.join("\n") || "no problem seen"}
    >
      {gpu.health}
    </span>
  );
}

export function GpuGauges({ gpu, thresholds, timestamp }: GpuGaugesProps) {
  const powerScale = gpu.power_limit_watts ?? Math.max(gpu.power_watts ?? 0, 1);
  return (
    <section
      className="panel gauges"
      data-testid="gpu-gauges"
      data-gpu={gpu.gpu_id}
      data-snapshot-timestamp={timestamp}
    >
      <h2>
        GPU {gpu.gpu_id} <span className="muted">{gpu.name ?? ""}</span>{" "}
        <HealthBadge gpu={gpu} />
      </h2>
      {gpu.health_reasons.length > 0 ? (
        <ul className="health-reasons" data-testid="health-reasons">
          {gpu.health_reasons.map((reason) => (
            <li key={reason}>{reason}</li>
          ))}
        </ul>
      ) : null}
      {gpu.up ? null : (
        <p className="error" role="status">
          GPU unavailable: {gpu.error ?? "no reading"}
        </p>
      )}
      <div className="gauge-row">
        <Gauge
          id="utilization"
          label="Utilization"
          value={gpu.utilization_percent}
          max={100}
          text={formatNumber(gpu.utilization_percent, 0, "%")}
          level={utilizationLevel(gpu.utilization_percent)}
        />
        <Gauge
          id="memory"
          label="Memory"
          value={gpu.memory_percent}
          max={100}
          text={formatNumber(gpu.memory_percent, 0, "%")}
          detail={
            gpu.memory_used_bytes === null
              ? NA
              : `${formatBytes(gpu.memory_used_bytes)} / ${formatBytes(gpu.memory_total_bytes)}`
          }
          level={memoryLevel(gpu.memory_percent, thresholds)}
        />
        <Gauge
          id="temperature"
          label="Temperature"
          value={gpu.temperature_celsius}
          max={TEMPERATURE_SCALE_CELSIUS}
          text={formatNumber(gpu.temperature_celsius, 0, "°C")}
          detail={`alert above ${thresholds.temp_threshold_celsius} °C`}
          level={temperatureLevel(gpu.temperature_celsius, thresholds)}
        />
        <Gauge
          id="power"
          label="Power"
          value={gpu.power_watts}
          max={powerScale}
          text={formatNumber(gpu.power_watts, 0, "W")}
          detail={gpu.power_limit_watts === null ? undefined : `limit ${formatNumber(gpu.power_limit_watts, 0, "W")}`}
          level={powerLevel(gpu.power_watts, gpu.power_limit_watts)}
        />
      </div>
    </section>
  );
}
