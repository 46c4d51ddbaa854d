import type { LlmSession, LlmSessions } from "../api";
import { formatMs, formatNumber, formatTime, NA } from "../format";

/** Completion tokens; "~" marks a count the proxy made from the stream, not the server's. */
function Tokens({ s }: { s: LlmSession }) {
  const text = formatNumber(s.completion_tokens);
  if (s.token_source !== "stream" || s.completion_tokens === null) return <>{text}</>;
  return <span title="counted by GPM from the stream: the server sent no count">~{text}</span>;
}

/** The TTFT and, where the server timed its parts, what it was spent on. */
function Ttft({ s }: { s: LlmSession }) {
  const parts: string[] = [];
  if (s.load_duration_ms !== null && s.cold_start) parts.push(`load ${formatMs(s.load_duration_ms)}`);
  if (s.prompt_eval_duration_ms !== null) parts.push(`prefill ${formatMs(s.prompt_eval_duration_ms)}`);
  if (s.ttft_other_ms !== null) parts.push(`other ${formatMs(s.ttft_other_ms)}`);
  return (
    <>
      {formatMs(s.ttft_ms)}
      {s.cold_start ? <span className="chip cold-start" title="the model had to be loaded first"> cold</span> : null}
      {s.ttft_ms !== null && parts.length > 0 ? <small className="ttft-split">{parts.join(" · ")}</small> : null}
    </>
  );
}

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
            <th title="completion tokens; ~ counted by GPM from the stream">Out tokens</th>
            <th>TPS</th>
            <th>TTFT</th>
            <th title="inter-token latency: median gap between content chunks">ITL p50</th>
            <th>Duration</th>
            <th>Outcome</th>
          </tr>
        </thead>
        <tbody>
          {data.sessions.map((s) => (
            <tr key={s.id} data-testid="session-row">
              <td>
                <time dateTime={s.started_at ?? undefined}>{formatTime(s.started_at)}</time>
              </td>
              <td>{s.model ?? NA}</td>
              <td>
                <Tokens s={s} />
              </td>
              <td>{formatNumber(s.tokens_per_second, 1)}</td>
              <td>
                <Ttft s={s} />
              </td>
              <td title={s.chunk_gap_p99_ms === null ? undefined : `p99 ${formatMs(s.chunk_gap_p99_ms)}`}>
                {formatMs(s.chunk_gap_p50_ms)}
              </td>
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
