"""Workload classification: pure rules from process facts to a Classification with its evidence.

Order matters and is the policy: user rules, then the process's own evidence (Steam environment,
Wine/Proton, LLM servers, ML libraries and launchers, game engines), then its ancestors' (a Steam
``reaper``, gamescope/Lutris/Heroic, torchrun), and general compute when nothing matched. LLM
rules come before training rules because an LLM server maps the same PyTorch libraries.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence

from gpm.classify.facts import ProcessFacts
from gpm.model import Classification, Workload
from gpm.settings import ClassifierRule

_Rule = Callable[[ProcessFacts], Classification | None]

_STEAM_ENV = ("SteamAppId", "SteamGameId", "STEAM_COMPAT_APP_ID")
_WINE = frozenset({"wine", "wine64", "wine-preloader", "wine64-preloader", "wineserver", "proton"})
_GAME_LAUNCHERS = frozenset({"gamescope", "gamescope-wl", "lutris", "heroic"})
_WINE_LIBS = ("ntdll.so", "wine")
_LLM_NAMES = frozenset(
    {
        "ollama",
        "ollama_llama_server",
        "llama-server",
        "llama-cli",
        "vllm",
        "tabbyapi",
        "text-generation-launcher",
        "text-generation-server",
        "lms",
        "lm studio",
        "lm-studio",
        "lmstudio",
    }
)
_LLM_PREFIXES = ("llama-", "koboldcpp", "vllm::", "sglang", "exllama", "tabbyapi")
_LLM_MODULES = ("vllm.", "sglang.", "text_generation_server", "llama_cpp.server", "exllamav2")
_LLM_LIBS = ("vllm/", "libllama.so", "libggml-cuda", "exllamav2_ext", "exllamav3_ext", "koboldcpp")
_ML_LIBS = (
    "libtorch_cuda.so",
    "libtensorflow_framework.so",
    "libtensorflow_cc.so",
    "xla_extension.so",
    "xla_cuda_plugin.so",
    "libc10_cuda.so",
    "libcudnn",
)
_ML_LAUNCHERS = {"torchrun": None, "accelerate": "launch", "deepspeed": None, "lightning": "run"}
_ML_MODULES = ("torch.distributed.run", "torch.distributed.launch", "accelerate.commands.launch")
_ENGINE_LIBS = (
    "UnityPlayer.so",
    "GameAssembly.so",
    "libUE4",
    "libUE5",
    "UnrealEngine",
    "godot",
    "libsteam_api.so",
)
_MODEL_FLAGS = ("--model", "--model-path", "--model-id", "-m", "--hf-repo", "-hf")
_MODEL_FILE_SUFFIXES = (".gguf", ".bin", ".safetensors", ".ggml")
_CONTAINER_PATTERNS = (
    (re.compile(r"kubepods.*?pod([0-9a-f]{8}[-_][0-9a-f_-]{27})"), "k8s"),
    (re.compile(r"libpod-(?:conmon-)?([0-9a-f]{12})[0-9a-f]*"), "podman"),
    (re.compile(r"docker[-/]([0-9a-f]{12})[0-9a-f]*"), "docker"),
    (re.compile(r"cri-containerd-([0-9a-f]{12})[0-9a-f]*"), "containerd"),
    (re.compile(r"lxc\.payload\.([^/\s]+)"), "lxc"),
)


def _base(arg: str) -> str:
    return arg.rstrip("/").rpartition("/")[2]


def _is_python(arg: str) -> bool:
    return _base(arg).startswith("python")


def _program(cmdline: Sequence[str]) -> tuple[str, Sequence[str]]:
    """The program a command line runs and its arguments, looking through ``python script``."""
    if not cmdline:
        return "", ()
    if _is_python(cmdline[0]) and len(cmdline) > 1 and not cmdline[1].startswith("-"):
        return _base(cmdline[1]), cmdline[2:]
    return _base(cmdline[0]), cmdline[1:]


def _python_module(cmdline: Sequence[str]) -> str | None:
    if cmdline and _is_python(cmdline[0]):
        for flag, value in itertools.pairwise(cmdline):
            if flag == "-m":
                return value
    return None


def _lib(facts: ProcessFacts, needles: Iterable[str]) -> str | None:
    """The first mapped library that contains one of ``needles`` (in needle order)."""
    libs = sorted(facts.maps_libs or ())
    for needle in needles:
        for lib in libs:
            if needle in lib:
                return lib
    return None


def container_of(cgroup: str | None) -> str | None:
    """``docker:<id12>``, ``podman:<id12>``, ``k8s:<pod uid>``... from a cgroup v1 or v2 file."""
    for pattern, runtime in _CONTAINER_PATTERNS:
        found = pattern.search(cgroup or "")
        if found:
            return f"{runtime}:{found.group(1).replace('_', '-')}"
    return None


def steam_app_id(facts: ProcessFacts) -> tuple[int, str] | None:
    """The Steam AppId and where it came from, unless this is an install run (``Install=1``)."""
    for _, cmdline in facts.ancestors:
        if _program(cmdline)[0] == "reaper" and "SteamLaunch" in cmdline:
            if "Install=1" in cmdline:
                return None
            for arg in cmdline:
                if arg.startswith("AppId=") and arg[6:].isdigit() and int(arg[6:]):
                    return int(arg[6:]), f"parent: reaper SteamLaunch {arg}"
    for key in _STEAM_ENV:
        value = (facts.environ or {}).get(key, "")
        if value.isdigit() and int(value):
            return int(value), f"env: {key}={value}"
    return None


def model_name(cmdline: Sequence[str]) -> str | None:
    """The model a server command line names (``--model X``, ``vllm serve X``), if readable.

    A path keeps only its file name; an Ollama blob (``sha256-...``) is not a readable name.
    """
    program, args = _program(cmdline)
    value = None
    if program == "vllm" and len(args) > 1 and args[0] == "serve" and not args[1].startswith("-"):
        value = args[1]
    python = _is_python(cmdline[0]) if cmdline else False
    for i, arg in enumerate(args):
        flag, eq, inline = arg.partition("=")
        if value or flag not in _MODEL_FLAGS or (python and flag == "-m"):
            continue
        value = inline if eq else (args[i + 1] if i + 1 < len(args) else None)
    if not value:
        return None
    if value.startswith(("/", "./", "~")) or value.endswith(_MODEL_FILE_SUFFIXES):
        value = _base(value)
    return None if value.startswith("sha256") else value


def _user_rule(rules: Sequence[ClassifierRule]) -> _Rule:
    def rule(facts: ProcessFacts) -> Classification | None:
        for r in rules:
            text = facts.name if r.field == "name" else " ".join(facts.cmdline) or facts.name
            if re.search(r.pattern, text):
                return Classification(r.workload, f"rule: {r.pattern}")
        return None

    return rule


def _steam(facts: ProcessFacts) -> Classification | None:
    found = steam_app_id(facts)
    if found is None:
        return None
    return Classification(Workload.GAMING, found[1], steam_app_id=found[0])


def _wine_name(name: str, cmdline: Sequence[str]) -> str | None:
    for candidate in (name, *(_base(a) for a in cmdline[:2])):
        if candidate in _WINE:
            return candidate
    return None


def _wine(facts: ProcessFacts) -> Classification | None:
    wine_exe = _wine_name(_base(facts.exe or ""), ())
    argv0 = _base(facts.cmdline[0].replace("\\", "/")) if facts.cmdline else facts.name
    if argv0.lower().endswith(".exe") and (
        wine_exe
        or (facts.environ or {}).get("WINEPREFIX")
        or _lib(facts, _WINE_LIBS)
        or any(_wine_name(name, cmd) for name, cmd in facts.ancestors)
    ):
        return Classification(Workload.GAMING, f"cmdline: {argv0} under wine")
    found = _wine_name(facts.name, facts.cmdline)
    if found:
        return Classification(Workload.GAMING, f"cmdline: {found}")
    return None if wine_exe is None else Classification(Workload.GAMING, f"exe: {wine_exe}")


def _llm(facts: ProcessFacts) -> Classification | None:
    program, args = _program(facts.cmdline)
    # TabbyAPI runs as ``python .../tabbyAPI/main.py``: its directory is the evidence.
    where = _base(facts.cmdline[1].rpartition("/")[0]) if len(facts.cmdline) > 1 else ""
    for name in (program.lower(), facts.name.lower(), where.lower()):
        if name in _LLM_NAMES or name.startswith(_LLM_PREFIXES):
            shown = program or facts.name
            if shown == "ollama" and args and args[0] in ("serve", "runner"):
                shown = f"ollama {args[0]}"
            elif shown == "vllm" and args and args[0] == "serve":
                shown = "vllm serve"
            return Classification(
                Workload.LLM_INFERENCE, f"cmdline: {shown}", model=model_name(facts.cmdline)
            )
    module = _python_module(facts.cmdline)
    if module and module.startswith(_LLM_MODULES):
        return Classification(
            Workload.LLM_INFERENCE, f"cmdline: -m {module}", model=model_name(facts.cmdline)
        )
    lib = _lib(facts, _LLM_LIBS)
    if lib:
        return Classification(
            Workload.LLM_INFERENCE, f"maps: {lib}", model=model_name(facts.cmdline)
        )
    return None


def _ml_launcher(cmdline: Sequence[str]) -> str | None:
    program, args = _program(cmdline)
    if program in _ML_LAUNCHERS:
        sub = _ML_LAUNCHERS[program]
        if sub is None or (args and args[0] == sub):
            return program if sub is None else f"{program} {sub}"
    module = _python_module(cmdline)
    return f"-m {module}" if module in _ML_MODULES else None


def _training(facts: ProcessFacts) -> Classification | None:
    launcher = _ml_launcher(facts.cmdline)
    if launcher:
        return Classification(Workload.ML_TRAINING, f"cmdline: {launcher}")
    lib = _lib(facts, _ML_LIBS)
    return None if lib is None else Classification(Workload.ML_TRAINING, f"maps: {lib}")


def _engine(facts: ProcessFacts, kind: str) -> Classification | None:
    lib = _lib(facts, _ENGINE_LIBS) if "graphics" in kind else None
    return None if lib is None else Classification(Workload.GAMING, f"maps: {lib}")


def _ancestry(facts: ProcessFacts) -> Classification | None:
    for name, cmdline in facts.ancestors:
        program = _program(cmdline)[0] or name
        if program in _GAME_LAUNCHERS or name in _GAME_LAUNCHERS:
            return Classification(Workload.GAMING, f"parent: {program}")
        launcher = _ml_launcher(cmdline)
        if launcher:
            return Classification(Workload.ML_TRAINING, f"parent: {launcher}")
    return None


def _is_install_run(facts: ProcessFacts) -> bool:
    """Steam runs installers (``reaper SteamLaunch ... Install=1``) that are not games."""
    return any(_program(cmd)[0] == "reaper" and "Install=1" in cmd for _, cmd in facts.ancestors)


def classify(
    facts: ProcessFacts, *, kind: str = "compute", rules: Sequence[ClassifierRule] = ()
) -> Classification:
    """Decide the workload of a GPU process; ``kind`` is which NVML list(s) reported it."""
    steps: list[_Rule] = [
        _user_rule(rules),
        _steam,
        _wine,
        _llm,
        _training,
        lambda f: _engine(f, kind),
        _ancestry,
    ]
    if _is_install_run(facts):
        steps = [_user_rule(rules), _llm, _training]
    found = next((c for c in (step(facts) for step in steps) if c is not None), None)
    result = found or Classification(Workload.GENERAL_COMPUTE, "no game, LLM or ML evidence")
    app = steam_app_id(facts) if result.workload is Workload.GAMING else None
    return Classification(
        workload=result.workload,
        reason=result.reason,
        model=result.model,
        steam_app_id=app[0] if app else None,
        container=container_of(facts.cgroup),
    )
