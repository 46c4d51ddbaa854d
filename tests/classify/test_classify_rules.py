"""Classification rules over recorded process facts (fixture /proc trees in the real formats)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpm.classify.facts import ProcessFacts, read_facts
from gpm.classify.rules import classify, container_of, model_name
from gpm.model import Classification, Workload
from gpm.settings import ClassifierRule

PROC = Path(__file__).parent.parent / "fixtures" / "proc"

G, L, T, C = (
    Workload.GAMING,
    Workload.LLM_INFERENCE,
    Workload.ML_TRAINING,
    Workload.GENERAL_COMPUTE,
)
DEFAULT = "no game, LLM or ML evidence"


def facts(case: str, pid: int) -> ProcessFacts:
    found = read_facts(pid, PROC / case)
    assert found is not None, f"fixture {case}/{pid} missing"
    return found


@pytest.mark.parametrize(
    ("case", "pid", "kind", "workload", "reason"),
    [
        ("steam_env", 2001, "graphics", G, "env: SteamAppId=570"),
        ("steam_env", 2000, "graphics", C, DEFAULT),
        ("steam_reaper", 3002, "graphics", G, "parent: reaper SteamLaunch AppId=440"),
        ("steam_install", 3102, "compute", C, DEFAULT),
        ("wine", 4001, "compute", G, "cmdline: wineserver"),
        ("wine", 4002, "graphics", G, "cmdline: game.exe under wine"),
        ("wine", 4005, "graphics", G, "exe: wine64-preloader"),
        ("wine", 4003, "graphics", G, "cmdline: proton"),
        ("wine", 4004, "graphics", G, "cmdline: launcher.exe under wine"),
        ("launchers", 5001, "graphics", C, DEFAULT),
        ("launchers", 5002, "graphics", G, "parent: gamescope"),
        ("launchers", 5103, "graphics", G, "parent: lutris"),
        ("launchers", 5202, "graphics", G, "parent: heroic"),
        ("ollama", 6001, "compute", L, "cmdline: ollama serve"),
        ("ollama", 6002, "compute", L, "cmdline: ollama runner"),
        ("ollama", 6003, "compute", L, "cmdline: ollama_llama_server"),
        ("llamacpp", 7001, "compute", L, "cmdline: llama-server"),
        ("llamacpp", 7002, "compute", L, "maps: libllama.so"),
        ("llamacpp", 7003, "compute", L, "cmdline: koboldcpp-linux-x64-cuda1210"),
        ("vllm", 8001, "compute", L, "cmdline: vllm serve"),
        ("vllm", 8002, "compute", L, "cmdline: -m vllm.entrypoints.openai.api_server"),
        ("vllm", 8003, "compute", L, "maps: vllm/_C.abi3.so"),
        ("vllm", 8004, "compute", L, "cmdline: VLLM::EngineCore"),
        ("vllm", 8005, "compute", L, "cmdline: -m sglang.launch_server"),
        ("vllm", 8006, "compute", L, "cmdline: text-generation-launcher"),
        ("vllm", 8007, "compute", L, "cmdline: main.py"),
        ("training", 9001, "compute", T, "maps: libtorch_cuda.so"),
        ("training", 9101, "compute", T, "cmdline: torchrun"),
        ("training", 9102, "compute", T, "parent: torchrun"),
        ("training", 9201, "compute", T, "maps: xla_extension.so"),
        ("training", 9202, "compute", T, "maps: libtensorflow_framework.so.2"),
        ("training", 9301, "compute", T, "cmdline: accelerate launch"),
        ("general", 9401, "compute", C, DEFAULT),
        ("general", 9402, "graphics", C, DEFAULT),
        ("general", 9403, "graphics", C, DEFAULT),
        ("general", 9404, "graphics", C, DEFAULT),
        ("general", 9405, "compute", C, DEFAULT),
        ("general", 9501, "graphics", G, "maps: UnityPlayer.so"),
        ("general", 9501, "compute", C, DEFAULT),
    ],
)
def test_builtin_rules(case: str, pid: int, kind: str, workload: Workload, reason: str) -> None:
    got = classify(facts(case, pid), kind=kind)
    assert (got.workload, got.reason) == (workload, reason)


def test_steam_app_id_is_kept_from_env_and_from_reaper() -> None:
    assert classify(facts("steam_env", 2001)).steam_app_id == 570
    assert classify(facts("steam_reaper", 3002)).steam_app_id == 440
    # Not gaming, so no AppId even though the environment carries one.
    assert classify(facts("steam_install", 3102)).steam_app_id is None


def test_llm_model_names() -> None:
    assert classify(facts("vllm", 8001)).model == "Qwen/Qwen2-0.5B-Instruct"
    assert classify(facts("vllm", 8002)).model == "meta-llama/Llama-3.1-8B-Instruct"
    assert classify(facts("vllm", 8005)).model == "Qwen/Qwen2-7B"
    assert classify(facts("vllm", 8006)).model == "bigscience/bloom-560m"
    assert classify(facts("llamacpp", 7001)).model == "qwen2-0_5b-instruct-q4_k_m.gguf"
    assert classify(facts("llamacpp", 7002)).model == "Qwen/Qwen2-0.5B-Instruct-GGUF"
    assert classify(facts("ollama", 6002)).model is None  # a blob digest is not a name
    assert classify(facts("ollama", 6001)).model is None


@pytest.mark.parametrize(
    ("cmdline", "model"),
    [
        (["python3", "-m", "mymod", "--model", "x"], "x"),  # python's -m is the module
        (["llama-cli", "-m", "./m/phi-3.gguf"], "phi-3.gguf"),
        (["vllm", "serve", "--port", "1"], None),
        (["llama-server", "--model"], None),
        ([], None),
    ],
)
def test_model_name_edges(cmdline: list[str], model: str | None) -> None:
    assert model_name(cmdline) == model


def test_user_rules_win_over_builtin_rules_and_match_name_or_cmdline() -> None:
    server = facts("llamacpp", 7001)
    by_name = ClassifierRule(pattern="^llama-server$", workload=T, field="name")
    by_cmdline = ClassifierRule(pattern=r"--port 8080", workload=G)
    unrelated = ClassifierRule(pattern="^ffmpeg$", workload=G, field="name")
    assert classify(server, rules=[unrelated, by_name]) == Classification(
        T, "rule: ^llama-server$", container=None
    )
    assert classify(server, rules=[by_cmdline]).reason == "rule: --port 8080"
    assert classify(server, rules=[unrelated]).workload is L


def test_unreadable_files_classify_from_what_is_readable() -> None:
    game = facts("steam_reaper", 3002)
    assert game.environ is None and game.maps_libs is None
    assert classify(game, kind="graphics").workload is G
    worker = facts("training", 9102)
    assert worker.environ is None and worker.maps_libs is None
    assert classify(worker).reason == "parent: torchrun"


@pytest.mark.parametrize(
    ("pid", "container"),
    [
        (9701, "docker:3f2a1b2c3d4e"),
        (9702, "docker:3f2a1b2c3d4e"),
        (9703, "podman:5e6f7a8b9c0d"),
        (9704, "k8s:1b2c3d4e-5f6a-7b8c-9d0e-1f2a3b4c5d6e"),
        (9705, "k8s:1b2c3d4e-5f6a-7b8c-9d0e-1f2a3b4c5d6e"),
        (9706, None),
    ],
)
def test_containers_from_cgroup_v1_and_v2(pid: int, container: str | None) -> None:
    assert classify(facts("containers", pid)).container == container


def test_container_of_other_runtimes_and_nothing() -> None:
    assert container_of("0::/lxc.payload.web1/system.slice\n") == "lxc:web1"
    assert container_of(None) is None
    assert container_of("0::/\n") is None
