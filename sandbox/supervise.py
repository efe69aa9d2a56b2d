"""Run one process tree under limits and report what happened, as a dict.

Standard library only, and no imports from the rest of mmw: the same file is
used on the host by the ``local`` backend and copied into the container image,
where the in-container guest (:mod:`sandbox.guest`) uses it. Keeping a single
implementation means both backends classify limits the same way.

Classification of *why* a process died is partly heuristic: the kernel tells
us a signal (SIGXCPU for CPU time, SIGXFSZ for file size, SIGKILL from the
OOM killer), but Python turns most limits into exceptions (MemoryError,
``OSError: [Errno 27] File too large``, ``BlockingIOError`` when fork hits a
pids limit). We look for those in the tail of stderr, which is the child's
own final traceback.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import resource
import selectors
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

_TAIL = 4096

_MEMORY_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc",
                   b"Unable to allocate", b"out of memory")
_PIDS_MARKERS = (b"Resource temporarily unavailable", b"can't start new thread",
                 b"fork: retry", b"BlockingIOError")
_FSIZE_MARKERS = (b"File too large", b"[Errno 27]", b"No space left on device")


def rlimit_setter(limits: Mapping[str, float], *, data: bool = True) -> Callable[[], None]:
    """A ``preexec_fn`` applying CPU, file size, open files, core and data rlimits.

    RLIMIT_DATA rather than RLIMIT_AS: address-space limits break numpy's
    thread pools (they reserve large virtual arenas), RLIMIT_DATA bounds what
    is actually allocated. RLIMIT_NPROC is not set here: it counts every
    process of the user and is ignored for root, so pids are bounded by a
    cgroup or a pid namespace instead.
    """
    cpu = int(limits["cpu_s"])
    fsize = int(limits["file_size_bytes"])
    nofile = int(limits["open_files"])
    mem = int(limits["memory_bytes"])

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        n = nofile if hard == resource.RLIM_INFINITY else min(nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        if data:
            resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))

    return apply


_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2


def _prctl() -> Any:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.prctl
    fn.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    fn.restype = ctypes.c_int
    return fn


def set_dumpable(dumpable: bool) -> None:
    """``prctl(PR_SET_DUMPABLE)``: a non-dumpable process's ``/proc/PID/{fd,mem,environ}``
    belong to root and it cannot be ptraced, even by code running as the same uid."""
    import ctypes

    if _prctl()(_PR_SET_DUMPABLE, int(dumpable), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_DUMPABLE): {os.strerror(err)}")


class SeccompInstaller:
    """Installs a compiled BPF ``program`` on the calling process when called.

    Built in the parent (ctypes loaded, the ``sock_fprog`` laid out) so the child, between
    fork and exec, only makes two ``prctl`` calls. The program comes from libseccomp on the
    host (:mod:`sandbox.seccomp`); this only hands its bytes to the kernel. Filters stack:
    one installed here adds to whatever the container engine installed, never loosens it.
    """

    def __init__(self, program: bytes) -> None:
        import ctypes

        if not program or len(program) % 8 or len(program) // 8 > 4096:
            raise ValueError("a seccomp program is 1..4096 instructions of 8 bytes")

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        self._ctypes = ctypes
        self._buf = ctypes.create_string_buffer(program, len(program))
        self._fprog = SockFprog(len(program) // 8, ctypes.cast(self._buf, ctypes.c_void_p))
        self._prctl = _prctl()

    def __call__(self) -> None:
        if self._prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(self._ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if self._prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER,
                       self._ctypes.addressof(self._fprog), 0, 0) != 0:
            raise OSError(self._ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def prlimit_flags(limits: Mapping[str, float]) -> list[str]:
    """The same rlimits as :func:`rlimit_setter`, as flags of util-linux ``prlimit``."""
    cpu = int(limits["cpu_s"])
    fsize = int(limits["file_size_bytes"])
    mem = int(limits["memory_bytes"])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = int(limits["open_files"])
    if hard != resource.RLIM_INFINITY:
        nofile = min(nofile, hard)
    return [f"--cpu={cpu}:{cpu + 1}", f"--fsize={fsize}:{fsize}", f"--nofile={nofile}:{nofile}",
            "--core=0:0", f"--data={mem}:{mem}"]


def classify(
    *, returncode: int | None, timed_out: bool, output_capped: bool, stderr_tail: bytes,
    oom_killed: bool = False,
) -> str | None:
    """Which limit (if any) explains this ending; see the module docstring."""
    if timed_out:
        return "wall"
    if output_capped:
        return "output"
    if oom_killed:
        return "memory"
    sig = -returncode if returncode is not None and returncode < 0 else None
    if sig == signal.SIGXCPU:
        return "cpu"
    if sig == signal.SIGXFSZ:
        return "file_size"
    if returncode == 0:
        return None
    tail = stderr_tail[-_TAIL:]
    for limit, markers in (("memory", _MEMORY_MARKERS), ("file_size", _FSIZE_MARKERS),
                           ("pids", _PIDS_MARKERS)):
        if any(m in tail for m in markers):
            return limit
    return None


class ForkedChild:
    """A Popen look-alike for a fork that runs a Python callable instead of exec'ing.

    Used by a warm guest that has already imported sympy and mechanistic: a
    fork inherits them, so a DSL module starts in about a millisecond instead
    of paying a fresh interpreter plus a few hundred ms of imports. The child
    gets its own session, pipes on fds 0-2, every other fd closed, the run's
    cwd, environment and rlimits, exactly like an exec'd process.
    """

    def __init__(self, target: Callable[[], int], *, cwd: str, env: Mapping[str, str],
                 preexec_fn: Callable[[], None] | None) -> None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns
            code = 1
            try:
                os.setsid()
                for fd, target_fd in ((in_r, 0), (out_w, 1), (err_w, 2)):
                    os.dup2(fd, target_fd)
                os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
                os.chdir(cwd)
                os.environ.clear()
                os.environ.update(env)
                if preexec_fn is not None:
                    preexec_fn()
                sys.stdin = open(0, closefd=False)  # noqa: SIM115
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                code = target()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if not isinstance(exc.code, int | None):
                    print(exc.code, file=sys.stderr)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                with contextlib.suppress(BaseException):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code & 0xFF)
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        self.pid = pid
        self.args = "<fork>"
        self.returncode: int | None = None
        self.stdin = os.fdopen(in_w, "wb")
        self.stdout = os.fdopen(out_r, "rb")
        self.stderr = os.fdopen(err_r, "rb")

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.002)
        assert self.returncode is not None
        return self.returncode


def supervise(
    argv: list[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    limits: Mapping[str, float],
    stdin: bytes = b"",
    preexec_fn: Callable[[], None] | None = None,
    kill_tree: Callable[[subprocess.Popen[bytes]], None] | None = None,
    fork_target: Callable[[], int] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> dict:
    """Start ``argv`` in a new session, pump its output under caps, enforce the wall clock.

    When the main process exits, hits the wall clock or floods its output,
    ``kill_tree`` (default: SIGKILL to its process group) ends everything it
    started, so a daemon holding the pipes open cannot stall us. With
    ``fork_target``, the child is a fork running that callable (see
    :class:`ForkedChild`) and ``argv`` is only a label. ``pass_fds``: extra fds the
    exec'd process keeps (bwrap's ``--seccomp FD``).
    """
    cap = int(limits["output_bytes"])
    wall = float(limits["wall_s"])
    kill = kill_tree or _kill_group
    start = time.monotonic()
    try:
        if fork_target is not None:
            proc: Any = ForkedChild(fork_target, cwd=cwd, env=env, preexec_fn=preexec_fn)
        else:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec_fn,
                close_fds=True, pass_fds=pass_fds,
            )
    except OSError as exc:
        return {"exit_code": 127, "signal": None, "timed_out": False, "limit_hit": None,
                "stdout": b"", "stderr": f"cannot start {argv[0]!r}: {exc}\n".encode(),
                "stdout_truncated": False, "stderr_truncated": False,
                "wall_s": time.monotonic() - start}
    bufs = {"stdout": bytearray(), "stderr": bytearray()}
    truncated = {"stdout": False, "stderr": False}
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    pending = memoryview(stdin)
    if pending:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE, "stdin")
    else:
        proc.stdin.close()
    timed_out = capped = False
    exited_at: float | None = None
    deadline = start + wall
    while sel.get_map():
        now = time.monotonic()
        if exited_at is None and proc.poll() is not None:
            exited_at = now
            kill(proc)  # leftovers (daemons) must not hold the pipes open
        if exited_at is None and now >= deadline:
            timed_out = True
            kill(proc)
            exited_at = now
        if exited_at is not None and now - exited_at > 2.0:
            break  # a pipe held by something we could not kill: give up reading
        timeout = 0.05 if exited_at is not None else min(0.05, max(0.0, deadline - now))
        for key, _ in sel.select(timeout):
            name = key.data
            if name == "stdin":
                try:
                    n = os.write(key.fd, pending[:65536])
                    pending = pending[n:]
                except (BrokenPipeError, BlockingIOError, OSError):
                    pending = memoryview(b"")
                if not pending:
                    sel.unregister(key.fileobj)
                    proc.stdin.close()
                continue
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            room = cap - len(bufs[name])
            if len(chunk) > room:
                bufs[name] += chunk[:max(room, 0)]
                truncated[name] = True
                if not capped and exited_at is None:
                    capped = True
                    kill(proc)
            else:
                bufs[name] += chunk
    for f in (proc.stdout, proc.stderr, proc.stdin):
        with contextlib.suppress(OSError):
            f.close()
    kill(proc)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        rc = None
    wall_s = time.monotonic() - start
    stderr = bytes(bufs["stderr"])
    sig = -rc if rc is not None and rc < 0 else None
    return {
        "exit_code": rc if rc is not None and rc >= 0 else None,
        "signal": sig,
        "timed_out": timed_out,
        "limit_hit": classify(returncode=rc, timed_out=timed_out, output_capped=capped,
                              stderr_tail=stderr),
        "stdout": bytes(bufs["stdout"]),
        "stderr": stderr,
        "stdout_truncated": truncated["stdout"],
        "stderr_truncated": truncated["stderr"],
        "wall_s": wall_s,
    }


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def write_files(root: str, files: Mapping[str, bytes]) -> None:
    """Write the run's input files under ``root`` (paths were validated by RunSpec)."""
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def collect_files(root: str, patterns: list[str] | tuple[str, ...], max_bytes: int) -> dict:
    """Read regular files matching ``patterns`` under ``root``, never following symlinks.

    Code in the sandbox can leave a symlink to a host path in its work dir;
    following it on the host would leak that file, so directories are walked
    without following links and files are opened with O_NOFOLLOW.
    """
    out: dict[str, bytes] = {}
    if not patterns:
        return out
    budget = max_bytes
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if not any(fnmatch.fnmatch(rel, p) for p in patterns):
                continue
            try:
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_size > budget:
                    continue
                with os.fdopen(fd, "rb", closefd=False) as f:
                    data = f.read(budget + 1)
            finally:
                os.close(fd)
            if len(data) > budget:
                continue
            budget -= len(data)
            out[rel] = data
    return out
