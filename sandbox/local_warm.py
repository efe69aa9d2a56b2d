"""A warm ``local`` sandbox: one bubblewrap sandbox, kept running, serving many runs.

The per-run cost of the plain local backend is mostly namespace setup and a
fresh interpreter (plus a few hundred ms of sympy for a DSL module). Here the
in-container guest (:mod:`sandbox.guest`) runs inside a single bwrap sandbox
instead of a container: it preloads ``mechanistic``, forks each run from
itself, applies rlimits, the wall clock and output caps per run, and kills
every leftover process between runs. The host speaks the same line protocol
as with a container, over plain pipes.

What changes against a fresh sandbox per run: runs of one session share the
sandbox's namespaces and its tmpfs mounts (the guest empties the work dir,
``/tmp``, ``/dev/shm`` and ``/dev/mqueue`` between runs; the root and ``/dev``
are read-only; SysV IPC is denied by the seccomp filter), each run is a fork
of the same guest (it can read what earlier runs left in the guest's memory),
and the code shares a uid with the guest. It cannot reach the guest's
channel: the guest is bwrap's pid 1 (``--as-pid-1``: no bwrap init holding
the pipes) and non-dumpable, and answers are authenticated per request
(:mod:`sandbox.protocol`); a line that is not the current answer fails the
run and the guest is killed and replaced.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence

from sandbox.cgroup import RunCgroup, join_command
from sandbox.protocol import Answer, read_answer

GUEST_PIDS = 8  # the guest and bwrap's init, on top of the run's own pids limit
WARM_MEMORY_HEADROOM = 256 * 1024 * 1024  # the guest holding sympy + mechanistic, forks' COW


class WarmGuest:
    """A ``python -m sandbox.guest`` inside bwrap, fed one request line at a time."""

    def __init__(self, argv: Sequence[str], cgroup: RunCgroup | None, key: tuple,
                 pass_fds: tuple[int, ...] = ()) -> None:
        self.key = key
        self.cgroup = cgroup
        launch = list(argv)
        if cgroup is not None:
            launch = join_command(cgroup, launch)
        self.proc = subprocess.Popen(launch, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     pass_fds=pass_fds)
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, line: bytes, deadline: float, nonce: str,
                max_bytes: int) -> Answer | None:
        """Send one request; its answer (or why the line read is not it), None if the guest
        died. TimeoutError past ``deadline``."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                answer, self.buffer = read_answer(self.buffer, nonce, max_bytes)
                if answer is not None:
                    return answer
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                if not sel.select(min(left, 1.0)):
                    continue
                try:
                    chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    return None
                self.buffer += chunk

    def stray(self) -> bool:
        """Whether anything came on the channel since the last answer (nothing genuine can:
        the guest speaks only when asked), or the guest is gone."""
        assert self.proc.stdout is not None
        if self.buffer or not self.alive():
            return True
        try:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return False
        except OSError:
            return True
        self.buffer += chunk
        return True

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if f is not None:
                    f.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
