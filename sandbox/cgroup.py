"""Throwaway cgroups for a run of the ``local`` backend, where this process may create them.

Two controllers, each optional:

* ``pids``: the only hard bound on process count. RLIMIT_NPROC counts every
  process of the user and the kernel ignores it for root, so a fork bomb is
  stopped by ``pids.max``. The cgroup also lets us kill every process of the
  run, wherever it double-forked to.
* ``memory``: a bound on the run's *total* memory (RLIMIT_DATA is per
  process), and an OOM-kill counter that tells us a SIGKILL meant "memory".

cgroup v1 (``/sys/fs/cgroup/<controller>/<our cgroup>``) and v2 (a delegated
subtree with the controllers enabled) are both tried; where neither can be
written, the backend says so in its guarantees.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass

_ROOT = "/sys/fs/cgroup"


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    out[c] = path
    except (OSError, ValueError):
        pass
    return out


def _parents(controller: str, limit_file: str) -> list[str]:
    """Directories under which a child cgroup with ``limit_file`` may be created."""
    own = _own_cgroups()
    out = []
    if controller in own:  # v1: the controller's own hierarchy, below our cgroup
        for base in (os.path.join(_ROOT, controller), ):
            out.append(os.path.join(base, own[controller].lstrip("/")))
            out.append(base)
    if "" in own:  # v2: unified hierarchy, if the controller is delegated to us
        for base in (_ROOT, os.path.join(_ROOT, "unified")):
            if os.path.exists(os.path.join(base, "cgroup.controllers")):
                out.append(os.path.join(base, own[""].lstrip("/")))
    return [p for p in dict.fromkeys(out) if os.path.isdir(p)]


def _make(controller: str, limit_file: str) -> str | None:
    for parent in _parents(controller, limit_file):
        path = os.path.join(parent, f"mmw-sandbox-{uuid.uuid4().hex[:12]}")
        try:
            os.mkdir(path)
        except OSError:
            continue
        if os.path.exists(os.path.join(path, limit_file)):
            return path
        with contextlib.suppress(OSError):
            os.rmdir(path)
    return None


def _write(path: str, name: str, value: str) -> None:
    with open(os.path.join(path, name), "w") as f:
        f.write(value)


@dataclass(frozen=True)
class RunCgroup:
    """The cgroup directories of one run: ``pids`` and/or ``memory`` (None where unavailable)."""

    pids_dir: str | None
    memory_dir: str | None

    @classmethod
    def create(cls, pids: int, memory_bytes: int | None = None) -> RunCgroup | None:
        """Fresh cgroups with the limits set, or None where no controller can be written."""
        pdir = _make("pids", "pids.max")
        mdir = _make("memory", "memory.limit_in_bytes") or _make("memory", "memory.max")
        if pdir is None and mdir is None:
            return None
        cg = cls(pdir, mdir)
        try:
            cg.set_limits(pids, memory_bytes)
        except OSError:
            cg.remove()
            return None
        return cg

    @property
    def dirs(self) -> list[str]:
        return [d for d in (self.pids_dir, self.memory_dir) if d]

    @property
    def procs_files(self) -> list[str]:
        """``cgroup.procs`` of each controller: writing a pid there moves it in."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs]

    def set_limits(self, pids: int, memory_bytes: int | None) -> None:
        if self.pids_dir:
            _write(self.pids_dir, "pids.max", str(pids))
        if self.memory_dir:
            v1 = os.path.exists(os.path.join(self.memory_dir, "memory.limit_in_bytes"))
            unlimited = "-1" if v1 else "max"
            value = unlimited if memory_bytes is None else str(memory_bytes)
            if v1:
                _write(self.memory_dir, "memory.limit_in_bytes", value)
                with contextlib.suppress(OSError):  # only with swap accounting
                    _write(self.memory_dir, "memory.memsw.limit_in_bytes", value)
            else:
                _write(self.memory_dir, "memory.max", value)
                with contextlib.suppress(OSError):
                    _write(self.memory_dir, "memory.swap.max", "0")

    def join_self(self) -> None:
        """Move the calling process in (a ``preexec_fn`` step, before exec)."""
        for f in self.procs_files:
            with open(f, "w") as fh:
                fh.write("0")

    def pids(self) -> list[int]:
        out: set[int] = set()
        for f in self.procs_files:
            try:
                with open(f) as fh:
                    out.update(int(x) for x in fh.read().split())
            except OSError:
                continue
        return sorted(out)

    def oom_kills(self) -> int:
        """OOM kills so far in the memory cgroup (-1 where unknown)."""
        if not self.memory_dir:
            return -1
        for name in ("memory.oom_control", "memory.events"):
            try:
                with open(os.path.join(self.memory_dir, name)) as f:
                    for line in f:
                        k, _, v = line.partition(" ")
                        if k == "oom_kill":
                            return int(v)
            except (OSError, ValueError):
                continue
        return -1

    def kill_all(self) -> None:
        """SIGKILL every member until none is left (forks racing the kill are caught)."""
        for _ in range(1000):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)

    def remove(self) -> None:
        """Kill what is left and delete the directories."""
        self.kill_all()
        for d in self.dirs:
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)

    @staticmethod
    def probe() -> tuple[bool, bool]:
        """(pids, memory): which controllers a run can get here (probes by creating)."""
        cg = RunCgroup.create(8, 64 * 1024 * 1024)
        if cg is None:
            return False, False
        got = (cg.pids_dir is not None, cg.memory_dir is not None)
        cg.remove()
        return got


def join_command(cgroup: RunCgroup, argv: list[str]) -> list[str]:
    """``argv`` prefixed by a shell that moves itself into ``cgroup`` and then execs.

    Lets Popen spawn without a Python ``preexec_fn`` (so it can vfork, which
    stays cheap when the host process is large) while the pid we watch is
    still the sandbox's: sh execs into the rest of the command.
    """
    writes = " && ".join(f'echo $$ > "${i + 1}"' for i in range(len(cgroup.procs_files)))
    return ["/bin/sh", "-c", f'{writes} && shift {len(cgroup.procs_files)} && exec "$@"',
            "mmw-cgroup-join", *cgroup.procs_files, *argv]


class CgroupPool:
    """Idle cgroups kept for reuse: the first process to join a fresh v1 cgroup pays ~10 ms.

    Runs may be concurrent (threads), so each run takes its own cgroup from the
    pool and gives it back empty; ``close`` removes them all.
    """

    def __init__(self) -> None:
        self._idle: list[RunCgroup] = []
        self._lock = threading.Lock()

    def acquire(self, pids: int, memory_bytes: int | None = None) -> RunCgroup | None:
        with self._lock:
            cg = self._idle.pop() if self._idle else None
        if cg is None:
            return RunCgroup.create(pids, memory_bytes)
        try:
            cg.set_limits(pids, memory_bytes)
        except OSError:
            cg.remove()
            return RunCgroup.create(pids, memory_bytes)
        return cg

    def release(self, cg: RunCgroup) -> None:
        cg.kill_all()
        with self._lock:
            self._idle.append(cg)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for cg in idle:
            cg.remove()
