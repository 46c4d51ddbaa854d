"""The text tables of ``gpm status`` and ``gpm sessions``, from the model (the JSON forms of
the same data are gpm.views')."""

from __future__ import annotations

from gpm import __version__
from gpm.model import LlmSession, Snapshot
from gpm.textfmt import fmt, gib, tokens
from gpm.timefmt import to_rfc3339


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def status_table(snap: Snapshot) -> str:
    """``gpm status``: a line per GPU, its reasons, MIG devices and processes under it."""
    lines = [f"GPM {__version__} · {to_rfc3339(snap.timestamp)} · source: {snap.source}"]
    if not snap.gpus:
        lines.append(snap.message or "No GPUs.")
        return "\n".join(lines)
    header = (
        f"{'GPU':<4}{'NAME':<34}{'UTIL':>6}{'MEM GiB':>14}{'TEMP':>7}{'POWER':>14}{'FAN':>6}"
        "  HEALTH"
    )
    lines.append(header)
    for g in snap.gpus:
        name = (g.name or "?") + (" (sim)" if g.simulated else "")
        if not g.up:
            lines.append(f"{g.gpu_id:<4}{name[:33]:<34}DOWN: {g.error}")
            continue
        mem = f"{gib(g.memory_used_bytes)}/{gib(g.memory_total_bytes)}"
        power = f"{fmt(g.power_watts, 'W')}/{fmt(g.power_limit_watts, 'W')}"
        lines.append(
            f"{g.gpu_id:<4}{name[:33]:<34}{fmt(g.utilization_percent, '%'):>6}{mem:>14}"
            f"{fmt(g.temperature_celsius, 'C'):>7}{power:>14}{fmt(g.fan_percent, '%'):>6}"
            f"  {g.health or '-'}"
        )
        lines.extend(f"    ! {reason}" for reason in g.health_reasons)
        for m in g.mig_devices or ():
            label = f"  MIG {m.index} {m.profile or '?'}"
            mem = f"{gib(m.memory_used_bytes)}/{gib(m.memory_total_bytes)}"
            lines.append(f"{label:<38}{fmt(m.utilization_percent, '%'):>6}{mem:>14}")
        if g.processes is None:
            lines.append("    processes: unknown")
        for p in g.processes or ():
            c = p.classification
            workload = c.workload.value if c else "?"
            reason = c.reason if c else ""
            mem_mib = "-" if p.gpu_memory_bytes is None else f"{p.gpu_memory_bytes / 2**20:.0f}MiB"
            mig = "" if p.mig_index is None else f"MIG {p.mig_index}  "
            lines.append(
                f"    pid {p.pid:<8} {(p.name or '?')[:24]:<24} {mem_mib:>9}  "
                f"{mig}{workload:<16} {reason}"
            )
    return "\n".join(lines)


def sessions_table(sessions: list[LlmSession]) -> str:
    """``gpm sessions``: a line per session, newest first; ``*`` marks a cold start."""
    lines = [
        f"{'STARTED':<25}{'MODEL':<22}{'ENDPOINT':<22}{'OUT TOK':>8}{'TOK/S':>8}"
        f"{'TTFT ms':>9}{'DUR s':>8}{'J/TOK':>8}  OUTCOME"
    ]
    for s in sessions:
        cold = "*" if s.cold_start else " "
        lines.append(
            f"{to_rfc3339(s.started_at) or '':<25}{(s.model or '-')[:21]:<22}"
            f"{s.endpoint[:21]:<22}{tokens(s.completion_tokens, s.token_source):>8}"
            f"{fmt(s.tokens_per_second, '', 1):>8}"
            f"{fmt(s.ttft_ms):>8}{cold}{fmt(_seconds(s.duration_ms), '', 1):>8}"
            f"{fmt(s.joules_per_token, '', 2):>8}  {s.outcome.value}"
        )
    return "\n".join(lines)
