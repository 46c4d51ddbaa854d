import { act, cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RESTORED_NOTICE_MS } from "../connection";
import { useConnection } from "../hooks";
import { ConnectionBanner } from "./ConnectionBanner";

afterEach(() => {
  cleanup();
  vi.useRealTimers();
});

let report: (ok: boolean) => void = () => undefined;

function Harness() {
  const [state, reportFn] = useConnection();
  report = reportFn;
  return <ConnectionBanner state={state} />;
}

describe("ConnectionBanner", () => {
  it("alerts on a loss, then shows restored briefly and clears", () => {
    vi.useFakeTimers();
    render(<Harness />);
    act(() => report(true));
    expect(screen.queryByRole("alert")).toBeNull();
    act(() => report(false));
    expect(screen.getByRole("alert").textContent).toContain("Connection lost");
    act(() => report(true));
    expect(screen.getByRole("alert").textContent).toBe("Connection restored");
    act(() => vi.advanceTimersByTime(RESTORED_NOTICE_MS + 10));
    expect(screen.queryByRole("alert")).toBeNull();
  });
});
