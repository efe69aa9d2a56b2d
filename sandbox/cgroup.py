"""A throwaway pids cgroup per run, where this process may create one.

The ``local`` backend's only hard bound on process count: RLIMIT_NPROC counts
every process of the user and the kernel ignores it for root, so a fork bomb
is stopped by ``pids.max`` when we can write to the pids controller (cgroup v1
``/sys/fs/cgroup/pids`` or a v2 hierarchy with the pids controller), and by
the wall clock plus pid-namespace teardown otherwise. The cgroup also lets us
kill every process of the run, wherever it double-forked to.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass

_V1 = "/sys/fs/cgroup/pids"


def _own_v2_dir() -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    rel = line.strip()[3:]
                    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                        if os.path.exists(os.path.join(root, "cgroup.controllers")):
                            return os.path.join(root, rel.lstrip("/"))
    except OSError:
        return None
    return None


def _candidates() -> list[str]:
    out = []
    if os.path.exists(os.path.join(_V1, "cgroup.procs")):
        out.append(_V1)
    v2 = _own_v2_dir()
    if v2:
        out.append(v2)
    return out


@dataclass(frozen=True)
class PidsCgroup:
    """One created cgroup directory with ``pids.max`` set."""

    path: str

    @classmethod
    def create(cls, limit: int) -> PidsCgroup | None:
        """Make a fresh cgroup limited to ``limit`` tasks, or None where we may not."""
        for parent in _candidates():
            path = os.path.join(parent, f"mmw-sandbox-{uuid.uuid4().hex[:12]}")
            try:
                os.mkdir(path)
            except OSError:
                continue
            try:
                with open(os.path.join(path, "pids.max"), "w") as f:
                    f.write(str(limit))
                return cls(path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.rmdir(path)
        return None

    def set_limit(self, limit: int) -> None:
        with open(os.path.join(self.path, "pids.max"), "w") as f:
            f.write(str(limit))

    def join_self(self) -> None:
        """Move the calling process in (used as a ``preexec_fn`` step, before exec)."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write("0")

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

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
        """Kill what is left and delete the directory."""
        self.kill_all()
        for _ in range(100):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)

    @staticmethod
    def available() -> bool:
        """Whether a pids cgroup can be created here (probes by creating one)."""
        cg = PidsCgroup.create(8)
        if cg is None:
            return False
        cg.remove()
        return True


class CgroupPool:
    """Idle cgroups kept for reuse: the first process to join a fresh v1 cgroup pays ~10 ms.

    Runs may be concurrent (threads), so each run takes its own cgroup from the
    pool and gives it back empty; ``close`` removes them all.
    """

    def __init__(self) -> None:
        import threading

        self._idle: list[PidsCgroup] = []
        self._lock = threading.Lock()

    def acquire(self, limit: int) -> PidsCgroup | None:
        with self._lock:
            cg = self._idle.pop() if self._idle else None
        if cg is None:
            return PidsCgroup.create(limit)
        try:
            cg.set_limit(limit)
        except OSError:
            cg.remove()
            return PidsCgroup.create(limit)
        return cg

    def release(self, cg: PidsCgroup) -> None:
        cg.kill_all()
        with self._lock:
            self._idle.append(cg)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for cg in idle:
            cg.remove()
