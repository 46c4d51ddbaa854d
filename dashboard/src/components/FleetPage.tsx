import { useMemo, useState } from "react";
import type { Fleet, FleetGpu, FleetHost } from "../api";
import { formatBytes, formatNumber, formatTime, NA } from "../format";
import { usePeriodic } from "../hooks";

const REFRESH_MS = 5_000;

type SortKey = "host" | "status" | "gpus" | "power" | "energy";
const SORTS: Record<SortKey, (a: FleetHost, b: FleetHost) => number> = {
  host: (a, b) => a.host.localeCompare(b.host),
  status: (a, b) => Number(a.up) - Number(b.up) || a.host.localeCompare(b.host),
  gpus: (a, b) => b.gpus.length - a.gpus.length,
  power: (a, b) => (b.power_watts ?? -1) - (a.power_watts ?? -1),
  energy: (a, b) => (b.energy_joules_24h ?? -1) - (a.energy_joules_24h ?? -1),
};

type Show = "all" | "idle" | "idle_memory_held" | "hot" | "throttled" | "down";

/** A GPU's flags as short words; null where Prometheus does not know. */
function flags(gpu: FleetGpu): string[] {
  const out: string[] = [];
  if (gpu.idle_memory_held) out.push("idle, memory held");
  else if (gpu.idle) out.push("idle");
  if (gpu.hot) out.push("hot");
  if (gpu.throttled) out.push("throttled");
  return out;
}

function matches(host: FleetHost, text: string, show: Show): boolean {
  const needle = text.trim().toLowerCase();
  const named =
    needle === "" ||
    host.host.toLowerCase().includes(needle) ||
    host.models.some((m) => m.model.toLowerCase().includes(needle)) ||
    host.gpus.some((g) => (g.name ?? "").toLowerCase().includes(needle));
  if (!named) return false;
  if (show === "all") return true;
  if (show === "down") return !host.up;
  return host.gpus.some((g) => g[show] === true);
}

/** Every GPM host Prometheus scrapes (GET /api/fleet): its GPUs, models, health and energy. */
export function FleetPage() {
  const fleet = usePeriodic<Fleet>("/api/fleet", REFRESH_MS);
  return <FleetView data={fleet.data} error={fleet.error} />;
}

/** The fleet as the API answered it (``data`` null until the first answer). */
export function FleetView({ data, error }: { data: Fleet | null; error: string | null }) {
  const [sort, setSort] = useState<SortKey>("host");
  const [text, setText] = useState("");
  const [show, setShow] = useState<Show>("all");
  const hosts = useMemo(
    () => (data?.hosts ?? []).filter((h) => matches(h, text, show)).sort(SORTS[sort]),
    [data, text, show, sort],
  );
  if (data === null) {
    return (
      <main className="fleet" data-testid="fleet">
        <p className="panel muted">{error ? `The fleet cannot be read: ${error}` : "Asking Prometheus…"}</p>
      </main>
    );
  }
  if (!data.configured) {
    return (
      <main className="fleet" data-testid="fleet">
        <p className="panel muted" data-testid="fleet-not-configured">
          {data.error}. See docs/fleet.md.
        </p>
      </main>
    );
  }
  return (
    <main className="fleet" data-testid="fleet">
      <header className="top">
        <h1>Fleet</h1>
        <span className="muted">
          {data.hosts.length} hosts from {data.prometheus_url} · updated {formatTime(data.fetched_at)}
        </span>
      </header>
      {data.error ? (
        <p className="panel fleet-error" role="alert" data-testid="fleet-error">
          {data.error}; showing the answer from {formatNumber(data.age_seconds, 0, "s")} ago.
        </p>
      ) : null}
      <div className="section-bar fleet-controls">
        <input
          type="search"
          placeholder="Filter by host, GPU or model"
          aria-label="Filter"
          data-testid="fleet-filter"
          value={text}
          onChange={(event) => setText(event.target.value)}
        />
        <label>
          Show{" "}
          <select data-testid="fleet-show" value={show} onChange={(event) => setShow(event.target.value as Show)}>
            <option value="all">all hosts</option>
            <option value="idle">with idle GPUs</option>
            <option value="idle_memory_held">with idle GPUs holding memory</option>
            <option value="hot">with hot GPUs</option>
            <option value="throttled">with throttled GPUs</option>
            <option value="down">down</option>
          </select>
        </label>
        <label>
          Sort by{" "}
          <select data-testid="fleet-sort" value={sort} onChange={(event) => setSort(event.target.value as SortKey)}>
            <option value="host">host</option>
            <option value="status">down first</option>
            <option value="gpus">GPUs</option>
            <option value="power">power</option>
            <option value="energy">energy (24 h)</option>
          </select>
        </label>
      </div>
      <div className="fleet-hosts">
        {hosts.map((host) => (
          <HostCard key={host.instance} host={host} currency={data.currency ?? null} />
        ))}
        {hosts.length === 0 ? <p className="panel muted">No host matches.</p> : null}
      </div>
    </main>
  );
}

function HostCard({ host, currency }: { host: FleetHost; currency: string | null }) {
  const cost = host.cost_24h !== null && currency ? ` · ${formatNumber(host.cost_24h, 2)} ${currency}` : "";
  return (
    <section className={`panel fleet-host${host.up ? "" : " down"}`} data-testid="fleet-host" data-host={host.host}>
      <h2>
        {host.url ? (
          <a href={host.url} data-testid="fleet-host-link">
            {host.host}
          </a>
        ) : (
          host.host
        )}{" "}
        <span className={`badge ${host.up ? "health-ok" : "health-failed"}`} data-testid="fleet-host-status">
          {host.up ? "up" : "down"}
        </span>
      </h2>
      <p className="muted fleet-host-meta">
        {host.instance} · GPM {host.version ?? NA} · driver {host.driver_version ?? NA} · CUDA {host.cuda_version ?? NA}
        {host.up ? "" : ` · last seen ${formatTime(host.last_seen)}`}
      </p>
      <p className="fleet-host-energy">
        {formatNumber(host.power_watts, 0, "W")} now · {formatNumber(host.energy_joules_24h === null ? null : host.energy_joules_24h / 3.6e6, 2, "kWh")} in 24 h{cost}
      </p>
      <table className="fleet-gpus">
        <thead>
          <tr>
            <th>GPU</th>
            <th>util</th>
            <th>memory</th>
            <th>temp</th>
            <th>power</th>
            <th>health</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {host.gpus.map((gpu) => (
            <tr key={gpu.gpu_id} data-testid="fleet-gpu">
              <td>
                {gpu.gpu_id} <span className="muted">{gpu.name ?? ""}</span>
              </td>
              <td>{formatNumber(gpu.utilization_percent, 0, "%")}</td>
              <td>
                {formatBytes(gpu.memory_used_bytes)} / {formatBytes(gpu.memory_total_bytes)}
              </td>
              <td>{formatNumber(gpu.temperature_celsius, 0, "°C")}</td>
              <td>{formatNumber(gpu.power_watts, 0, "W")}</td>
              <td>{gpu.health ? <span className={`badge health-${gpu.health}`}>{gpu.health}</span> : NA}</td>
              <td className="fleet-flags" data-testid="fleet-gpu-flags">
                {flags(gpu).join(" · ")}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {host.models.length > 0 ? (
        <ul className="fleet-models">
          {host.models.map((m) => (
            <li key={m.model} data-testid="fleet-model">
              {m.model} <span className="muted">{formatBytes(m.vram_bytes)}</span> ·{" "}
              {formatNumber(m.tokens_per_second_p50, 1, "tok/s")} · TTFT {formatNumber(m.ttft_ms_p50, 0, "ms")}
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}
