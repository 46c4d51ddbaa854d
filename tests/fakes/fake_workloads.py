"""Fake GPU workloads: live processes that look like a game, an LLM server or a trainer.

They stand for the programs GPM's classifier sorts GPU processes into workloads by: each is a
real Python child whose ``/proc`` shows what the test chose, an ``argv[0]`` and arguments
(``llama-server -m qwen2.gguf``), an environment (``SteamAppId=570``) or a mapped library (the
``fake_torch`` fixture builds an empty ``libtorch_cuda.so`` to load). The fake NVML library then
reports their pids on a GPU::

    child = spawn("llama-server", "pass", "--model", "qwen2.gguf")
    trainer = spawn("python3", f"import ctypes; ctypes.CDLL({str(fake_torch)!r})", "train.py")
    ...
    stop(child)   # the process exits: its stay on the GPU ends

Tests import ``fake_torch`` into their module (and name it in ``__all__``) to use the fixture.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

READY = "import sys; {setup}; print('ready', flush=True); sys.stdin.read()"


def spawn(
    argv0: str, setup: str = "pass", *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """A python child whose argv[0] is ``argv0``; it exits when its stdin closes."""
    child = subprocess.Popen(
        [argv0, "-c", READY.format(setup=setup), *args],
        executable=sys.executable,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    return child


def stop(child: subprocess.Popen[str]) -> None:
    """End a child from ``spawn``: close its stdin and reap it."""
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=10)


@pytest.fixture
def fake_torch(tmp_path: Path) -> Path:
    """An empty shared library named ``libtorch_cuda.so``; skips without gcc."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build a stand-in libtorch_cuda.so")
    src = tmp_path / "empty.c"
    src.write_text("")
    lib = tmp_path / "libtorch_cuda.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib
