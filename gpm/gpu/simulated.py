"""Simulated GPUs for demo mode and for machines without an NVIDIA GPU.

Every reading is a pure function of the seed, the GPU number and ``now`` (slow sinusoids plus
noise keyed on the whole second), so a dashboard, a test or a screenshot replays exactly. Each GPU
has a hot spell past 85 C for a minute and a half every ten minutes, staggered between GPUs, so
the temperature alert can be shown, and one process comes and goes every five minutes so process
start/end events appear too.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from gpm.energy.ledger import EnergyRead
from gpm.model import Classification, GpuProcess, GpuSample, Snapshot, Workload

MIB = 1024 * 1024
MEMORY_TOTAL = 24564 * MIB
POWER_LIMIT = 450.0
HOT_CYCLE = 600.0  # seconds between hot spells of one GPU
HOT_SPELL = 90.0  # how long a hot spell lasts
VISITOR_CYCLE = 300.0  # the coming-and-going process is present for the first half of this
PID_BASE = 4_000_000  # far above any real pid_max default, so never mistaken for a real process
SERVER_PID = PID_BASE - 1  # the simulated `ollama serve`, parent of the runners on every GPU


@dataclass(frozen=True, slots=True)
class _Proc:
    name: str
    workload: Workload
    kind: str
    memory_mib: int
    model: str | None = None
    steam_app_id: int | None = None
    runner: bool = False  # a runner of the one simulated Ollama server


# A fixed cast per GPU (cycled when there are more GPUs than entries).
_CASTS: tuple[tuple[_Proc, ...], ...] = (
    (
        _Proc("ollama", Workload.LLM_INFERENCE, "compute", 6200, "llama3.1:8b", runner=True),
        _Proc("python train.py", Workload.ML_TRAINING, "compute", 9800),
    ),
    (
        _Proc("game.exe", Workload.GAMING, "graphics", 5400, steam_app_id=1091500),
        _Proc("ollama", Workload.LLM_INFERENCE, "compute", 2100, "qwen2:0.5b", runner=True),
    ),
    (_Proc("python finetune.py", Workload.ML_TRAINING, "compute", 15800),),
)
_VISITOR = _Proc("blender", Workload.GENERAL_COMPUTE, "compute+graphics", 1500)


def _wave(t: float, period: float, phase: float) -> float:
    return math.sin(2 * math.pi * t / period + phase)


class SimulatedSource:
    """GpuSource with ``count`` plausible, deterministic GPUs (``simulated`` is True on each).

    ``clock_start`` is when the simulated driver "loaded": energy counts from there and the
    standing processes started then. Left None it is the first poll's ``now``.
    """

    name = "simulated"

    def __init__(self, count: int, seed: int = 0, clock_start: float | None = None) -> None:
        if count < 1:
            raise ValueError(f"simulated GPU count must be at least 1, got {count}")
        self.count = count
        self.seed = seed
        self.clock_start = clock_start
        rng = random.Random(seed)
        # Per GPU: load phase, load period (s), baseline load.
        self._shape = [
            (rng.uniform(0, 2 * math.pi), rng.uniform(120, 400), rng.uniform(35, 65))
            for _ in range(count)
        ]

    def uuid(self, gpu_id: int) -> str:
        return f"GPU-5130{self.seed % 0x10000:04x}-0000-4000-8000-sim-{gpu_id}"

    def _noise(self, gpu_id: int, now: float, spread: float) -> float:
        rng = random.Random(f"{self.seed}:{gpu_id}:{math.floor(now)}")
        return rng.uniform(-spread, spread)

    def _hot(self, gpu_id: int, now: float) -> float | None:
        """Seconds into this GPU's hot spell, or None outside one."""
        offset = gpu_id * HOT_CYCLE / max(self.count, 2) + HOT_CYCLE / 3
        into = (now + offset) % HOT_CYCLE
        return into if into < HOT_SPELL else None

    def _processes(self, gpu_id: int, now: float, start: float) -> tuple[GpuProcess, ...]:
        cast = list(_CASTS[gpu_id % len(_CASTS)])
        starts = [start - 3600.0 * (k + 1) for k in range(len(cast))]
        window = math.floor(now / VISITOR_CYCLE) * VISITOR_CYCLE
        if gpu_id % 2 == 0 and now - window < VISITOR_CYCLE / 2:
            cast.append(_VISITOR)
            starts.append(window)
        procs = []
        for k, (proc, started) in enumerate(zip(cast, starts, strict=True)):
            wobble = 1 + 0.05 * _wave(now, 90 + 17 * k, gpu_id + k)
            procs.append(
                GpuProcess(
                    pid=PID_BASE + gpu_id * 100 + k,
                    name=proc.name,
                    gpu_memory_bytes=round(proc.memory_mib * wobble) * MIB,
                    sm_utilization_percent=None,
                    kind=proc.kind,
                    user="demo",
                    started_at=started,
                    classification=Classification(
                        workload=proc.workload,
                        reason="simulated",
                        model=proc.model,
                        steam_app_id=proc.steam_app_id,
                    ),
                    parent_pid=SERVER_PID if proc.runner else None,
                    parent_name="ollama" if proc.runner else None,
                )
            )
        return tuple(procs)

    def sample(self, gpu_id: int, now: float) -> GpuSample:
        """The reading of one GPU at ``now``."""
        start = now if self.clock_start is None else self.clock_start
        phase, period, base = self._shape[gpu_id]
        util = base + 35 * _wave(now, period, phase) + self._noise(gpu_id, now, 4)
        util = min(100.0, max(0.0, util))
        hot = self._hot(gpu_id, now)
        temp = 34 + 0.42 * util + self._noise(gpu_id, now + 0.5, 0.8)
        if hot is not None:  # ramps up over 20 s, holds near 88-90 C, then drops back
            temp = max(temp, 70 + min(hot / 20, 1) * (88 - 70) + 2 * _wave(now, 40, phase))
        # Power: smooth part has a closed-form integral, so energy is exact and monotonic.
        p_mid, p_amp = 120 + 4 * base, 100.0
        power = p_mid + p_amp * _wave(now, period, phase) + self._noise(gpu_id, now + 0.25, 6)
        omega = 2 * math.pi / period
        energy = p_mid * (now - start) - p_amp / omega * (
            math.cos(omega * now + phase) - math.cos(omega * start + phase)
        )
        procs = self._processes(gpu_id, now, start)
        used = 650 * MIB + sum(p.gpu_memory_bytes or 0 for p in procs)
        reasons: list[str] = []
        if util < 5:
            reasons.append("gpu_idle")
        if power > 0.95 * POWER_LIMIT:
            reasons.append("sw_power_cap")
        if temp >= 85:
            reasons.append("sw_thermal_slowdown")
        busy = util >= 5
        clock = round(2520 - 8 * max(0.0, temp - 80)) if busy else 210
        return GpuSample(
            gpu_id=gpu_id,
            timestamp=now,
            uuid=self.uuid(gpu_id),
            name="GPM Simulated RTX 4090",
            simulated=True,
            utilization_percent=round(util, 1),
            memory_utilization_percent=round(util * 0.45, 1),
            memory_used_bytes=used,
            memory_total_bytes=MEMORY_TOTAL,
            memory_free_bytes=MEMORY_TOTAL - used,
            temperature_celsius=round(temp, 1),
            power_watts=round(min(power, POWER_LIMIT), 2),
            power_limit_watts=POWER_LIMIT,
            fan_percent=round(min(100.0, max(30.0, (temp - 30) * 1.6)), 1),
            clock_graphics_mhz=clock,
            clock_sm_mhz=clock,
            clock_memory_mhz=10501 if busy else 405,
            performance_state=2 if busy else 8,
            encoder_utilization_percent=0.0,
            decoder_utilization_percent=round(max(0.0, 8 * _wave(now, 300, phase)), 1),
            pcie_tx_bytes_per_second=round(util * 40e6),
            pcie_rx_bytes_per_second=round(util * 90e6),
            throttle_reasons=tuple(reasons),
            energy_joules=round(energy, 1),
            ecc_errors_corrected=0,
            ecc_errors_uncorrected=0,
            processes=procs,
        )

    def read_energy(self, now: float) -> list[EnergyRead]:
        """The simulated energy counter, as NVML's would be read at an LLM session's edge."""
        return [
            EnergyRead(g.gpu_id, now, g.energy_joules, None)
            for g in (self.sample(i, now) for i in range(self.count))
        ]

    def poll(self, now: float) -> Snapshot:
        if self.clock_start is None:
            self.clock_start = now
        gpus = tuple(self.sample(i, now) for i in range(self.count))
        return Snapshot(timestamp=now, source=self.name, gpus=gpus, poll_seconds=0.0)

    def close(self) -> None:
        """Nothing to release."""
