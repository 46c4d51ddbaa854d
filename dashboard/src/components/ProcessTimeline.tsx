import { memo } from "react";
import type { ProcessEvent } from "../api";
import { formatDuration, formatTime, NA } from "../format";
import { usePeriodic } from "../hooks";
import { WorkloadChip } from "./WorkloadChip";

const REFRESH_MS = 10_000;
const EVENTS_SHOWN = 30;

/** Recent process starts and ends, newest first. */
export const ProcessTimeline = memo(function ProcessTimeline() {
  const { data } = usePeriodic<{ events: ProcessEvent[] }>(`/api/process-events?limit=${EVENTS_SHOWN}`, REFRESH_MS);
  const events = data?.events ?? [];
  return (
    <section className="panel timeline" data-testid="process-events">
      <h2>Process events</h2>
      {events.length === 0 ? (
        <p className="muted">No process events in the last 24 hours.</p>
      ) : (
        <ol>
          {events.map((e) => (
            <li key={`${e.timestamp}-${e.event}-${e.gpu_id}-${e.pid}`} className={`event-${e.event}`}>
              <time dateTime={e.timestamp ?? undefined}>{formatTime(e.timestamp)}</time>
              <span className={`chip event-chip-${e.event}`}>{e.event}</span>
              <span>
                GPU {e.gpu_id} · {e.name ?? NA} ({e.pid})
              </span>
              <WorkloadChip workload={e.workload} />
              {e.event === "end" ? <span className="muted">ran {formatDuration(e.duration_seconds)}</span> : null}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
});
