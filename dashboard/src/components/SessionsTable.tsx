import type { LlmSessions } from "../api";
import { formatMs, formatNumber, formatTime, NA } from "../format";

/** LLM requests through the proxy, newest first. */
export function SessionsTable({ data }: { data: LlmSessions | null }) {
  if (data === null) return <p className="muted">Loading sessions…</p>;
  if (data.sessions.length === 0) {
    return <p className="muted" data-testid="sessions-empty">No LLM sessions in the last 24 hours.</p>;
  }
  return (
    <div className="table-wrap">
      <table data-testid="sessions-table">
        <caption>
          {data.sessions.length} of {data.total} sessions in the last 24 hours
        </caption>
        <thead>
          <tr>
            <th>Time</th>
            <th>Model</th>
            <th>Tokens</th>
            <th>TPS</th>
            <th>TTFT</th>
            <th>Duration</th>
            <th>Outcome</th>
          </tr>
        </thead>
        <tbody>
          {data.sessions.map((s) => (
            <tr key={s.id} data-testid="session-row">
              <td>
                <time dateTime={s.started_at}>{formatTime(s.started_at)}</time>
              </td>
              <td>{s.model ?? NA}</td>
              <td>{formatNumber(s.total_tokens)}</td>
              <td>{formatNumber(s.tokens_per_second, 1)}</td>
              <td>{formatMs(s.ttft_ms)}</td>
              <td>{formatMs(s.duration_ms)}</td>
              <td>
                <span className={`chip outcome-${s.outcome}`}>{s.outcome}</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
