"""The process that runs inside the container and supervises each run there.

Standard library only: it is copied into the runtime image next to
:mod:`sandbox.supervise` and started as ``python3 -m sandbox.guest``. It reads
one JSON request per line on stdin (from the host, through the engine's
attach stream), runs it with :func:`sandbox.supervise.supervise` in a fresh
directory of the tmpfs work dir, and answers one line ``MMW-RESULT <json>``
on stdout. A cold container serves one request and exits at EOF; a warm one
keeps serving, so a run costs one round trip and one process start instead
of a container creation.

Between runs it kills every process in the container other than itself and
init, so nothing one run starts (a daemon that double-forked out of the
session) survives into the next.
"""

from __future__ import annotations

import base64
import contextlib
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


def _child_setup(limits: dict):
    """rlimits, and first in line for the OOM killer: when the container's memory runs out,
    the run's processes die, not the guest that reports on them."""
    rl = supervise.rlimit_setter(limits)

    def setup() -> None:
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        rl()

    return setup


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
        child_limits = dict(limits)
        if target is not None:  # a fork starts with the guest's heap: the limit is on top
            child_limits["memory_bytes"] = int(limits["memory_bytes"]) + _vm_data()
        ooms = _oom_kills()
        out = supervise.supervise(
            argv, cwd=workdir, env=env, limits=limits,
            stdin=base64.b64decode(request["stdin"]),
            preexec_fn=_child_setup(child_limits),
            kill_tree=lambda proc: kill_everything_else(),
            fork_target=target,
        )
        oom = ooms >= 0 and _oom_kills() > ooms
        if oom and not out["timed_out"] and out["limit_hit"] in (None, "pids"):
            out["limit_hit"] = "memory"
        files = supervise.collect_files(workdir, request["collect"], int(limits["collect_bytes"]))
    finally:
        kill_everything_else()
        _wipe(WORKDIR)  # not just run-N: a run may have written anywhere it can
        _wipe("/tmp")
    out["stdout"] = base64.b64encode(out["stdout"]).decode()
    out["stderr"] = base64.b64encode(out["stderr"]).decode()
    out["files"] = {k: base64.b64encode(v).decode() for k, v in files.items()}
    return out


def main() -> int:
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    seq = 0
    preloaded = preload()
    while True:
        line = stdin.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        seq += 1
        try:
            response = handle(json.loads(line), seq, preloaded)
        except Exception as exc:  # report, keep serving
            response = {"guest_error": f"{type(exc).__name__}: {exc}"}
        stdout.write(MARKER + json.dumps(response).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
