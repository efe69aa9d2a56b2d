"""The local backend's weaker fallbacks say what they are, and still enforce limits."""

from __future__ import annotations

import pytest

from sandbox.local import LocalConfig, LocalSandbox
from sandbox.spec import LimitHit, Limits, RunSpec, SandboxError


def test_plain_is_refused_unless_allowed():
    with pytest.raises(SandboxError, match="allow_unisolated"):
        LocalSandbox(LocalConfig(mode="plain"))


def test_plain_is_flagged_unisolated():
    sb = LocalSandbox(LocalConfig(mode="plain", allow_unisolated=True))
    g = sb.guarantees()
    assert not g.isolated and g.network == "host"
    assert any("UNISOLATED" in n for n in g.notes)
    r = sb.run(RunSpec(argv=("python3", "-c", "print(6 * 7)")))
    assert r.ok and r.stdout == "42\n" and r.guarantees.backend == "local/plain"


def test_unshare_mode_limits_and_no_network():
    try:
        sb = LocalSandbox(LocalConfig(mode="unshare"))
    except SandboxError as exc:
        pytest.skip(f"unshare unavailable: {exc}")
    assert sb.guarantees().network == "none"
    r = sb.run(RunSpec(argv=("python3", "-c", "while True: pass"), limits=Limits(wall_s=1.0)))
    assert r.timed_out and r.limit_hit is LimitHit.WALL
    code = ("import socket\ntry:\n socket.create_connection(('1.1.1.1', 80), timeout=1)\n"
            " print('CONNECTED')\nexcept OSError:\n print('blocked')\n")
    r = sb.run(RunSpec(argv=("python3", "-c", code)))
    assert r.stdout.strip() == "blocked", r.stdout + r.stderr


def test_preexec_path_without_prlimit(local_sandbox, survivors):
    """Where util-linux prlimit is missing, rlimits and the cgroup come from a preexec_fn."""
    sb = LocalSandbox(LocalConfig(mode="bwrap"))
    sb._prlimit = None
    r = sb.run(RunSpec(argv=("python3", "-c", "x = bytearray(400 * 2**20)"),
                       limits=Limits(memory_bytes=64 * 2**20)))
    assert r.limit_hit is LimitHit.MEMORY
    token = "mmwpreexectoken"
    r = sb.run(RunSpec(argv=("python3", "-c", f"# {token}\nimport os\nwhile True: os.fork()"),
                       limits=Limits(wall_s=3.0)))
    assert r.limit_hit in (LimitHit.PIDS, LimitHit.WALL)
    assert survivors(token) == []
    sb.close()


def test_prestarted_sandboxes_are_single_use(local_prestart, survivors):
    """Each run gets its own sandbox: a daemon or a file from one run is gone in the next."""
    token = "mmwprestarttoken"
    r = local_prestart.run(RunSpec(argv=("python3", "-c", f"""# {token}
import os, time
open('/tmp/left-behind', 'w').write('x')
if os.fork() == 0:
    os.setsid()
    time.sleep(60)
print(os.getpid())
""")))
    assert r.exit_code == 0, r.summary() + r.stderr
    assert survivors(token) == []
    r = local_prestart.run(RunSpec(argv=("python3", "-c",
                                         "import os; print(os.path.exists('/tmp/left-behind'))")))
    assert r.stdout.strip() == "False"
    assert any("prestarted" in n for n in local_prestart.guarantees().notes)
