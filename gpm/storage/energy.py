"""Energy history: what each GPU, workload and model used over a range, from the hourly energy
rows and the sessions' own energy (SQLite and the Parquet archives together).

Hourly rows are counted whole when their hour starts inside the range, so a range is measured
to the hour; sessions count by their start time.
"""

from __future__ import annotations

from gpm.energy.attribution import IDLE
from gpm.stats import percentile
from gpm.storage.reader import Dict, Reader
from gpm.storage.results import EnergyHistory, GpuEnergy, HourEnergy, ModelEnergy

_SESSION_COLUMNS = ("model", "completion_tokens", "energy_joules", "tokens_per_second")


class EnergyQueries(Reader):
    def _energy_rows(self, start: float, end: float) -> list[Dict]:
        return [
            dict(r)
            for r in self._conn().execute(
                "SELECT hour, gpu_id, workload, joules FROM energy WHERE hour >= ? AND hour < ?",
                (start, end),
            )
        ] + self._archived_dicts("energy", start, end)

    def gpu_workload_joules(self, start: float, end: float) -> dict[tuple[int, str], float]:
        """Joules per (GPU, workload) over the hours starting in [start, end)."""
        out: dict[tuple[int, str], float] = {}
        for r in self._energy_rows(start, end):
            key = (r["gpu_id"], r["workload"])
            out[key] = out.get(key, 0.0) + r["joules"]
        return out

    def energy(self, start: float, end: float) -> EnergyHistory:
        rows = self._energy_rows(start, end)
        sessions = self.generation_rows(start, end, _SESSION_COLUMNS)
        return EnergyHistory(
            start=start,
            end=end,
            gpus=_by_gpu(rows),
            workloads=_sums(rows, "workload", exclude=IDLE),
            models=_by_model(sessions),
            hours=tuple(
                HourEnergy(hour, workload, joules)
                for (hour, workload), joules in sorted(_hourly(rows).items())
            ),
        )


def _by_gpu(rows: list[Dict]) -> tuple[GpuEnergy, ...]:
    total: dict[int, float] = {}
    idle: dict[int, float] = {}
    for r in rows:
        total[r["gpu_id"]] = total.get(r["gpu_id"], 0.0) + r["joules"]
        if r["workload"] == IDLE:
            idle[r["gpu_id"]] = idle.get(r["gpu_id"], 0.0) + r["joules"]
    return tuple(GpuEnergy(g, total[g], idle.get(g, 0.0)) for g in sorted(total))


def _sums(rows: list[Dict], key: str, exclude: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        if r[key] != exclude:
            out[r[key]] = out.get(r[key], 0.0) + r["joules"]
    return dict(sorted(out.items()))


def _hourly(rows: list[Dict]) -> dict[tuple[float, str], float]:
    out: dict[tuple[float, str], float] = {}
    for r in rows:
        key = (r["hour"], r["workload"])
        out[key] = out.get(key, 0.0) + r["joules"]
    return out


def _by_model(sessions: list[Dict]) -> tuple[ModelEnergy, ...]:
    by: dict[str, list[Dict]] = {}
    for s in sessions:
        by.setdefault(s["model"] or "(unknown)", []).append(s)
    out = []
    for model, rows in sorted(by.items()):
        measured = [r for r in rows if r["energy_joules"] is not None]
        # J/token only over sessions with both figures: an unknown never counts as 0.
        both = [r for r in measured if r["completion_tokens"]]
        joules = sum(r["energy_joules"] for r in both)
        tokens = sum(r["completion_tokens"] for r in both)
        rates = [r["tokens_per_second"] for r in rows if r["tokens_per_second"] is not None]
        out.append(
            ModelEnergy(
                model=model,
                sessions=len(rows),
                sessions_measured=len(measured),
                joules=sum(r["energy_joules"] for r in measured) if measured else None,
                completion_tokens=tokens if both else None,
                joules_per_token=joules / tokens if both and tokens else None,
                tokens_per_second_p50=percentile(rates, 50),
            )
        )
    return tuple(out)
