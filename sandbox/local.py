"""The ``local`` backend: namespaces and rlimits, for machines with no container engine.

Preference order, strongest first:

1. ``bwrap`` (bubblewrap): new user, pid, net, ipc, uts and mount namespaces;
   the code sees only the interpreter's own directories (read-only), a fresh
   ``/tmp``, ``/dev/shm`` and ``/dev/mqueue``, and its work dir; the root and
   ``/dev`` are read-only; a seccomp filter compiled by libseccomp
   (:mod:`sandbox.seccomp`: no ptrace, io_uring, bpf, nested namespaces,
   mounts, SysV IPC; EPERM, not a kill). Never all of ``/``: a read-only bind
   of ``/`` still exposes host Unix sockets (a container engine's socket is a
   root escape), and ``connect()`` needs no write permission.
2. ``unshare``: pid and net namespaces (no network, the tree dies with its
   init) but the host filesystem stays visible.
3. ``plain``: an ordinary subprocess, flagged ``isolated=False``; refused
   unless ``LocalConfig.allow_unisolated`` is set.

All modes: rlimits (CPU, data, file size, open files, no core), a new
session, pids and memory cgroups where they can be created (which also kill every
process of the run however it forked), wall-clock kill, output caps.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from sandbox import seccomp as seccomp_mod
from sandbox import supervise
from sandbox.cgroup import CgroupPool, RunCgroup, join_command
from sandbox.local_warm import GUEST_PIDS, WARM_MEMORY_HEADROOM, WarmGuest
from sandbox.protocol import decode_answer, encode_request, max_answer_bytes, new_nonce
from sandbox.spec import (
    Guarantees,
    LimitHit,
    Limits,
    MiB,
    RunResult,
    RunSpec,
    SandboxError,
    failed_result,
)

MODES = ("auto", "bwrap", "unshare", "plain")

_BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/sandbox",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "PYTHONPATH": "/opt/mmw",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class LocalConfig:
    """How the local backend isolates.

    ``python``: the interpreter that ``python``/``python3`` in argv means
    (default: the one running mmw, whose numpy/scipy/sympy the code may use).
    ``mmw_root``: directory holding the ``mechanistic`` package, exposed
    read-only at ``/opt/mmw`` so DSL modules can import it.
    """

    mode: str = "auto"
    allow_unisolated: bool = False
    warm: bool = False  # bwrap only: one sandbox serves many runs (see sandbox.local_warm)
    # with warm: each sandbox serves ONE run, the next is started as soon as it is done, so
    # runs keep fresh-sandbox isolation and pay no startup when they are not back to back
    single_use: bool = False
    preload: tuple[str, ...] = ("mechanistic",)  # warm only: imported once, runs fork from it
    python: str = sys.executable
    mmw_root: str = str(Path(__file__).resolve().parent.parent)
    use_cgroup: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"LocalConfig.mode must be one of {MODES}, got {self.mode!r}")
        if not os.path.isabs(self.python):
            raise ValueError("LocalConfig.python must be an absolute path")


def _works(argv: list[str]) -> bool:
    try:
        r = subprocess.run(argv, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def probe_mode(config: LocalConfig) -> str | None:
    """The strongest mode that actually works here (None: nothing allowed works)."""
    wanted = ["bwrap", "unshare", "plain"] if config.mode == "auto" else [config.mode]
    for mode in wanted:
        if mode == "bwrap":
            bw = shutil.which("bwrap")
            if bw and _works([bw, *_bwrap_fs_args(config), "--unshare-all", "--die-with-parent",
                              *_BWRAP_SEAL, "--", "/bin/true"]):
                return mode
        elif mode == "unshare":
            un = shutil.which("unshare")
            if un and _works([un, *_UNSHARE_FLAGS, "--", "/bin/true"]):
                return mode
        elif mode == "plain" and config.allow_unisolated:
            return mode
    return None


MEMORY_HEADROOM = 32 * MiB  # bwrap, its init and the launcher share the run's memory cgroup

_BWRAP_ISOLATION = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                    "--hostname", "sandbox", "--uid", "65534", "--gid", "65534"]

# Last before the command: binds and tmpfs mounts above need a writable root to create
# their mount points; once they are in place, nothing a run writes outside them survives.
_BWRAP_SEAL = ["--remount-ro", "/dev", "--remount-ro", "/"]
SHM_BYTES = 16 * MiB

_UNSHARE_FLAGS = ["--user", "--map-root-user", "--pid", "--fork", "--kill-child",
                  "--mount-proc", "--net", "--ipc", "--uts"]


_LAYOUT_PROBE = (
    "import json, os, sys; print(json.dumps({'prefixes': [sys.prefix, sys.base_prefix], "
    "'site': [p for p in sys.path if os.path.basename(p) in ('site-packages', 'dist-packages')"
    " and os.path.isdir(p)]}))"
)


@functools.lru_cache(maxsize=8)
def _interpreter_layout(python: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(directories to bind read-only, site dirs for PYTHONPATH) of an interpreter.

    The site dirs come from the interpreter's own ``sys.path`` (so Debian's
    dist-packages, a venv's site-packages and a user's prefix all work); the
    sandbox runs it with ``-S``, so they must go on PYTHONPATH explicitly.
    """
    if python == sys.executable:
        prefixes = [sys.prefix, sys.base_prefix]
        site = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")
                and os.path.isdir(p)]
    else:
        import json

        out = subprocess.run([python, "-c", _LAYOUT_PROBE], capture_output=True, text=True,
                             timeout=30, check=True)
        data = json.loads(out.stdout)
        prefixes, site = data["prefixes"], data["site"]
    roots = {*prefixes, os.path.dirname(os.path.realpath(python)), *site}
    # /usr is bound whole; anything under it needs no extra bind
    ordered = sorted(r for r in roots
                     if r and r != "/usr" and not r.startswith("/usr/") and os.path.exists(r))
    pruned: list[str] = []
    for r in ordered:
        if not any(r == p or r.startswith(p.rstrip("/") + "/") for p in pruned):
            pruned.append(r)
    return tuple(pruned), tuple(dict.fromkeys(site))


def _bwrap_fs_args(config: LocalConfig) -> list[str]:
    # The fresh /tmp comes first: binds are applied in order, and an interpreter living
    # under /tmp (a venv in a clone under /tmp) must be bound on top of it, not hidden.
    args = ["--tmpfs", "/tmp", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for f in ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf"):
        if os.path.exists(f):
            args += ["--ro-bind", f, f]
    for root in _interpreter_layout(config.python)[0]:
        args += ["--ro-bind", root, root]
    mech = os.path.join(config.mmw_root, "mechanistic")
    if os.path.isdir(mech):
        args += ["--ro-bind", mech, "/opt/mmw/mechanistic"]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
             "--mqueue", "/dev/mqueue"]
    return args


class LocalSandbox:
    """Runs a spec in a fresh host temp dir under bwrap / unshare / plain subprocess."""

    name = "local"

    def __init__(self, config: LocalConfig | None = None) -> None:
        self.config = config or LocalConfig()
        mode = probe_mode(self.config)
        if mode is None:
            raise SandboxError(
                f"no local isolation available (mode={self.config.mode!r}): install bubblewrap "
                "(apt-get install bubblewrap), or allow an unisolated subprocess with "
                "LocalConfig(allow_unisolated=True)"
            )
        self.mode = mode
        self._cg_pids, self._cg_memory = (RunCgroup.probe() if self.config.use_cgroup
                                          else (False, False))
        self._cgroup_ok = self._cg_pids or self._cg_memory
        self._prlimit = shutil.which("prlimit") if os.path.exists("/bin/sh") else None
        self._fs_args = _bwrap_fs_args(self.config)
        self._site = list(_interpreter_layout(self.config.python)[1])
        self._warm: WarmGuest | None = None
        self._lock = threading.Lock()
        self.warm = self.config.warm and self.mode == "bwrap"
        self._seccomp_error = None
        if self.mode == "bwrap":
            try:
                seccomp_mod.program()
            except seccomp_mod.SeccompUnavailable as exc:
                self._seccomp_error = str(exc)
        self._pool = CgroupPool()
        # the pool's directories are removed even if close() is never called
        self._finalizer = weakref.finalize(self, self._pool.close)
        if self.warm and self.config.single_use:
            with self._lock:
                self._warm_guest(RunSpec(argv=("true",)))  # default limits: ready for most runs

    def guarantees(self) -> Guarantees:
        notes = []
        if not self._cg_pids:
            notes.append("process count bounded only by the wall clock (no writable pids cgroup;"
                         " RLIMIT_NPROC is ignored for root)")
        if not self._cg_memory:
            notes.append("memory bounded per process by RLIMIT_DATA, not in total (no writable "
                         "memory cgroup)")
        notes.append("work dir is a host temp dir: disk use bounded per file by RLIMIT_FSIZE")
        if self.mode == "bwrap" and self._seccomp_error is None:
            notes.append("seccomp (libseccomp): ptrace, process_vm_*, io_uring, bpf, perf, "
                         "keyrings, userfaultfd, mounts, unshare/setns and clone with namespace "
                         "flags, SysV IPC fail with EPERM")
        elif self.mode == "bwrap":
            notes.append(f"NO seccomp filter: {self._seccomp_error}")
        else:
            notes.append("no seccomp filter (bwrap mode only)")
        pids = "cgroup pids.max" if self._cg_pids else "wall clock only"
        memory = "cgroup + rlimit-data" if self._cg_memory else "rlimit-data"
        if self.warm and self.config.single_use:
            notes = [n for n in notes if not n.startswith("work dir is a host")]
            notes += ["prestarted: a fresh bwrap sandbox per run (sized tmpfs work dir), "
                      "started ahead of time; the guest supervising the run shares its uid"]
        elif self.warm:
            notes = [n for n in notes if not n.startswith("work dir is a host")]
            notes += ["warm: one bwrap sandbox serves many runs (fresh dir on a sized tmpfs "
                      "each); the guest kills every leftover process and empties /sandbox, "
                      "/tmp, /dev/shm and /dev/mqueue between runs",
                      "warm: answers are authenticated per request; a forged line fails the "
                      "run and the guest is replaced",
                      "warm: each run is a fork of the same guest, so it can read what earlier "
                      "runs left in the guest's memory (their requests); use cold or "
                      "prestart mode where runs must not see each other"]
        if self.mode == "bwrap":
            return Guarantees(
                backend="local/bwrap", isolated=True, network="none",
                filesystem="interpreter dirs and /usr read-only, fresh /tmp, work dir",
                memory=memory, pids=pids, process_tree_killed=True, notes=tuple(notes))
        if self.mode == "unshare":
            return Guarantees(
                backend="local/unshare", isolated=True, network="none",
                filesystem="host filesystem visible with the caller's permissions",
                memory=memory, pids=pids, process_tree_killed=True,
                notes=(*notes, "no filesystem isolation: host files are readable"))
        return Guarantees(
            backend="local/plain", isolated=False, network="host",
            filesystem="host filesystem visible with the caller's permissions",
            memory=memory, pids=pids, process_tree_killed=self._cgroup_ok,
            notes=(*notes, "UNISOLATED: network and host files are reachable"))

    def close(self) -> None:
        """Stop the warm guest, if any, and remove the pooled cgroups."""
        with self._lock:
            self._stop_warm()
        self._finalizer()

    def _stop_warm(self) -> None:
        if self._warm is not None:
            w, self._warm = self._warm, None
            w.close()
            if w.cgroup is not None:
                self._pool.release(w.cgroup)

    def _warm_guest(self, spec: RunSpec) -> WarmGuest:
        lim = spec.limits
        key = (lim.pids, lim.workdir_bytes, lim.memory_bytes)
        if self._warm is not None and (self._warm.key != key or not self._warm.alive()):
            self._stop_warm()
        if self._warm is None:
            env = {**_BASE_ENV, "HOME": "/sandbox",
                   "PYTHONPATH": ":".join(["/opt/mmw", *self._site]),
                   "MMW_GUEST_PRELOAD": ",".join(self.config.preload)}
            # --as-pid-1: the guest is the namespace's init, so no bwrap init holds its
            # channel (the init keeps stdin/stdout, reachable through /proc/1/fd)
            argv = [shutil.which("bwrap") or "bwrap", *self._fs_args,
                    "--ro-bind", str(Path(__file__).resolve().parent), "/opt/mmw/sandbox",
                    "--size", str(lim.workdir_bytes), "--tmpfs", "/sandbox",
                    "--chdir", "/sandbox", *_BWRAP_ISOLATION, "--as-pid-1", "--clearenv"]
            for k, v in env.items():
                argv += ["--setenv", k, v]
            fd = self._seccomp_fd()
            try:
                argv += [*_BWRAP_SEAL, *(["--seccomp", str(fd)] if fd is not None else []),
                         "--", self.config.python, "-S", "-m", "sandbox.guest"]
                cgroup = (self._pool.acquire(lim.pids + GUEST_PIDS,
                                             lim.memory_bytes + WARM_MEMORY_HEADROOM)
                          if self._cgroup_ok else None)
                self._warm = WarmGuest(argv, cgroup, key, pass_fds=(fd,) if fd is not None
                                       else ())
            finally:
                if fd is not None:
                    os.close(fd)
        return self._warm

    def _seccomp_fd(self) -> int | None:
        """A fresh fd with the compiled filter for one bwrap launch (None: no filter here)."""
        if self.mode != "bwrap" or self._seccomp_error is not None:
            return None
        return seccomp_mod.program_fd()

    def _run_warm(self, spec: RunSpec) -> RunResult:
        g = self.guarantees()
        start = time.monotonic()
        nonce = new_nonce()
        with self._lock:
            try:
                if self._warm is not None and self._warm.stray():
                    self._stop_warm()  # bytes nobody asked for: a poisoned channel
                guest = self._warm_guest(spec)
                ooms = guest.cgroup.oom_kills() if guest.cgroup is not None else -1
                answer = guest.request(encode_request(spec, nonce),
                                       time.monotonic() + spec.limits.wall_s + 30.0,
                                       nonce, max_answer_bytes(spec.limits))
            except TimeoutError:
                self._stop_warm()
                return failed_result(self.name, g, "the warm guest stopped answering; killed",
                                     time.monotonic() - start)
            except Exception as exc:
                self._stop_warm()
                return failed_result(self.name, g, f"{type(exc).__name__}: {exc}",
                                     time.monotonic() - start)
            cg = self._warm.cgroup if self._warm is not None else None
            oom = cg is not None and ooms >= 0 and cg.oom_kills() > ooms
            if answer is not None and answer.forged:
                self._stop_warm()  # never ask a channel that carried a forged line again
                return failed_result(self.name, g, f"{answer.error}; warm guest replaced",
                                     time.monotonic() - start)
            if answer is None or answer.payload is None:
                self._stop_warm()
                if oom:
                    return RunResult(
                        exit_code=None, signal=9, timed_out=False, limit_hit=LimitHit.MEMORY,
                        stdout="", stderr="", stdout_truncated=False, stderr_truncated=False,
                        files={}, wall_s=time.monotonic() - start, backend=self.name,
                        guarantees=g)
                return failed_result(self.name, g, "the warm guest ended (killed by the code?)",
                                     time.monotonic() - start)
            wall = time.monotonic() - start
            result = decode_answer(answer.payload, self.name, g, wall, oom_killed=oom)
            if self.config.single_use or result.error is not None:
                self._stop_warm()  # prestart: one run per sandbox; a failed guest: replaced
                if self.config.single_use:
                    self._warm_guest(spec)  # the next run's sandbox starts now
        return result

    def _argv(self, spec: RunSpec, workdir: str,
              seccomp_fd: int | None = None) -> tuple[list[str], str, dict[str, str]]:
        argv = list(spec.argv)
        env = {**_BASE_ENV, **spec.env}
        if argv[0] in ("python", "python3"):
            # -S: skip site (.pth files, editable-install finders: ~10 ms a start);
            # the interpreter's site-packages go on PYTHONPATH instead.
            argv[0:1] = [self.config.python, "-S"]
            env["PYTHONPATH"] = ":".join([env["PYTHONPATH"], *self._site])
        if self.mode == "bwrap":
            bw = [shutil.which("bwrap") or "bwrap", "--bind", workdir, "/sandbox",
                  *self._fs_args, "--chdir", "/sandbox", *_BWRAP_ISOLATION, "--clearenv"]
            for k, v in env.items():
                bw += ["--setenv", k, v]
            bw += _BWRAP_SEAL
            if seccomp_fd is not None:
                bw += ["--seccomp", str(seccomp_fd)]
            return [*bw, "--", *argv], workdir, {}
        env["HOME"] = workdir
        env["PYTHONPATH"] = env["PYTHONPATH"].replace("/opt/mmw", os.path.join(workdir, ".mmw"), 1)
        if self.mode == "unshare":
            unshare = shutil.which("unshare") or "unshare"
            return [unshare, *_UNSHARE_FLAGS, "--", *argv], workdir, env
        return argv, workdir, env

    def run(self, spec: RunSpec) -> RunResult:
        if self.warm:
            return self._run_warm(spec)
        g = self.guarantees()
        workdir = tempfile.mkdtemp(prefix="mmw-sandbox-")
        cgroup = (self._pool.acquire(spec.limits.pids, spec.limits.memory_bytes + MEMORY_HEADROOM)
                  if self._cgroup_ok else None)
        seccomp_fd = None
        try:
            seccomp_fd = self._seccomp_fd()
            supervise.write_files(workdir, spec.files)
            if self.mode != "bwrap":  # no bind mounts: give mechanistic a path in the work dir
                mech = os.path.join(self.config.mmw_root, "mechanistic")
                if os.path.isdir(mech):
                    os.makedirs(os.path.join(workdir, ".mmw"), exist_ok=True)
                    os.symlink(mech, os.path.join(workdir, ".mmw", "mechanistic"))
            os.chmod(workdir, 0o777)
            argv, cwd, env = self._argv(spec, workdir, seccomp_fd)
            limits = _limit_dict(spec.limits)
            preexec = None
            if self._prlimit:
                # No Python preexec_fn: Popen can then vfork, which stays cheap when the
                # host process is large (torch loaded); sh joins the cgroup, prlimit sets
                # the rlimits, and both exec on, so the pid we watch is the sandbox's.
                argv = [self._prlimit, *supervise.prlimit_flags(limits), "--", *argv]
                if cgroup is not None:
                    argv = join_command(cgroup, argv)
            else:
                rl = supervise.rlimit_setter(limits)

                def preexec() -> None:
                    if cgroup is not None:
                        cgroup.join_self()
                    rl()

            def kill_tree(proc: subprocess.Popen[bytes]) -> None:
                supervise._kill_group(proc)
                if cgroup is not None:
                    cgroup.kill_all()

            ooms = cgroup.oom_kills() if cgroup is not None else -1
            out = supervise.supervise(argv, cwd=cwd, env=env, limits=limits, stdin=spec.stdin,
                                      preexec_fn=preexec, kill_tree=kill_tree,
                                      pass_fds=(seccomp_fd,) if seccomp_fd is not None else ())
            if self.mode == "bwrap":
                _signal_from_bwrap_status(out)
            if (ooms >= 0 and cgroup is not None and cgroup.oom_kills() > ooms
                    and not out["timed_out"] and out["limit_hit"] in (None, "pids")):
                out["limit_hit"] = "memory"
            files = supervise.collect_files(workdir, spec.collect, spec.limits.collect_bytes)
        except Exception as exc:  # the sandbox failed, not the code: still a result
            return failed_result(self.name, g, f"{type(exc).__name__}: {exc}")
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
            if cgroup is not None:
                self._pool.release(cgroup)
            shutil.rmtree(workdir, ignore_errors=True)
        return result_from_dict(out, files, self.name, g)


def _signal_from_bwrap_status(out: dict) -> None:
    """bwrap's init reports a child killed by signal N as exit status 128+N: undo that.

    (A program that itself exits with 129..192 is misread as signalled; rare enough.)
    """
    code = out["exit_code"]
    if code is not None and 128 < code <= 128 + 64:
        out["exit_code"], out["signal"] = None, code - 128
        if out["limit_hit"] is None:
            out["limit_hit"] = supervise.classify(
                returncode=-(code - 128), timed_out=out["timed_out"], output_capped=False,
                stderr_tail=out["stderr"])


def _limit_dict(limits: Limits) -> dict[str, float]:
    from dataclasses import asdict

    return asdict(limits)


def result_from_dict(out: dict, files: dict, backend: str, g: Guarantees) -> RunResult:
    """Build a RunResult from :func:`sandbox.supervise.supervise`'s dict."""
    lh = out.get("limit_hit")
    return RunResult(
        exit_code=out["exit_code"], signal=out["signal"], timed_out=out["timed_out"],
        limit_hit=LimitHit(lh) if lh else None,
        stdout=out["stdout"].decode("utf-8", "replace"),
        stderr=out["stderr"].decode("utf-8", "replace"),
        stdout_truncated=out["stdout_truncated"], stderr_truncated=out["stderr_truncated"],
        files=files, wall_s=out["wall_s"], backend=backend, guarantees=g,
    )
