import type { GpuReading } from "../api";
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
            <table>
              <thead>
                <tr>
                  <th>PID</th>
                  <th>Name</th>
                  <th>Workload</th>
                  <th>Reason</th>
                  <th>GPU memory</th>
                  <th>User</th>
                  <th>Run time</th>
                </tr>
              </thead>
              <tbody>
                {gpu.processes.map((p) => (
                  <tr key={p.pid}>
                    <td>{p.pid}</td>
                    <td>
                      {p.name ?? NA}
                      {p.model ? <span className="muted"> ({p.model})</span> : null}
                    </td>
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
          )}
        </div>
      ))}
    </section>
  );
}
