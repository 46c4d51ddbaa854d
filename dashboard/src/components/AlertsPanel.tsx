import { memo } from "react";
import type { Alert, Alerts } from "../api";
import { formatTime } from "../format";
import { usePeriodic } from "../hooks";

const REFRESH_MS = 10_000;
const EVENTS_SHOWN = 20;

function AlertItem({ alert }: { alert: Alert }) {
  return (
    <li className={`alert-item severity-${alert.severity} state-${alert.state}`}>
      <time dateTime={alert.timestamp ?? undefined}>{formatTime(alert.timestamp)}</time>
      <span className="chip">{alert.state}</span>
      <span>
        {alert.gpu_id === null ? "" : `GPU ${alert.gpu_id}: `}
        {alert.message}
      </span>
    </li>
  );
}

export const AlertsPanel = memo(function AlertsPanel() {
  const { data } = usePeriodic<Alerts>("/api/alerts?hours=24", REFRESH_MS);
  const active = data?.active ?? [];
  const events = (data?.events ?? []).slice(0, EVENTS_SHOWN);
  return (
    <section className="panel alerts" data-testid="alerts">
      <h2>Alerts</h2>
      {active.length === 0 ? <p className="muted">No active alerts.</p> : null}
      <ul>
        {active.map((a) => (
          <AlertItem key={`active-${a.rule}-${a.gpu_id}-${a.timestamp}`} alert={a} />
        ))}
      </ul>
      {events.length > 0 ? <h3>Last 24 hours</h3> : null}
      <ul>
        {events.map((a) => (
          <AlertItem key={`${a.rule}-${a.gpu_id}-${a.timestamp}-${a.state}`} alert={a} />
        ))}
      </ul>
    </section>
  );
});
