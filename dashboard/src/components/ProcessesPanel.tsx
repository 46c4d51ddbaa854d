import type { GpuReading, Process } from "../api";
import { formatBytes, formatDuration, NA } from "../format";
import { WorkloadChip } from "./WorkloadChip";

/** Processes on each GPU now, from the live snapshot. */
export function ProcessesPanel({ gpus }: { gpus: GpuReading[] }) {
  return (
    <section className="panel processes" data-testid="processes">
      <h2>Processes</h2>
      {gpus.map((gpu) => (
        <div key={gpu.gpu_id} className="table-wrap">
          <h3>GPU {gpu.gpu_id}</h3>
          {gpu.processes === null ? (
            <p className="muted">The process list is not available for this GPU.</p>
          ) : gpu.processes.length === 0 ? (
            <p className="muted">No processes.</p>
          ) : (
            <ProcessTable gpu={gpu} processes={gpu.processes} />
          )}
        </div>
      ))}
    </section>
  );
}

/** One GPU's processes; in MIG mode with the MIG device each runs on. */
function ProcessTable({ gpu, processes }: { gpu: GpuReading; processes: Process[] }) {
  const profiles = gpu.mig_devices === null ? null : new Map(gpu.mig_devices.map((m) => [m.index, m.profile]));
  return (
    <table>
      <thead>
        <tr>
          <th>PID</th>
          <th>Name</th>
          {profiles ? <th>MIG device</th> : null}
          <th>Workload</th>
          <th>Reason</th>
          <th>GPU memory</th>
          <th>User</th>
          <th>Run time</th>
        </tr>
      </thead>
      <tbody>
        {processes.map((p) => (
          <tr key={p.pid}>
            <td>{p.pid}</td>
            <td>
              {p.name ?? NA}
              {p.model ? <span className="muted"> ({p.model})</span> : null}
            </td>
            {profiles ? (
              <td data-testid="process-mig">
                {p.mig_index === null ? NA : `MIG ${p.mig_index} ${profiles.get(p.mig_index) ?? ""}`.trim()}
              </td>
            ) : null}
            <td>
              <WorkloadChip workload={p.workload} />
            </td>
            <td className="reason">{p.reason ?? NA}</td>
            <td>{formatBytes(p.gpu_memory_bytes)}</td>
            <td>{p.user ?? NA}</td>
            <td>{formatDuration(p.run_seconds)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
