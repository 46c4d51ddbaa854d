import { useCallback, useRef, useState } from "react";
import type { Info, Realtime } from "./api";
import { AlertsPanel } from "./components/AlertsPanel";
import { ChartsPanel, RangeButtons } from "./components/ChartsPanel";
import { ConnectionBanner } from "./components/ConnectionBanner";
import { EfficiencyPanel } from "./components/EfficiencyPanel";
import { GpuGauges } from "./components/GpuGauges";
import { GpuTiles } from "./components/GpuTiles";
import { type GpuSelection, Header } from "./components/Header";
import { HeatmapPanel } from "./components/HeatmapPanel";
import { LlmPanel } from "./components/LlmPanel";
import { ProcessesPanel } from "./components/ProcessesPanel";
import { ProcessTimeline } from "./components/ProcessTimeline";
import { useConnection, useLiveFeed, usePeriodic } from "./hooks";
import { DEFAULT_THRESHOLDS } from "./thresholds";

/** /api/info rarely changes; retry it quickly until the first answer. */
const INFO_REFRESH_MS = 30_000;
const INFO_RETRY_MS = 2_000;

export function App() {
  const [connection, report] = useConnection();
  const [selection, setSelection] = useState<GpuSelection>(0);
  const [hours, setHours] = useState(1);
  const [live, setLive] = useState(true);
  const [shown, setShown] = useState<Realtime | null>(null);
  const latest = useRef<Realtime | null>(null);
  const liveRef = useRef(live);
  liveRef.current = live;

  const infoSeen = useRef(false);
  const knownInfo = usePeriodic<Info>("/api/info", infoSeen.current ? INFO_REFRESH_MS : INFO_RETRY_MS).data;
  infoSeen.current = knownInfo !== null;

  // Paused keeps the feed (and so the connection notice) running but freezes what is shown.
  const onSnapshot = useCallback((snapshot: Realtime) => {
    latest.current = snapshot;
    if (liveRef.current) setShown(snapshot);
  }, []);
  useLiveFeed(onSnapshot, report);

  const toggleLive = (): void => {
    if (!live && latest.current) setShown(latest.current);
    setLive(!live);
  };

  const thresholds = knownInfo?.thresholds ?? DEFAULT_THRESHOLDS;
  const allIds = (knownInfo?.gpus ?? shown?.gpus ?? []).map((gpu) => gpu.gpu_id);
  const selectedIds = selection === "all" ? allIds : allIds.filter((id) => id === selection);
  const ids = selectedIds.length > 0 ? selectedIds : allIds.slice(0, 1);
  const shownGpus = (shown?.gpus ?? []).filter((gpu) => ids.includes(gpu.gpu_id));
  // Tiles on a machine with several GPUs, or whose one GPU is split into MIG devices.

  return (
    <div className="app">
      <Header
        info={knownInfo}
        selection={selection}
        onSelect={setSelection}
        live={live}
        onToggleLive={toggleLive}
        lastUpdate={shown?.timestamp ?? null}
      />
      <ConnectionBanner state={connection} />
      {knownInfo?.message ? <p className="panel muted">{knownInfo.message}</p> : null}
      <main>
        {(shown?.gpus.length ?? 0) > 1 || shown?.gpus.some((gpu) => gpu.mig_devices?.length) ? (
          <GpuTiles gpus={shown?.gpus ?? []} thresholds={thresholds} selection={selection} onSelect={setSelection} />
        ) : null}
        <div className={`gauge-grid ${ids.length > 1 ? "side-by-side" : ""}`}>
          {shown === null ? <p className="panel muted">Waiting for the first reading…</p> : null}
          {shownGpus.map((gpu) => (
            <GpuGauges key={gpu.gpu_id} gpu={gpu} thresholds={thresholds} timestamp={shown?.timestamp ?? ""} />
          ))}
        </div>
        <div className="section-bar">
          <RangeButtons hours={hours} onChange={setHours} />
        </div>
        {ids.map((id) => (
          <ChartsPanel key={id} gpuId={id} hours={hours} />
        ))}
        <div className="two-col">
          <ProcessesPanel gpus={shownGpus} />
          <ProcessTimeline />
        </div>
        <LlmPanel />
        <EfficiencyPanel hours={hours} />
        <div className="two-col">
          {ids.map((id) => (
            <HeatmapPanel key={id} gpuId={id} />
          ))}
          <AlertsPanel />
        </div>
      </main>
    </div>
  );
}
