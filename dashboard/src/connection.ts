/** Whether the dashboard can reach GPM, and which notice the banner shows. */

export type ConnectionStatus = "connecting" | "ok" | "lost" | "restored";

export interface ConnectionState {
  status: ConnectionStatus;
  /** Epoch ms of the first failure in the current outage. */
  lostSince: number | null;
}

export type ConnectionEvent =
  | { type: "success"; at: number }
  | { type: "failure"; at: number }
  /** The "restored" notice has been shown long enough. */
  | { type: "settle" };

export const INITIAL_CONNECTION: ConnectionState = { status: "connecting", lostSince: null };

/** How long "Connection restored" stays up. */
export const RESTORED_NOTICE_MS = 4000;

export function connectionReducer(state: ConnectionState, event: ConnectionEvent): ConnectionState {
  switch (event.type) {
    case "failure":
      return state.status === "lost" ? state : { status: "lost", lostSince: event.at };
    case "success":
      if (state.status === "lost") return { status: "restored", lostSince: null };
      return state.status === "connecting" ? { status: "ok", lostSince: null } : state;
    case "settle":
      return state.status === "restored" ? { status: "ok", lostSince: null } : state;
  }
}

export interface Banner {
  kind: "lost" | "restored";
  text: string;
}

export function bannerFor(state: ConnectionState, now: number): Banner | null {
  if (state.status === "lost") {
    const secs = state.lostSince === null ? 0 : Math.max(0, Math.round((now - state.lostSince) / 1000));
    return { kind: "lost", text: `Connection lost — retrying (${secs} s)` };
  }
  if (state.status === "restored") return { kind: "restored", text: "Connection restored" };
  return null;
}
