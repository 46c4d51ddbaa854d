import type { Info } from "../api";
import { formatTime } from "../format";

export type GpuSelection = number | "all";

export interface HeaderProps {
  info: Info | null;
  selection: GpuSelection;
  onSelect: (selection: GpuSelection) => void;
  live: boolean;
  onToggleLive: () => void;
  lastUpdate: string | null;
}

export function Header({ info, selection, onSelect, live, onToggleLive, lastUpdate }: HeaderProps) {
  const gpus = info?.gpus ?? [];
  return (
    <header className="top">
      <h1>
        GPM <span className="hostname" data-testid="hostname">{info?.hostname ?? "…"}</span>
      </h1>
      {info?.simulated ? (
        <span className="badge simulated" data-testid="simulated-badge" title="Demo mode: simulated GPUs">
          SIMULATED
        </span>
      ) : null}
      <div className="controls">
        {gpus.length > 1 ? (
          <label>
            GPU{" "}
            <select
              data-testid="gpu-select"
              value={String(selection)}
              onChange={(event) => onSelect(event.target.value === "all" ? "all" : Number(event.target.value))}
            >
              {gpus.map((gpu) => (
                <option key={gpu.gpu_id} value={gpu.gpu_id}>
                  {gpu.gpu_id}: {gpu.name ?? "GPU"}
                </option>
              ))}
              <option value="all">All GPUs</option>
            </select>
          </label>
        ) : null}
        <button type="button" data-testid="live-toggle" aria-pressed={live} onClick={onToggleLive}>
          {live ? "● Live" : "❚❚ Paused"}
        </button>
        <span className="muted updated">{lastUpdate ? `updated ${formatTime(lastUpdate)}` : ""}</span>
      </div>
    </header>
  );
}
