"""Reading process facts from fixture proc trees and from the live /proc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpm.classify.facts import ExitWatch, read_facts, read_started_at

PROC = Path(__file__).parent.parent / "fixtures" / "proc"
BTIME = 1795000000.0
TICKS = os.sysconf("SC_CLK_TCK")


def test_fixture_facts_are_parsed_from_the_real_formats() -> None:
    f = read_facts(6002, PROC / "ollama")
    assert f is not None
    assert f.name == "ollama" and f.exe == "/usr/local/bin/ollama"
    assert f.cmdline[:3][0:2] == ("/usr/local/bin/ollama", "runner") and len(f.cmdline) == 16
    assert f.ppid == 6001
    assert f.started_at == pytest.approx(BTIME + 106002 / TICKS)
    assert f.user == "4000123"  # no such account: the uid number
    assert f.cgroup == "0::/system.slice/ollama.service\n"
    assert f.maps_libs is not None
    assert {"libggml-cuda.so", "libcuda.so.1", "libc.so.6"} <= f.maps_libs
    assert not any(lib.startswith("[") for lib in f.maps_libs)
    assert f.ancestors == (("ollama", ("/usr/local/bin/ollama", "serve")),)


def test_environ_keeps_only_the_keys_classification_needs() -> None:
    f = read_facts(2001, PROC / "steam_env")
    assert f is not None and f.environ == {"SteamAppId": "570", "SteamGameId": "570"}


def test_name_with_spaces_and_parentheses_and_root_user() -> None:
    f = read_facts(5103, PROC / "launchers")
    assert f is not None and f.name == "Game (x) final" and f.ppid == 5102
    assert [a[0] for a in f.ancestors] == ["sh", "lutris"]
    gamescope = read_facts(5001, PROC / "launchers")
    assert gamescope is not None and gamescope.user == "root"


def test_python_extension_modules_keep_their_package_dir() -> None:
    f = read_facts(8003, PROC / "vllm")
    assert f is not None and f.maps_libs is not None
    assert "vllm/_C.abi3.so" in f.maps_libs  # "(deleted)" suffix stripped
    assert "torch/_C.cpython-311-x86_64-linux-gnu.so" in f.maps_libs


def test_gone_pid_gives_none() -> None:
    assert read_facts(99999, PROC / "ollama") is None
    assert read_started_at(99999, PROC / "ollama") is None


def test_missing_boot_time_leaves_start_unknown(tmp_path: Path) -> None:
    shutil.copytree(PROC / "llamacpp" / "7001", tmp_path / "7001", symlinks=True)
    f = read_facts(7001, tmp_path)
    assert f is not None and f.started_at is None and f.name == "llama-server"


def test_live_process_facts() -> None:
    f = read_facts(os.getpid())
    assert f is not None
    assert "pytest" in " ".join(f.cmdline)
    assert f.exe is not None and Path(f.exe).name.startswith("python")
    assert f.started_at is not None and f.started_at <= time.time()
    assert f.ppid == os.getppid()
    assert f.maps_libs is not None and any(lib.startswith("libc.so") for lib in f.maps_libs)


def _read_pid1_as(uid: int | None) -> str:
    """read_facts(1) summarised, in a forked child that first drops to ``uid`` (if given)."""
    if uid is None:
        f = read_facts(1)
        return f"{f is not None and f.environ is None} {f is not None and bool(f.cmdline)}"
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.write(wfd, _read_pid1_as(None).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd) as fh:
        out = fh.read()
    os.waitpid(pid, 0)
    return out


def test_other_users_environ_is_unreadable_not_an_error() -> None:
    """As an unprivileged user, pid 1's environ is unreadable but its cmdline is not."""
    assert _read_pid1_as(65534 if os.geteuid() == 0 else None) == "True True"


def test_exit_watch_with_pidfds_sees_a_child_exit() -> None:
    child = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    watch = ExitWatch()
    try:
        started = read_started_at(child.pid)
        assert watch.add(child.pid, started)
        assert not watch.add(child.pid, (started or 0) + 5)  # not the process we read
        assert watch.add(child.pid, started)
        assert watch.exited() == set()
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)
        assert watch.exited() == {child.pid}
    finally:
        watch.close()
        child.kill()


def test_exit_watch_falls_back_to_start_times_on_a_fixture_tree(tmp_path: Path) -> None:
    root = tmp_path / "proc"
    shutil.copytree(PROC / "llamacpp", root, symlinks=True)
    watch = ExitWatch(root)
    assert watch.add(7001, read_started_at(7001, root))
    assert watch.add(7002, read_started_at(7002, root))
    assert watch.exited() == set()
    shutil.rmtree(root / "7002")  # gone
    stat = root / "7001" / "stat"
    stat.write_text(stat.read_text().replace(" 107001 ", " 207001 "))  # pid reused
    assert watch.exited() == {7001, 7002}
    watch.close()
    assert watch.exited() == set()
