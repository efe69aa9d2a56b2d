"""A warm ``local`` sandbox: one bubblewrap sandbox, kept running, serving many runs.

The per-run cost of the plain local backend is mostly namespace setup and a
fresh interpreter (plus a few hundred ms of sympy for a DSL module). Here the
in-container guest (:mod:`sandbox.guest`) runs inside a single bwrap sandbox
instead of a container: it preloads ``mechanistic``, forks each run from
itself, applies rlimits, the wall clock and output caps per run, and kills
every leftover process between runs. The host speaks the same line protocol
as with a container, over plain pipes.

What changes against a fresh sandbox per run: runs of one session share the
sandbox's namespaces and its tmpfs (each gets a fresh directory, removed
afterwards), and the code shares a uid with the guest.
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
from sandbox.protocol import parse_answer_line

GUEST_PIDS = 8  # the guest and bwrap's init, on top of the run's own pids limit
WARM_MEMORY_HEADROOM = 256 * 1024 * 1024  # the guest holding sympy + mechanistic, forks' COW


class WarmGuest:
    """A ``python -m sandbox.guest`` inside bwrap, fed one request line at a time."""

    def __init__(self, argv: Sequence[str], cgroup: RunCgroup | None, key: tuple) -> None:
        self.key = key
        self.cgroup = cgroup
        launch = list(argv)
        if cgroup is not None:
            launch = join_command(cgroup, launch)
        self.proc = subprocess.Popen(launch, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, line: bytes, deadline: float) -> dict | None:
        """Send one request; the answer, or None if the guest died. TimeoutError past deadline."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                answer, self.buffer = parse_answer_line(self.buffer)
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
