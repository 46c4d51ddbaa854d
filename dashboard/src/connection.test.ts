import { describe, expect, it } from "vitest";
import { bannerFor, type ConnectionEvent, connectionReducer, INITIAL_CONNECTION } from "./connection";

function run(events: ConnectionEvent[]) {
  return events.reduce(connectionReducer, INITIAL_CONNECTION);
}

describe("connection banner", () => {
  it("shows nothing while connecting or connected", () => {
    expect(bannerFor(INITIAL_CONNECTION, 0)).toBeNull();
    expect(bannerFor(run([{ type: "success", at: 0 }]), 0)).toBeNull();
  });

  it("says the connection is lost after a failure, counting from the first one", () => {
    const state = run([
      { type: "success", at: 0 },
      { type: "failure", at: 1000 },
      { type: "failure", at: 5000 },
    ]);
    expect(state.status).toBe("lost");
    const banner = bannerFor(state, 8000);
    expect(banner?.kind).toBe("lost");
    expect(banner?.text).toContain("Connection lost");
    expect(banner?.text).toContain("7 s");
  });

  it("says restored on the first success after a loss, then settles", () => {
    const restored = run([
      { type: "failure", at: 0 },
      { type: "success", at: 1000 },
    ]);
    expect(bannerFor(restored, 1000)?.text).toBe("Connection restored");
    expect(connectionReducer(restored, { type: "success", at: 2000 }).status).toBe("restored");
    const settled = connectionReducer(restored, { type: "settle" });
    expect(settled.status).toBe("ok");
    expect(bannerFor(settled, 2000)).toBeNull();
  });

  it("goes straight back to lost when the restored connection fails again", () => {
    const state = run([
      { type: "failure", at: 0 },
      { type: "success", at: 1000 },
      { type: "failure", at: 2000 },
    ]);
    expect(state).toEqual({ status: "lost", lostSince: 2000 });
  });

  it("ignores a late settle once lost again", () => {
    const lost = run([{ type: "failure", at: 0 }]);
    expect(connectionReducer(lost, { type: "settle" })).toBe(lost);
  });
});
