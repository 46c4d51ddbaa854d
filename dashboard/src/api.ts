/** Shapes of the GPM HTTP API (docs/api.md) that the dashboard reads, and a fetch helper. */

export interface Thresholds {
  temp_threshold_celsius: number;
  memory_threshold_percent: number;
}

export interface GpuIdentity {
  gpu_id: number;
  uuid: string | null;
  name: string | null;
}

export interface Info {
  version: string;
  hostname: string;
  simulated: boolean;
  gpu_source: string;
  gpu_count: number;
  gpus: GpuIdentity[];
  poll_interval_secs: number;
  thresholds: Thresholds;
  message: string | null;
}

export interface Process {
  pid: number;
  name: string | null;
  workload: string | null;
  reason: string | null;
  gpu_memory_bytes: number | null;
  user: string | null;
  run_seconds: number | null;
  model: string | null;
}

export interface GpuReading {
  gpu_id: number;
  name: string | null;
  up: boolean;
  error: string | null;
  /** The health verdict and why; null before GPM first judged the GPU. */
  health: "ok" | "degraded" | "failed" | null;
  health_reasons: string[];
  utilization_percent: number | null;
  memory_used_bytes: number | null;
  memory_total_bytes: number | null;
  memory_percent: number | null;
  temperature_celsius: number | null;
  power_watts: number | null;
  power_limit_watts: number | null;
  processes: Process[] | null;
}

export interface Realtime {
  timestamp: string;
  source: string;
  gpus: GpuReading[];
}

export interface MinAvgMax {
  min: number | null;
  avg: number | null;
  max: number | null;
}

export interface MetricStats extends MinAvgMax {
  trend_percent: number | null;
}

export type ChartMetric =
  | "utilization_percent"
  | "memory_percent"
  | "temperature_celsius"
  | "power_watts";

export type ChartPoint = { timestamp: string } & Partial<Record<ChartMetric, MinAvgMax | null>>;

export interface ChartData {
  gpu_id: number;
  start: string;
  end: string;
  bucket_seconds: number;
  points: ChartPoint[];
  stats: Partial<Record<ChartMetric, MetricStats | null>>;
}

export interface ProcessEvent {
  timestamp: string;
  event: "start" | "end";
  gpu_id: number;
  pid: number;
  name: string | null;
  workload: string | null;
  reason: string | null;
  user: string | null;
  model: string | null;
  duration_seconds: number | null;
}

export interface LlmSession {
  id: string;
  model: string | null;
  started_at: string;
  total_tokens: number | null;
  completion_tokens: number | null;
  /** "backend": the server's own count; "stream": counted by the proxy (an estimate). */
  token_source: "backend" | "stream" | null;
  tokens_per_second: number | null;
  ttft_ms: number | null;
  /** The server's own split of the TTFT, where it reports one. */
  load_duration_ms: number | null;
  prompt_eval_duration_ms: number | null;
  ttft_other_ms: number | null;
  cold_start: boolean | null;
  chunk_gap_p50_ms: number | null;
  chunk_gap_p99_ms: number | null;
  duration_ms: number | null;
  outcome: string;
}

export interface LlmSessions {
  total: number;
  sessions: LlmSession[];
}

export interface Histogram {
  edges: number[];
  counts: number[];
}

export interface ModelStats {
  model: string;
  sessions: number;
  tokens_per_second_p50: number | null;
  ttft_ms_p50: number | null;
  tokens_per_second_histogram: Histogram | null;
  ttft_ms_histogram: Histogram | null;
}

export interface LlmStats {
  hours: number;
  totals: {
    sessions: number;
    avg_tokens_per_second: number | null;
    avg_ttft_ms: number | null;
    total_tokens: number | null;
    avg_duration_ms: number | null;
    best_model: string | null;
  };
  models: ModelStats[];
}

export interface LoadedModel {
  name: string;
  size_bytes: number | null;
  vram_bytes: number | null;
  context_length: number | null;
  expires_at: string | null;
}

export interface Models {
  backend_up: boolean | null;
  backend_version: string | null;
  models: LoadedModel[];
}

export interface Alert {
  timestamp: string;
  rule: string;
  state: "firing" | "resolved";
  severity: string;
  message: string;
  gpu_id: number | null;
}

export interface Alerts {
  active: Alert[];
  events: Alert[];
}

export interface Heatmap {
  gpu_id: number;
  days: string[];
  cells: { day: string; hour: number; utilization_percent: number | null }[];
}

/** An HTTP answer that is not 2xx; network failures stay TypeErrors so callers can tell them apart. */
export class HttpError extends Error {
  constructor(
    readonly url: string,
    readonly status: number,
  ) {
    super(`${url}: HTTP ${status}`);
  }
}

export async function getJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  const response = await fetch(url, { signal, headers: { Accept: "application/json" } });
  if (!response.ok) throw new HttpError(url, response.status);
  return (await response.json()) as T;
}
