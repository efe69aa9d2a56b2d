"""Hostile corpus, sandbox hardening: warm state reset, seccomp, and which backend runs.

- A warm sandbox serves run after run, so a run that leaves files in every
  writable place (work dir, ``/tmp``, ``/var/tmp``, ``/dev/shm``, a POSIX
  message queue) must find the next run seeing none of them; the root and
  ``/dev`` are read-only and SysV IPC (whose objects would outlive the run) is
  denied.
- The seccomp filter: io_uring, ptrace of the parent, a nested user
  namespace by ``unshare`` or ``clone``, and the rest of the deny list fail
  with EPERM from Python (an exception, not a kill) while an ordinary DSL
  module still runs.
- ``MMW_SANDBOX`` and ``--backend`` agree: an unset flag defers to the
  variable, a given flag wins, and the command says which backend it used.

Each case checks the host answered within a time bound.
"""

from __future__ import annotations

import json
import platform
import time

import pytest

from sandbox.runner import run_model_module
from sandbox.spec import Limits, MiB, RunSpec

pytestmark = pytest.mark.hostile

LIMITS = Limits(wall_s=10.0, cpu_s=10, memory_bytes=384 * MiB)
HOST_BOUND_S = 8.0
FIRST_START_S = 30.0

LEAVE = r'''
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
left, refused = [], {}
for d in ("/sandbox", "/tmp", "/var/tmp", "/dev/shm"):
    try:
        with open(os.path.join(d, "left-behind"), "w") as f:
            f.write("state")
        left.append(d)
    except OSError as e:
        refused[d] = e.errno
os.makedirs("/tmp/deep/er", exist_ok=True)
open("/tmp/deep/er/file", "w").write("x")
libc.mq_open.restype = ctypes.c_int
q = libc.mq_open(b"/mmw-queue", os.O_CREAT | os.O_RDWR, 0o600, None)
mq = "created" if q >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
shm = libc.shmget(0, 4096, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
shm_err = errno.errorcode.get(ctypes.get_errno(), "?") if shm < 0 else "created"
for ro in ("/", "/dev"):
    try:
        open(os.path.join(ro, "left-behind"), "w").write("x")
        left.append(ro)
    except OSError as e:
        refused[ro] = e.errno
print(json.dumps({"left": left, "refused": refused, "mq": mq, "shm": shm_err}))
'''

LOOK = r'''
import json, os
here = os.path.basename(os.getcwd())  # this run's own directory under /sandbox
seen = {}
for d in ("/sandbox", "/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/", "/dev"):
    try:
        names = os.listdir(d)
    except OSError:
        continue
    seen[d] = sorted(n for n in names if n.startswith("left") or n in ("deep", "mmw-queue")
                     or (n.startswith("run-") and n != here))
ipc = {}
for kind in ("shm", "msg", "sem"):
    try:
        ipc[kind] = len(open(f"/proc/sysvipc/{kind}").read().splitlines()) - 1
    except OSError:
        pass
print(json.dumps({"seen": seen, "ipc": ipc, "cwd": sorted(os.listdir("."))}))
'''


def _run(sb, code: str, bound: float = HOST_BOUND_S):
    t = time.monotonic()
    r = sb.run(RunSpec(argv=("python3", "-c", code), limits=LIMITS))
    assert time.monotonic() - t < bound, r.summary()
    assert r.ok, (r.summary(), r.stderr[-1500:])
    return json.loads(r.stdout)


def assert_state_reset(sb) -> None:
    first = _run(sb, LEAVE, FIRST_START_S)
    assert {"/sandbox", "/tmp", "/dev/shm"} <= set(first["left"]), first
    assert "/" not in first["left"] and "/dev" not in first["left"], first
    assert first["mq"] == "created", first  # a POSIX queue: allowed, and wiped below
    assert first["shm"] == "EPERM", first  # SysV IPC outlives runs: denied instead
    after = _run(sb, LOOK)
    assert all(names == [] for names in after["seen"].values()), after
    assert all(n == 0 for n in after["ipc"].values()), after
    assert after["cwd"] == [], after


def test_warm_local_resets_every_writable_place(local_warm):
    assert_state_reset(local_warm)


@pytest.mark.container
def test_warm_container_resets_every_writable_place(container_warm):
    assert_state_reset(container_warm)
    assert "/var/tmp" in _run(container_warm, LEAVE)["left"]  # a tmpfs in the image's layout


# --- seccomp ---

# (io_uring_setup, ptrace, unshare, clone, process_vm_readv, bpf, keyctl, userfaultfd, mount)
_NR = {
    "x86_64": dict(io_uring_setup=425, ptrace=101, unshare=272, clone=56, process_vm_readv=310,
                   bpf=321, keyctl=250, userfaultfd=323, mount=165),
    "aarch64": dict(io_uring_setup=425, ptrace=117, unshare=97, clone=220,
                    process_vm_readv=270, bpf=280, keyctl=219, userfaultfd=282, mount=40),
}

PROBE = r'''
import ctypes, errno, json, os
NR = %s
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(*args):
    ctypes.set_errno(0)
    r = libc.syscall(*[ctypes.c_long(a) for a in args])
    return r, ctypes.get_errno()
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
out = {}
r, e = call(NR["io_uring_setup"], 1, 0)
out["io_uring_setup"] = e
r, e = call(NR["ptrace"], 16, os.getppid(), 0, 0)  # PTRACE_ATTACH the guest / bwrap init
if r == 0:
    call(NR["ptrace"], 17, os.getppid(), 0, 0)  # PTRACE_DETACH
out["ptrace_attach_parent"] = e if r else "ATTACHED"
r, e = call(NR["unshare"], CLONE_NEWUSER)
out["unshare_newuser"] = e if r else "UNSHARED"
r, e = call(NR["clone"], CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
if r == 0:
    os._exit(0)  # a child in a new user namespace: must not happen
out["clone_newuser"] = e if r < 0 else "CLONED"
try:  # Python 3.12+: the same call through the os module raises, it does not kill
    os.unshare(os.CLONE_NEWUSER)
    out["os_unshare"] = "UNSHARED"
except AttributeError:
    pass
except PermissionError:
    out["os_unshare"] = "PermissionError"
for name, args in (("process_vm_readv", (os.getppid(), 0, 0, 0, 0, 0)), ("bpf", (0, 0, 0)),
                   ("keyctl", (0, 0)), ("userfaultfd", (0,)), ("mount", (0, 0, 0, 0, 0))):
    out[name] = call(NR[name], *args)[1]
print(json.dumps(out))
'''


def assert_seccomp_denies(sb, seir_source: str) -> None:
    nr = _NR.get(platform.machine())
    if nr is None:
        pytest.skip(f"no syscall table for {platform.machine()}")
    got = _run(sb, PROBE % (nr,), FIRST_START_S)  # it ran to the end: EPERM, never a kill
    assert got.pop("os_unshare", "PermissionError") == "PermissionError", got
    eperm = 1
    assert got == {"io_uring_setup": eperm, "ptrace_attach_parent": eperm,
                   "unshare_newuser": eperm, "clone_newuser": eperm,
                   "process_vm_readv": eperm, "bpf": eperm, "keyctl": eperm,
                   "userfaultfd": eperm, "mount": eperm}, got
    t = time.monotonic()
    ordinary = run_model_module(seir_source, "seir.py", sandbox=sb, limits=LIMITS)
    assert time.monotonic() - t < HOST_BOUND_S
    assert ordinary.ok and json.loads(ordinary.model_json)["name"] == "SEIR", ordinary.error


def test_seccomp_local_cold(local_sandbox, seir_source):
    assert any("seccomp (libseccomp)" in n for n in local_sandbox.guarantees().notes)
    assert_seccomp_denies(local_sandbox, seir_source)


def test_seccomp_local_warm(local_warm, seir_source):
    assert_seccomp_denies(local_warm, seir_source)


@pytest.mark.container
def test_seccomp_container(container_cold, seir_source):
    assert_seccomp_denies(container_cold, seir_source)


def test_seccomp_program_is_built_by_libseccomp():
    from sandbox import seccomp

    assert seccomp.available(), seccomp.library_version()
    prog = seccomp.program()
    assert prog and len(prog) % 8 == 0
    assert "libseccomp" in seccomp.library_version()


# --- MMW_SANDBOX and --backend ---


@pytest.fixture
def app():
    import typer

    from workbench.commands_sandbox import register

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    register(app)
    return app


def _invoke(app, args: list[str], env: dict[str, str]):
    from typer.testing import CliRunner

    t = time.monotonic()
    r = CliRunner().invoke(app, args, env=env)
    assert time.monotonic() - t < 30
    return r


def test_env_selects_the_backend_when_no_flag(app, tmp_path, seir_source, local_sandbox):
    mod = tmp_path / "seir.py"
    mod.write_text(seir_source)
    r = _invoke(app, ["check", str(mod)], {"MMW_SANDBOX": "local"})
    assert "sandbox: local (bwrap), selected by MMW_SANDBOX=local" in r.stdout, r.stdout
    r = _invoke(app, ["check", str(mod), "--json"], {"MMW_SANDBOX": "local"})
    out = json.loads(r.stdout)
    assert out["backend"] == "local" and out["sandbox"].startswith("local (bwrap)")


def test_flag_wins_over_env_when_given(app, tmp_path, seir_source, local_sandbox):
    mod = tmp_path / "seir.py"
    mod.write_text(seir_source)
    r = _invoke(app, ["check", str(mod), "--backend", "local"], {"MMW_SANDBOX": "container"})
    assert "sandbox: local (bwrap), selected by --backend local" in r.stdout, r.stdout


def test_bad_env_value_is_a_clear_error(app, tmp_path, seir_source):
    mod = tmp_path / "seir.py"
    mod.write_text(seir_source)
    r = _invoke(app, ["check", str(mod)], {"MMW_SANDBOX": "nowhere"})
    assert r.exit_code == 2 and "backend must be one of" in r.output


def test_doctor_follows_env(app, local_sandbox):
    r = _invoke(app, ["sandbox", "doctor", "--json"], {"MMW_SANDBOX": "local"})
    report = json.loads(r.stdout)
    assert report["selected"] == "local" and report["selected_by"] == "MMW_SANDBOX=local"
    assert report["auto"] == "local"
