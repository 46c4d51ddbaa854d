import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { LlmSessions } from "../api";
import fixture from "../fixtures/llm-sessions.json";
import { SessionsTable } from "./SessionsTable";

afterEach(cleanup);

describe("SessionsTable", () => {
  it("renders one row per session with formatted figures", () => {
    render(<SessionsTable data={fixture as LlmSessions} />);
    const rows = screen.getAllByTestId("session-row");
    expect(rows).toHaveLength(3);
    const cells = within(rows[0] as HTMLElement)
      .getAllByRole("cell")
      .map((cell) => cell.textContent);
    expect(cells.slice(1)).toEqual(["qwen2:0.5b", "324", "62.1", "130 ms", "4.80 s", "completed"]);
    expect(screen.getByText("3 of 3 sessions in the last 24 hours")).toBeTruthy();
  });

  it("shows dashes for what the backend did not report", () => {
    render(<SessionsTable data={fixture as LlmSessions} />);
    const cancelled = within(screen.getAllByTestId("session-row")[1] as HTMLElement)
      .getAllByRole("cell")
      .map((cell) => cell.textContent);
    expect(cancelled.slice(1)).toEqual(["llama3.2:1b", "12", "—", "—", "1 m 02 s", "cancelled"]);
    const failed = within(screen.getAllByTestId("session-row")[2] as HTMLElement)
      .getAllByRole("cell")
      .map((cell) => cell.textContent);
    expect(failed.slice(1)).toEqual(["—", "—", "—", "—", "3 ms", "error"]);
  });

  it("says so when there are no sessions", () => {
    render(<SessionsTable data={{ total: 0, sessions: [] }} />);
    expect(screen.getByTestId("sessions-empty").textContent).toContain("No LLM sessions");
  });
});
