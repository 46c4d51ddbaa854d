"""Facts about a process, read from a proc root: the only part of GPM that knows about /proc.

Everything takes the proc root as an argument, so tests point it at a recorded fixture tree in
the real file formats. A file we may not read (another user's ``environ`` or ``maps``) becomes
``None``; a pid that is gone, or that was reused while we read it, gives no facts at all.
"""

from __future__ import annotations

import os
import pwd
import select
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROC = Path("/proc")
MAX_ANCESTORS = 12

# The only environment variables kept: what classification looks at. Others may hold secrets.
ENV_KEYS = frozenset({"SteamAppId", "SteamGameId", "STEAM_COMPAT_APP_ID", "WINEPREFIX"})


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What Linux tells about one process, enough to classify it and to recognise it later."""

    pid: int
    name: str
    exe: str | None
    cmdline: tuple[str, ...]
    environ: Mapping[str, str] | None  # only ENV_KEYS; None when unreadable
    # Basenames of mapped shared objects, plus "<dir>/<name>" for Python extension modules whose
    # own name is generic (``vllm/_C.abi3.so``). None when unreadable.
    maps_libs: frozenset[str] | None
    cgroup: str | None
    user: str | None
    started_at: float | None  # epoch seconds
    ppid: int | None
    ancestors: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (name, cmdline), parent first


@dataclass(frozen=True, slots=True)
class _Stat:
    name: str
    ppid: int
    start_ticks: int


def _read_bytes(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _read_stat(pid: int, proc_root: Path) -> _Stat | None:
    """Parse /proc/<pid>/stat; the name may hold spaces and ')', so split at the last ')'."""
    try:
        fd = os.open(f"{proc_root}/{pid}/stat", os.O_RDONLY)  # str join: called every poll
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    head, _, tail = raw.rpartition(b")")
    fields = tail.split()
    if not head or len(fields) < 20:
        return None
    name = head.partition(b"(")[2].decode(errors="replace")
    return _Stat(name=name, ppid=int(fields[1]), start_ticks=int(fields[19]))  # fields 4 and 22


@lru_cache(maxsize=8)
def _boot_time(proc_root: Path) -> float | None:
    """``btime`` from proc_root/stat, read once: start times stay comparable across polls."""
    try:
        with open(proc_root / "stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


_TICKS = os.sysconf("SC_CLK_TCK")


def _epoch(start_ticks: int, proc_root: Path) -> float | None:
    boot = _boot_time(proc_root)
    return None if boot is None else boot + start_ticks / _TICKS


def read_started_at(pid: int, proc_root: Path = PROC) -> float | None:
    """The process's start time (epoch seconds), or None if the pid is gone."""
    stat = _read_stat(pid, proc_root)
    return None if stat is None else _epoch(stat.start_ticks, proc_root)


def _split_nul(raw: bytes) -> tuple[str, ...]:
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _read_environ(path: Path) -> dict[str, str] | None:
    raw = _read_bytes(path)
    if raw is None:
        return None
    env = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        name = key.decode(errors="replace")
        if sep and name in ENV_KEYS:
            env[name] = value.decode(errors="replace")
    return env


def _lib_names(path: str) -> tuple[str, ...]:
    directory, _, base = path.rpartition("/")
    if base.startswith("_") or ".abi3." in base or ".cpython-" in base:
        return base, f"{directory.rpartition('/')[2]}/{base}"
    return (base,)


def _read_maps(path: Path) -> frozenset[str] | None:
    """Stream the maps file (it can be megabytes) keeping only shared-object names."""
    libs: set[str] = set()
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if b".so" not in line:
                    continue
                parts = line.rstrip(b"\n").split(maxsplit=5)
                if len(parts) < 6:
                    continue
                lib = parts[5].decode(errors="replace").removesuffix(" (deleted)")
                base = lib.rpartition("/")[2]
                if ".so" in base and (base.endswith(".so") or ".so." in base):
                    libs.update(_lib_names(lib))
    except OSError:
        return None
    return frozenset(libs)


@lru_cache(maxsize=256)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _read_user(path: Path) -> str | None:
    raw = _read_bytes(path)
    if raw is None:
        return None
    for line in raw.splitlines():
        if line.startswith(b"Uid:"):
            return _user_name(int(line.split()[1]))
    return None


def _ancestors(ppid: int, proc_root: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    chain: list[tuple[str, tuple[str, ...]]] = []
    pid = ppid
    while pid > 1 and len(chain) < MAX_ANCESTORS:
        stat = _read_stat(pid, proc_root)
        if stat is None:
            break
        chain.append((stat.name, _split_nul(_read_bytes(proc_root / str(pid) / "cmdline") or b"")))
        pid = stat.ppid
    return tuple(chain)


def descends_from(pid: int, ancestors: frozenset[int], proc_root: Path = PROC) -> bool:
    """Whether ``pid`` is one of ``ancestors`` or a descendant of one (within MAX_ANCESTORS)."""
    for _ in range(MAX_ANCESTORS + 1):
        if pid in ancestors:
            return True
        stat = _read_stat(pid, proc_root) if pid > 1 else None
        if stat is None:
            return False
        pid = stat.ppid
    return False


_TCP_LISTEN = "0A"


def listening_pids(port: int, proc_root: Path = PROC) -> frozenset[int]:
    """The processes holding a TCP socket that listens on ``port`` (IPv4 or IPv6), found
    through their socket inodes. Other users' processes are found only with the privilege to
    read their file descriptors."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        raw = _read_bytes(proc_root / "net" / table)
        for line in (raw or b"").decode(errors="replace").splitlines()[1:]:
            cols = line.split()
            if len(cols) < 10 or cols[3] != _TCP_LISTEN:
                continue
            if int(cols[1].rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return frozenset()
    found: set[int] = set()
    for entry in os.scandir(proc_root):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.scandir(f"{entry.path}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) in inodes:
                        found.add(int(entry.name))
                        break
                except OSError:
                    continue
    return frozenset(found)


def read_facts(pid: int, proc_root: Path = PROC) -> ProcessFacts | None:
    """Read one process's facts, or None if the pid is gone (or was reused while reading)."""
    stat = _read_stat(pid, proc_root)
    if stat is None:
        return None
    base = proc_root / str(pid)
    comm = _read_bytes(base / "comm")
    try:
        exe: str | None = os.readlink(base / "exe")
    except OSError:
        exe = None
    cgroup = _read_bytes(base / "cgroup")
    facts = ProcessFacts(
        pid=pid,
        name=comm.decode(errors="replace").strip() if comm else stat.name,
        exe=exe,
        cmdline=_split_nul(_read_bytes(base / "cmdline") or b""),
        environ=_read_environ(base / "environ"),
        maps_libs=_read_maps(base / "maps"),
        cgroup=None if cgroup is None else cgroup.decode(errors="replace"),
        user=_read_user(base / "status"),
        started_at=_epoch(stat.start_ticks, proc_root),
        ppid=stat.ppid,
        ancestors=_ancestors(stat.ppid, proc_root),
    )
    again = _read_stat(pid, proc_root)
    if again is None or again.start_ticks != stat.start_ticks:
        return None  # exited or replaced while we read: these facts may mix two processes
    return facts


class ExitWatch:
    """Tells, cheaply, which known processes have exited since they were first read.

    On the live /proc each process gets a pidfd and one ``poll`` call covers them all; elsewhere
    (a fixture tree, a host /proc mounted in a container, no pidfd support, out of descriptors)
    it falls back to re-reading each process's start time.
    """

    def __init__(self, proc_root: Path = PROC) -> None:
        self._proc_root = proc_root
        self._use_pidfd = hasattr(os, "pidfd_open") and _is_live_proc(proc_root)
        self._pidfds: dict[int, int] = {}
        self._fd_pids: dict[int, int] = {}
        self._by_start: dict[int, float | None] = {}
        self._poller = select.poll()

    def add(self, pid: int, started_at: float | None) -> bool:
        """Watch ``pid`` as the process that started at ``started_at``; False if it is not."""
        self.remove(pid)
        if self._use_pidfd:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                fd = -1
            if fd >= 0:
                # The pidfd pins whichever process holds the pid now: make sure it is ours.
                if read_started_at(pid, self._proc_root) != started_at:
                    os.close(fd)
                    return False
                self._pidfds[pid] = fd
                self._fd_pids[fd] = pid
                self._poller.register(fd, select.POLLIN)
                return True
        self._by_start[pid] = started_at
        return True

    def remove(self, pid: int) -> None:
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            del self._fd_pids[fd]
            self._poller.unregister(fd)
            os.close(fd)
        self._by_start.pop(pid, None)

    def exited(self) -> set[int]:
        """Watched pids whose process has exited (the pid may now belong to another one)."""
        gone = {self._fd_pids[fd] for fd, _ in self._poller.poll(0)} if self._pidfds else set()
        for pid, started in self._by_start.items():
            if read_started_at(pid, self._proc_root) != started:
                gone.add(pid)
        return gone

    def close(self) -> None:
        for pid in list(self._pidfds):
            self.remove(pid)
        self._by_start.clear()


def _is_live_proc(proc_root: Path) -> bool:
    try:
        return proc_root.resolve() == PROC and os.path.exists(f"/proc/{os.getpid()}")
    except OSError:
        return False
