/** The GPM HTTP API (docs/api.md) as the dashboard reads it, and a fetch helper.
 *
 * Every type here is the server's own: generated from its OpenAPI schema into api-schema.ts by
 * scripts/gen-api-types.sh (CI fails when that file is out of date), and only named here. */

import type { components } from "./api-schema";

type Schemas = components["schemas"];

export type Thresholds = Schemas["Thresholds"];
export type GpuIdentity = Schemas["GpuRef"];
export type Info = Schemas["Info"];
export type Process = Schemas["Process"];
export type GpuReading = Schemas["GpuNow"];
export type MigDevice = Schemas["MigDevice"];
export type Fleet = Schemas["Fleet"];
export type Energy = Schemas["Energy"];
export type EnergyFigures = Schemas["EnergyFigures"];
export type HourEnergy = Schemas["HourEnergy"];
export type IdleWaste = Schemas["IdleWaste"];
export type FleetHost = Schemas["FleetHost"];
export type FleetGpu = Schemas["FleetGpu"];
export type Realtime = Schemas["Realtime"];
export type MinAvgMax = Schemas["MinAvgMax"];
export type MetricStats = Schemas["MetricStats"];
export type ChartData = Schemas["Chart"];
export type ChartPoint = Schemas["ChartPoint"];
/** A charted reading: the metrics /api/chart returns (gpm/catalog.py, `charted=True`). */
export type ChartMetric = Exclude<keyof ChartPoint, "timestamp">;
export type ProcessEvent = Schemas["ProcessEventItem"];
export type LlmSession = Schemas["Session"];
export type LlmSessions = Schemas["Sessions"];
export type Histogram = Schemas["Histogram"];
export type ModelStats = Schemas["ModelStats"];
export type LlmStats = Schemas["LlmStats"];
export type LoadedModel = Schemas["LoadedModel"];
export type Models = Schemas["Models"];
export type Alert = Schemas["AlertItem"];
export type Alerts = Schemas["Alerts"];
export type Heatmap = Schemas["Heatmap"];

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
