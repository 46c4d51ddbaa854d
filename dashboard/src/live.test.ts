import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Realtime } from "./api";
import { type EventSourceLike, LiveFeed } from "./live";

/** A stand-in for the browser's EventSource that the test drives by hand. */
class FakeStream implements EventSourceLike {
  onopen: ((event: Event) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  closed = false;
  private listeners: ((event: MessageEvent<string>) => void)[] = [];

  addEventListener(_type: string, listener: (event: MessageEvent<string>) => void): void {
    this.listeners.push(listener);
  }
  close(): void {
    this.closed = true;
  }
  emit(snapshot: Realtime | string): void {
    const data = typeof snapshot === "string" ? snapshot : JSON.stringify(snapshot);
    for (const listener of this.listeners) listener(new MessageEvent("snapshot", { data }));
  }
  fail(): void {
    this.onerror?.(new Event("error"));
  }
}

const snap = (timestamp: string): Realtime => ({ timestamp, source: "simulated", message: null, gpus: [] });

describe("LiveFeed", () => {
  let streams: FakeStream[];
  let realtime: () => Promise<Realtime>;
  let log: string[];
  let feed: LiveFeed;

  beforeEach(() => {
    vi.useFakeTimers();
    streams = [];
    log = [];
    realtime = () => Promise.reject(new TypeError("Failed to fetch"));
    feed = new LiveFeed({
      openStream: () => {
        const stream = new FakeStream();
        streams.push(stream);
        return stream;
      },
      fetchRealtime: () => realtime(),
      onSnapshot: (s) => log.push(`snapshot ${s.timestamp}`),
      onSuccess: () => log.push("ok"),
      onFailure: () => log.push("fail"),
      pollIntervalMs: 500,
      streamRetryMs: 5000,
      now: () => Date.now(),
    });
    feed.start();
  });

  afterEach(() => {
    feed.stop();
    vi.useRealTimers();
  });

  it("passes stream snapshots on and skips a torn event", () => {
    streams[0]?.emit(snap("t1"));
    streams[0]?.emit("{not json");
    expect(log).toEqual(["snapshot t1", "ok"]);
    expect(feed.polling).toBe(false);
  });

  it("reports a failure and polls every 500 ms while the stream is down", async () => {
    streams[0]?.fail();
    expect(streams[0]?.closed).toBe(true);
    expect(feed.polling).toBe(true);
    await vi.advanceTimersByTimeAsync(1100);
    expect(log.filter((entry) => entry === "fail").length).toBeGreaterThanOrEqual(3);
    expect(streams).toHaveLength(1);
  });

  it("recovers through polling, reopens the stream and stops polling once it delivers", async () => {
    streams[0]?.fail();
    await vi.advanceTimersByTimeAsync(600);
    realtime = () => Promise.resolve(snap("t2"));
    await vi.advanceTimersByTimeAsync(500);
    expect(log).toContain("snapshot t2");
    expect(log.at(-1)).toBe("ok");
    expect(streams).toHaveLength(2);
    streams[1]?.emit(snap("t3"));
    expect(feed.polling).toBe(false);
    const before = log.length;
    await vi.advanceTimersByTimeAsync(2000);
    expect(log).toHaveLength(before);
  });

  it("retries a broken stream only every few seconds while polling works", async () => {
    realtime = () => Promise.resolve(snap("p"));
    streams[0]?.fail();
    await vi.advanceTimersByTimeAsync(1000);
    expect(streams).toHaveLength(1);
    expect(log).not.toContain("fail");
    await vi.advanceTimersByTimeAsync(4600);
    expect(streams).toHaveLength(2);
    streams[1]?.fail();
    expect(log).not.toContain("fail");
    expect(feed.polling).toBe(true);
  });

  it("stops everything on stop()", async () => {
    streams[0]?.fail();
    feed.stop();
    const before = log.length;
    await vi.advanceTimersByTimeAsync(2000);
    expect(log).toHaveLength(before);
    expect(feed.polling).toBe(false);
  });
});
