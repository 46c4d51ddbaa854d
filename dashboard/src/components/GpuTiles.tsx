import type { GpuReading, MigDevice, Thresholds } from "../api";
import { formatBytes, formatNumber } from "../format";
import { memoryLevel, powerLevel, temperatureLevel, utilizationLevel } from "../thresholds";
import type { GpuSelection } from "./Header";
import { HealthBadge } from "./GpuGauges";

export interface GpuTilesProps {
  gpus: GpuReading[];
  thresholds: Thresholds;
  selection: GpuSelection;
  onSelect: (selection: GpuSelection) => void;
}

/** Every GPU at a glance: one compact tile each; a click selects the GPU for the panels below. */
export function GpuTiles({ gpus, thresholds, selection, onSelect }: GpuTilesProps) {
  if (gpus.length === 0) return null;
  return (
    <nav className="gpu-tiles" aria-label="GPUs" data-testid="gpu-tiles">
      {gpus.map((gpu) => {
        const selected = selection === gpu.gpu_id;
        return (
          <button
            key={gpu.gpu_id}
            type="button"
            className={`gpu-tile${selected ? " selected" : ""}${gpu.up ? "" : " down"}`}
            aria-pressed={selected}
            data-testid="gpu-tile"
            data-gpu={gpu.gpu_id}
            onClick={() => onSelect(gpu.gpu_id)}
          >
            <span className="gpu-tile-title">
              GPU {gpu.gpu_id} <HealthBadge gpu={gpu} />
            </span>
            <span className="gpu-tile-name muted">{gpu.name ?? ""}</span>
            <span className="gpu-tile-figures">
              <Figure label="util" text={formatNumber(gpu.utilization_percent, 0, "%")} level={utilizationLevel(gpu.utilization_percent)} />
              <Figure label="mem" text={formatNumber(gpu.memory_percent, 0, "%")} level={memoryLevel(gpu.memory_percent, thresholds)} />
              <Figure label="temp" text={formatNumber(gpu.temperature_celsius, 0, "°C")} level={temperatureLevel(gpu.temperature_celsius, thresholds)} />
              <Figure label="power" text={formatNumber(gpu.power_watts, 0, "W")} level={powerLevel(gpu.power_watts, gpu.power_limit_watts)} />
            </span>
            {gpu.mig_devices && gpu.mig_devices.length > 0 ? <MigList devices={gpu.mig_devices} /> : null}
          </button>
        );
      })}
    </nav>
  );
}

function Figure({ label, text, level }: { label: string; text: string; level: string }) {
  return (
    <span className={`gpu-tile-figure level-${level}`} data-testid={`tile-${label}`}>
      <span className="muted">{label}</span> {text}
    </span>
  );
}

/** A GPU in MIG mode: each MIG device with its profile and its own memory, inside its GPU
 * (spans, since a button holds only phrasing content). */
function MigList({ devices }: { devices: MigDevice[] }) {
  return (
    <span className="gpu-tile-migs" data-testid="mig-devices">
      {devices.map((m) => (
        <span className="gpu-tile-mig" key={m.index} data-testid="mig-device">
          <span className="muted">MIG {m.index}</span> {m.profile ?? "—"}{" "}
          <span>
            {formatBytes(m.memory_used_bytes)} / {formatBytes(m.memory_total_bytes)}
          </span>
          {m.utilization_percent !== null ? <span> · {formatNumber(m.utilization_percent, 0, "%")}</span> : null}
        </span>
      ))}
    </span>
  );
}
