/**
 * The realtime feed: the SSE stream /api/stream, with polling of /api/realtime while the stream
 * is down. Polling keeps the gauges moving behind proxies that buffer SSE, and tells the
 * connection banner the moment GPM answers again.
 */

import type { Realtime } from "./api";

export interface EventSourceLike {
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void;
  onopen: ((event: Event) => void) | null;
  onerror: ((event: Event) => void) | null;
  close(): void;
}

export interface LiveFeedOptions {
  openStream: (url: string) => EventSourceLike;
  fetchRealtime: (signal: AbortSignal) => Promise<Realtime>;
  onSnapshot: (snapshot: Realtime) => void;
  onSuccess: () => void;
  onFailure: () => void;
  pollIntervalMs?: number;
  /** While polling works, how often to try the stream again. */
  streamRetryMs?: number;
  now?: () => number;
}

export const STREAM_URL = "/api/stream";
export const POLL_INTERVAL_MS = 500;
export const STREAM_RETRY_MS = 5000;

export class LiveFeed {
  private stream: EventSourceLike | null = null;
  private pollTimer: ReturnType<typeof setInterval> | null = null;
  private inFlight: AbortController | null = null;
  private lastStreamAttempt = Number.NEGATIVE_INFINITY;
  private lastPollFailed = false;
  private stopped = false;

  constructor(private readonly options: LiveFeedOptions) {}

  start(): void {
    this.stopped = false;
    this.connectStream();
  }

  stop(): void {
    this.stopped = true;
    this.stream?.close();
    this.stream = null;
    this.stopPolling();
  }

  get polling(): boolean {
    return this.pollTimer !== null;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private connectStream(): void {
    this.lastStreamAttempt = this.now();
    const stream = this.options.openStream(STREAM_URL);
    this.stream = stream;
    stream.onopen = () => {
      if (!this.polling) this.options.onSuccess();
    };
    stream.addEventListener("snapshot", (event) => {
      if (this.stream !== stream) return;
      let snapshot: Realtime;
      try {
        snapshot = JSON.parse(event.data) as Realtime;
      } catch {
        return; // a torn event; the next poll brings a whole one
      }
      this.stopPolling();
      this.options.onSnapshot(snapshot);
      this.options.onSuccess();
    });
    stream.onerror = () => {
      stream.close();
      if (this.stream !== stream) return;
      this.stream = null;
      // Polls speak for the connection: a stream that will not open (a proxy that buffers SSE,
      // say) is no outage, and a GPM that is gone fails the first poll at once.
      this.startPolling();
    };
  }

  private startPolling(): void {
    if (this.polling || this.stopped) return;
    this.pollTimer = setInterval(() => void this.poll(), this.options.pollIntervalMs ?? POLL_INTERVAL_MS);
    void this.poll();
  }

  private stopPolling(): void {
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    this.pollTimer = null;
    this.inFlight?.abort();
    this.inFlight = null;
  }

  private async poll(): Promise<void> {
    if (this.inFlight) return;
    const controller = new AbortController();
    this.inFlight = controller;
    try {
      const snapshot = await this.options.fetchRealtime(controller.signal);
      if (controller.signal.aborted) return;
      this.options.onSnapshot(snapshot);
      this.options.onSuccess();
      // Back from an outage: the stream most likely works again. Otherwise retry it sparingly.
      const retry = this.lastPollFailed ? 0 : (this.options.streamRetryMs ?? STREAM_RETRY_MS);
      this.lastPollFailed = false;
      if (!this.stream && this.now() - this.lastStreamAttempt >= retry) this.connectStream();
    } catch {
      if (!controller.signal.aborted) {
        this.lastPollFailed = true;
        this.options.onFailure();
      }
    } finally {
      if (this.inFlight === controller) this.inFlight = null;
    }
  }
}
