import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { LlmSessions } from "../api";
import fixture from "../fixtures/llm-sessions.json";
import { SessionsTable } from "./SessionsTable";

afterEach(cleanup);

describe("SessionsTable", () => {
  const cellsOf = (row: number) =>
    within(screen.getAllByTestId("session-row")[row] as HTMLElement)
      .getAllByRole("cell")
      .map((cell) => cell.textContent);

  it("renders one row per session with formatted figures", () => {
    render(<SessionsTable data={fixture as LlmSessions} />);
    expect(screen.getAllByTestId("session-row")).toHaveLength(4);
    expect(cellsOf(1).slice(1)).toEqual([
      "qwen2:0.5b",
      "298",
      "62.1",
      "1.63 s coldload 1.50 s · prefill 24 ms · other 107 ms",
      "16 ms",
      "6.40 s",
      "completed",
    ]);
    expect(screen.getByText("4 of 4 sessions in the last 24 hours")).toBeTruthy();
  });

  it("marks a token count the proxy made from the stream", () => {
    render(<SessionsTable data={fixture as LlmSessions} />);
    expect(cellsOf(0).slice(1, 6)).toEqual(["tiny-llama", "~32", "410.5", "21 ms", "2 ms"]);
    expect(screen.getByTitle(/the server sent no count/).textContent).toBe("~32");
  });

  it("shows dashes for what the backend did not report", () => {
    render(<SessionsTable data={fixture as LlmSessions} />);
    expect(cellsOf(2).slice(1)).toEqual(["llama3.2:1b", "—", "—", "—", "—", "1 m 02 s", "cancelled"]);
    expect(cellsOf(3).slice(1)).toEqual(["—", "—", "—", "—", "—", "3 ms", "error"]);
  });

  it("says so when there are no sessions", () => {
    render(<SessionsTable data={{ total: 0, sessions: [], next: null }} />);
    expect(screen.getByTestId("sessions-empty").textContent).toContain("No LLM sessions");
  });
});
