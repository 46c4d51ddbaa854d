"""Known live state and sessions shared by the telemetry tests and the bench."""

from __future__ import annotations

from collections import Counter

from gpm.energy.meter import EnergyTotals
from gpm.model import (
    Classification,
    GpuProcess,
    GpuSample,
    HostInfo,
    LlmSession,
    LoadedModel,
    Outcome,
    Snapshot,
    Workload,
)
from gpm.state import Health, LiveState

NOW = 1_795_780_800.0  # 2026-11-27T10:00:00Z

_WORKLOADS = tuple(Workload)


def sample_gpu(gpu_id: int, processes: int = 2) -> GpuSample:
    """A fully reported GPU; GPU 0 reads 65 C and 40% utilization."""
    procs = tuple(
        GpuProcess(
            pid=1000 + gpu_id * 1000 + i,
            name=f"proc{i}",
            gpu_memory_bytes=(i + 1) * 2**28,
            classification=Classification(_WORKLOADS[i % len(_WORKLOADS)], "test")
            if i % 5
            else None,
        )
        for i in range(processes)
    )
    return GpuSample(
        gpu_id=gpu_id,
        timestamp=NOW,
        uuid=f"GPU-0000000{gpu_id}-aaaa-bbbb-cccc-dddddddddddd",
        name="NVIDIA GeForce RTX 4090",
        utilization_percent=40.0 + gpu_id,
        memory_utilization_percent=20.0,
        memory_used_bytes=8 * 2**30,
        memory_total_bytes=24 * 2**30,
        memory_free_bytes=16 * 2**30,
        temperature_celsius=65.0 + gpu_id,
        power_watts=250.5,
        power_limit_watts=450.0,
        fan_percent=55.0,
        clock_graphics_mhz=2520,
        clock_sm_mhz=2520,
        clock_memory_mhz=10501,
        performance_state=2,
        encoder_utilization_percent=0.0,
        decoder_utilization_percent=5.0,
        pcie_tx_bytes_per_second=1_000_000,
        pcie_rx_bytes_per_second=3_000_000,
        throttle_reasons=("sw_power_cap",),
        energy_joules=123_456.0,
        ecc_errors_corrected=3,
        ecc_errors_uncorrected=0,
        processes=procs,
        health="ok",
    )


def live_state(gpus: int = 2, processes: int = 2, models: int = 2) -> LiveState:
    """Two readable GPUs plus one lost GPU (only gpm_gpu_up/info may appear for it)."""
    samples = [sample_gpu(i, processes) for i in range(gpus)]
    samples.append(GpuSample(gpu_id=gpus, timestamp=NOW, up=False, error="GPU is lost"))
    health = Health(
        started_at=NOW - 60,
        last_poll_at=NOW,
        last_success_at=NOW,
        last_poll_seconds=0.012,
        polls=30,
        polls_skipped=1,
        errors=Counter({"nvml": 2}),
    )
    return LiveState(
        snapshot=Snapshot(timestamp=NOW, source="nvml", gpus=tuple(samples), poll_seconds=0.012),
        models=tuple(
            LoadedModel(name=f"model{i}:7b", size_bytes=5 * 2**30, vram_bytes=(i + 4) * 2**30)
            for i in range(models)
        ),
        backend_up=True,
        backend_version="0.12.0",
        health=health,
        host=HostInfo("gpu-box", "0.2.0", "550.54.15", "12.4", "http://gpu-box:8010"),
        energy=EnergyTotals(
            by_gpu={0: 5000.0, 1: 900.0},
            idle_by_gpu={0: 1000.0, 1: 900.0},
            by_workload={"llm_inference": 3500.0, "gaming": 500.0},
            methods={0: "counter", 1: "power_integral"},
        ),
    )


def session(
    model: str | None = "qwen2:0.5b",
    *,
    kind: str = "generation",
    outcome: Outcome = Outcome.COMPLETED,
    ttft_ms: float | None = 130.0,
    tokens_per_second: float | None = 62.0,
    duration_ms: float | None = 4800.0,
    endpoint: str = "/api/chat",
    energy_joules: float | None = 596.0,
) -> LlmSession:
    return LlmSession(
        id="s1",
        model=model,
        endpoint=endpoint,
        started_at=NOW,
        outcome=outcome,
        kind=kind,
        prompt_tokens=26,
        completion_tokens=298,
        tokens_per_second=tokens_per_second,
        ttft_ms=ttft_ms,
        duration_ms=duration_ms,
        eval_duration_ms=4800.0,
        chunk_gaps_ms=(20.0, 30.0, 40.0),
        energy_joules=energy_joules,
        energy_rule="backend_process",
        prompt_text="secret prompt that must never leave the proxy",
    )
