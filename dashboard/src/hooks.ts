/** React hooks around the API: periodic fetches, the live feed and the connection state. */

import { useEffect, useReducer, useRef, useState } from "react";
import { getJson, type Realtime } from "./api";
import {
  type ConnectionState,
  connectionReducer,
  INITIAL_CONNECTION,
  RESTORED_NOTICE_MS,
} from "./connection";
import { LiveFeed } from "./live";

export interface Periodic<T> {
  data: T | null;
  /** The URL `data` was fetched from, so views can tell stale data from fresh. */
  url: string | null;
  error: string | null;
}

/**
 * Fetch `url` now and every `intervalMs`; a new URL refetches at once. Overlapping requests are
 * skipped and everything is cancelled on unmount, so a slow API never piles up requests.
 */
export function usePeriodic<T>(url: string | null, intervalMs: number): Periodic<T> {
  const [state, setState] = useState<Periodic<T>>({ data: null, url: null, error: null });
  useEffect(() => {
    if (url === null) return undefined;
    const controller = new AbortController();
    let busy = false;
    const load = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        const data = await getJson<T>(url, controller.signal);
        if (!controller.signal.aborted) setState({ data, url, error: null });
      } catch (error) {
        if (!controller.signal.aborted) {
          setState((previous) => ({ ...previous, error: String(error) }));
        }
      } finally {
        busy = false;
      }
    };
    void load();
    const timer = setInterval(() => void load(), intervalMs);
    return () => {
      controller.abort();
      clearInterval(timer);
    };
  }, [url, intervalMs]);
  return state;
}

/** The connection state, settling "restored" back to "ok" after the notice has been seen. */
export function useConnection(): [ConnectionState, (ok: boolean) => void] {
  const [state, dispatch] = useReducer(connectionReducer, INITIAL_CONNECTION);
  useEffect(() => {
    if (state.status !== "restored") return undefined;
    const timer = setTimeout(() => dispatch({ type: "settle" }), RESTORED_NOTICE_MS);
    return () => clearTimeout(timer);
  }, [state.status]);
  const report = useRef((ok: boolean) =>
    dispatch(ok ? { type: "success", at: Date.now() } : { type: "failure", at: Date.now() }),
  );
  return [state, report.current];
}

/** Subscribe to the realtime feed for the component's lifetime. */
export function useLiveFeed(
  onSnapshot: (snapshot: Realtime) => void,
  report: (ok: boolean) => void,
): void {
  const handler = useRef(onSnapshot);
  handler.current = onSnapshot;
  useEffect(() => {
    const feed = new LiveFeed({
      openStream: (url) => new EventSource(url),
      fetchRealtime: (signal) => getJson<Realtime>("/api/realtime", signal),
      onSnapshot: (snapshot) => handler.current(snapshot),
      onSuccess: () => report(true),
      onFailure: () => report(false),
    });
    feed.start();
    return () => feed.stop();
  }, [report]);
}

/** Re-render every `intervalMs` (for ticking "lost for N s" text). */
export function useNow(intervalMs: number, active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, active]);
  return now;
}
