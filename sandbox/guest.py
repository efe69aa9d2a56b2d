"""The process that runs inside the container (or warm bwrap) and supervises each run there.

Standard library only: it is copied into the runtime image next to
:mod:`sandbox.supervise` and started as ``python3 -m sandbox.guest``. It reads
one request per line on stdin (from the host, through the engine's attach
stream or a pipe), runs it with :func:`sandbox.supervise.supervise` in a
fresh directory of the tmpfs work dir, and answers one line
``MMW-RESULT <tag> <json>`` on stdout. A cold container serves one request
and exits at EOF; a warm one keeps serving, so a run costs one round trip and
one process start instead of a container creation.

Two processes, so that the code cannot forge or read the channel:

- the *notary* (this process, pid 1 of its namespace) holds the host channel
  and nothing else: it reads ``<nonce> <request>``, hands the request (without
  the nonce) to the worker, and tags the worker's answer with
  HMAC-SHA256(nonce, answer) (see :mod:`sandbox.protocol`);
- the *worker* is forked from it at start, before any nonce exists, so no
  run (a fork of the worker) can find a nonce in memory; it preloads
  ``mechanistic``, supervises each run, and talks to the notary over private
  pipes that no run inherits.

Both are non-dumpable (``PR_SET_DUMPABLE`` 0): code running as the same uid
cannot open their ``/proc/PID/fd`` or ``/proc/PID/mem``, nor ptrace them. As pid
1 the notary cannot be killed from inside its namespace, and it reaps orphans.

Between runs the worker kills every process in the namespace other than
itself and its ancestors, and empties every writable place a run can leave
state in (the work dir, ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/dev/mqueue``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import sys
import time

from sandbox import supervise

WORKDIR = "/sandbox"
MARKER = b"MMW-RESULT "

BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORKDIR,
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONPATH": "/opt/mmw",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


def _protected() -> set[int]:
    """This process, its ancestors (init, maybe a shell) — everything else may die."""
    keep = {1, os.getpid()}
    pid = os.getpid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        keep.add(pid)
    return keep


def kill_everything_else() -> None:
    """SIGKILL every other process in the container's pid namespace, until none is left."""
    keep = _protected()
    for _ in range(200):
        victims = [int(p) for p in os.listdir("/proc")
                   if p.isdigit() and int(p) not in keep and not _is_zombie(p)]
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.001)


def _is_zombie(pid: str) -> bool:
    """Zombies are already dead; our own wait for them in ``supervise``, init reaps the rest."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _child_setup(limits: dict, seccomp: bytes | None):
    """rlimits, the seccomp filter, and first in line for the OOM killer: when the
    container's memory runs out, the run's processes die, not the guest that reports on them.

    A fork of the worker starts non-dumpable like it; it becomes dumpable again (as an exec
    would make it) so that its own ``/proc/self`` files are its own to write.
    """
    rl = supervise.rlimit_setter(limits)
    install = supervise.SeccompInstaller(seccomp) if seccomp else None

    def setup() -> None:
        with contextlib.suppress(OSError):
            supervise.set_dumpable(True)
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        rl()
        if install is not None:
            install()

    return setup


# Every writable place of the container image and the warm bwrap layout (the root and
# /dev are read-only in both); what is missing in one layout is skipped.
SCRATCH = (WORKDIR, "/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")


def _wipe(directory: str) -> None:
    """Empty a scratch directory so nothing one run wrote is seen by the next."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for name in entries:
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _vm_data() -> int:
    """This process's data segment in bytes (what RLIMIT_DATA counts), 0 if unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _oom_kills() -> int:
    """Count of OOM kills in this container's memory cgroup (v2 or v1), -1 if unknown."""
    for path, key in (("/sys/fs/cgroup/memory.events", "oom_kill"),
                      ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill")):
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == key:
                        return int(v)
        except (OSError, ValueError):
            continue
    return -1


PRELOAD_ENV = "MMW_GUEST_PRELOAD"
_PY_FLAGS = ("-B", "-S", "-s", "-E", "-u")


def preload() -> bool:
    """Import the modules named in MMW_GUEST_PRELOAD (a warm container's zygote state)."""
    import importlib

    loaded = False
    for name in filter(None, os.environ.get(PRELOAD_ENV, "").split(",")):
        try:
            importlib.import_module(name.strip())
            loaded = True
        except Exception as exc:  # a broken preload only costs speed
            print(f"guest: preload {name} failed: {exc}", file=sys.stderr)
    if loaded:
        import runpy  # noqa: F401 - the forked children need it
    return loaded


def fork_target(argv: list[str], workdir: str):
    """For ``python3 [flags] SCRIPT args``: a callable that runs SCRIPT in a fork, else None.

    ``-c`` and ``-m`` (and anything else) still exec a fresh interpreter.
    """
    if not argv or argv[0] not in ("python", "python3"):
        return None
    rest = argv[1:]
    while rest and rest[0] in _PY_FLAGS:
        rest = rest[1:]
    if not rest or rest[0].startswith("-"):
        return None
    script = os.path.join(workdir, rest[0])

    def target() -> int:
        import runpy

        sys.argv = list(rest)
        sys.path[0] = os.path.dirname(script)
        sys.dont_write_bytecode = True
        runpy.run_path(script, run_name="__main__")
        return 0

    return target


def handle(request: dict, seq: int, preloaded: bool = False) -> dict:
    """Run one request; always returns a response dict."""
    limits = request["limits"]
    workdir = os.path.join(WORKDIR, f"run-{seq}")
    os.makedirs(workdir)
    try:
        supervise.write_files(workdir, {k: base64.b64decode(v) for k, v in
                                        request["files"].items()})
        env = {**BASE_ENV, "PYTHONPATH": os.environ.get("PYTHONPATH", "/opt/mmw"),
               "HOME": workdir, **request["env"]}
        argv = list(request["argv"])
        if argv and argv[0] in ("python", "python3"):
            # the guest's own interpreter (in a local warm sandbox: the host venv's)
            argv[0:1] = [sys.executable, *(["-S"] if sys.flags.no_site else [])]
        target = fork_target(request["argv"], workdir) if preloaded else None
        seccomp = base64.b64decode(request["seccomp"]) if request.get("seccomp") else None
        child_limits = dict(limits)
        if target is not None:  # a fork starts with the guest's heap: the limit is on top
            child_limits["memory_bytes"] = int(limits["memory_bytes"]) + _vm_data()
        ooms = _oom_kills()
        out = supervise.supervise(
            argv, cwd=workdir, env=env, limits=limits,
            stdin=base64.b64decode(request["stdin"]),
            preexec_fn=_child_setup(child_limits, seccomp),
            kill_tree=lambda proc: kill_everything_else(),
            fork_target=target,
        )
        oom = ooms >= 0 and _oom_kills() > ooms
        if oom and not out["timed_out"] and out["limit_hit"] in (None, "pids"):
            out["limit_hit"] = "memory"
        files = supervise.collect_files(workdir, request["collect"], int(limits["collect_bytes"]))
    finally:
        kill_everything_else()
        for place in SCRATCH:  # not just run-N: a run may have written anywhere it can
            _wipe(place)
    out["stdout"] = base64.b64encode(out["stdout"]).decode()
    out["stderr"] = base64.b64encode(out["stderr"]).decode()
    out["files"] = {k: base64.b64encode(v).decode() for k, v in files.items()}
    return out


def serve(requests, answers) -> int:
    """The worker: one JSON request per line from the notary, one JSON answer per line back."""
    seq = 0
    preloaded = preload()
    while True:
        line = requests.readline()
        if not line:
            return 0
        seq += 1
        try:
            response = handle(json.loads(line), seq, preloaded)
        except Exception as exc:  # report, keep serving
            response = {"guest_error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(response).encode() + b"\n")
        answers.flush()


def _reap(signum: int, frame: object) -> None:
    """As pid 1, collect every orphan that dies (the worker too: its pipe then ends)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _tagged(nonce: bytes, payload: bytes) -> bytes:
    digest = hmac.new(bytes.fromhex(nonce.decode()), payload, hashlib.sha256).hexdigest()
    return MARKER + digest.encode() + b" " + payload + b"\n"


def notary(host_in, host_out, to_worker, from_worker) -> int:
    """Relay requests to the worker and tag each answer with its request's nonce.

    The nonce stays here; a request without a well-formed nonce, or a worker that ended,
    is answered with an error (tagged where there is a nonce to tag it with) and ends the
    guest, so the host replaces it.
    """
    while True:
        line = host_in.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        nonce, _, body = line.partition(b" ")
        try:
            ok = len(bytes.fromhex(nonce.decode("ascii"))) >= 16
        except ValueError:
            ok = False
        if not ok:
            host_out.write(MARKER + b"- " + json.dumps(
                {"guest_error": "a request without a nonce"}).encode() + b"\n")
            host_out.flush()
            return 1
        try:
            to_worker.write(body if body.endswith(b"\n") else body + b"\n")
            to_worker.flush()
            answer = from_worker.readline()
        except OSError:
            answer = b""
        if not answer.endswith(b"\n"):
            payload = json.dumps({"guest_error": "the guest's worker ended (killed by the "
                                                 "code it ran?)"}).encode()
            host_out.write(_tagged(nonce, payload))
            host_out.flush()
            return 1
        host_out.write(_tagged(nonce, answer[:-1]))
        host_out.flush()


def main() -> int:
    try:
        supervise.set_dumpable(False)  # before the fork: the worker inherits it
    except OSError as exc:
        print(f"guest: cannot make itself non-dumpable: {exc}", file=sys.stderr)
        return 1
    host_in, host_out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but tagged answers may go on the channel
    req_r, req_w = os.pipe()
    ans_r, ans_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never sees a nonce, never holds the host channel
        code = 1
        try:
            os.close(req_w)
            os.close(ans_r)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.close(null)
            code = serve(os.fdopen(req_r, "rb"), os.fdopen(ans_w, "wb"))
        except BaseException as exc:
            print(f"guest worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            os._exit(code)
    os.close(req_r)
    os.close(ans_w)
    if os.getpid() == 1:
        signal.signal(signal.SIGCHLD, _reap)
    with os.fdopen(req_w, "wb") as to_worker, os.fdopen(ans_r, "rb") as from_worker:
        return notary(host_in, host_out, to_worker, from_worker)


if __name__ == "__main__":
    sys.exit(main())
