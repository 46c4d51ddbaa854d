import { memo } from "react";
import type { LlmSessions, LlmStats, Models, ModelStats } from "../api";
import { formatBytes, formatMs, formatNumber, formatTime, NA } from "../format";
import { usePeriodic } from "../hooks";
import { MiniHistogram } from "./MiniHistogram";
import { ModelComparison } from "./ModelComparison";
import { SessionsTable } from "./SessionsTable";

const SESSIONS_REFRESH_MS = 5_000;
const STATS_REFRESH_MS = 10_000;
const SESSIONS_SHOWN = 50;
const NO_MODELS: ModelStats[] = [];

export function StatCards({ stats }: { stats: LlmStats | null }) {
  const t = stats?.totals;
  const cards: [string, string][] = [
    ["Sessions", formatNumber(t?.sessions)],
    ["Average TPS", formatNumber(t?.avg_tokens_per_second, 1)],
    ["Average TTFT", formatMs(t?.avg_ttft_ms)],
    ["Total tokens", formatNumber(t?.total_tokens)],
    ["Average duration", formatMs(t?.avg_duration_ms)],
    ["Best model", t?.best_model ?? NA],
  ];
  return (
    <div className="stat-cards">
      {cards.map(([label, value]) => (
        <div key={label} className="stat-card">
          <span className="stat-label">{label}</span>
          <span className="stat-value">{value}</span>
        </div>
      ))}
    </div>
  );
}

function LoadedModels({ data }: { data: Models | null }) {
  if (data === null) return null;
  if (data.backend_up === false) return <p className="muted">The LLM backend is not answering.</p>;
  if (data.models.length === 0) return <p className="muted">No models loaded.</p>;
  return (
    <ul className="loaded-models" data-testid="loaded-models">
      {data.models.map((m) => (
        <li key={m.name}>
          <strong>{m.name}</strong> {formatBytes(m.vram_bytes)} VRAM
          {m.context_length === null ? null : <span className="muted"> · ctx {m.context_length}</span>}
          {m.expires_at ? <span className="muted"> · until {formatTime(m.expires_at)}</span> : null}
        </li>
      ))}
    </ul>
  );
}

/** LLM traffic seen by the proxy over the last 24 hours. */
export const LlmPanel = memo(function LlmPanel() {
  const stats = usePeriodic<LlmStats>("/api/llm-stats?hours=24", STATS_REFRESH_MS).data;
  const sessions = usePeriodic<LlmSessions>(`/api/llm-sessions?limit=${SESSIONS_SHOWN}`, SESSIONS_REFRESH_MS).data;
  const models = usePeriodic<Models>("/api/models", SESSIONS_REFRESH_MS).data;
  const perModel = stats?.models ?? NO_MODELS;
  return (
    <section className="panel llm" data-testid="llm">
      <h2>LLM sessions (24 h)</h2>
      <StatCards stats={stats} />
      <div className="llm-grid">
        <div>
          <h3>Models compared</h3>
          {perModel.length === 0 ? <p className="muted">No sessions yet.</p> : null}
          <ModelComparison models={perModel} />
        </div>
        <div>
          <h3>Loaded in VRAM{models?.backend_version ? ` (backend ${models.backend_version})` : ""}</h3>
          <LoadedModels data={models} />
        </div>
      </div>
      <h3>Distributions</h3>
      <div className="histograms">
        {perModel.map((m) => (
          <div key={m.model} className="histogram-pair">
            <h4>{m.model}</h4>
            <MiniHistogram title="Tokens/s" histogram={m.tokens_per_second_histogram ?? null} unit="tok/s" />
            <MiniHistogram title="TTFT" histogram={m.ttft_ms_histogram ?? null} unit="ms" />
          </div>
        ))}
      </div>
      <h3>Recent sessions</h3>
      <SessionsTable data={sessions} />
    </section>
  );
});
