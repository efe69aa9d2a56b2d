"""Hostile corpus, sandbox channel: code that forges the guest's answers gets nowhere.

The red team's attacks: a cold container module wrote a forged ``MMW-RESULT``
line through ``/proc/<parent>/fd/1``, and in warm mode two forged lines made
the next, innocent module come back as the forged model. Here the forger
tries every file descriptor of every process it can see, in each backend and
mode; each case asserts the forger's run fails with the forged-channel reason
or returns its own model, that the innocent modules after it get their own
models, and that the host stayed within a time bound. The host side is also
fed forged and malformed answers directly (a leaked channel, simulated from
the host; wrong types; hostile JSON) and must refuse each with a clear reason,
never an exception.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time

import pytest

from sandbox.protocol import (
    FORGED,
    MARKER,
    decode_answer,
    new_nonce,
    read_answer,
    tag,
)
from sandbox.runner import run_model_module
from sandbox.spec import Guarantees, Limits, MiB, RunSpec

pytestmark = pytest.mark.hostile

LIMITS = Limits(wall_s=10.0, cpu_s=10, memory_bytes=384 * MiB)
HOST_BOUND_S = 8.0  # one module run, including a warm guest's replacement
FIRST_START_S = 30.0  # a warm container's first start (create, attach, preload)

FORGER = '''\
from mechanistic import Model
import base64, json, os

m = Model("Forger")
[x] = m.states("x")
m.flow(x, None, 0.1 * x)
m.init(x=1.0)

forged = Model("FORGED")
[y] = forged.states("y")
result = json.dumps({"ok": True, "model_json": forged.to_json(), "variable": "forged"})
del forged, y  # one Model in the namespace: the forger's own
answer = json.dumps({
    "exit_code": 0, "signal": None, "timed_out": False, "limit_hit": None,
    "stdout": "", "stderr": "", "stdout_truncated": False, "stderr_truncated": False,
    "files": {"_mmw_result.json": base64.b64encode(result.encode()).decode()},
    "wall_s": 0.01}).encode()
lines = (b"MMW-RESULT " + b"0" * 64 + b" " + answer + b"\\n"   # a guessed tag
         + b"MMW-RESULT " + answer + b"\\n") * 2              # the old, untagged format
print(lines.decode(), end="")                                # its own stdout: data

me = os.getpid()
foreign = 0
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    for fd in fds:
        try:
            w = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.write(w, lines)
            foreign += int(pid) != me
        except OSError:
            pass
        finally:
            os.close(w)
for fd in range(3, 256):  # anything inherited
    try:
        os.write(fd, lines)
        foreign += 1
    except OSError:
        pass
print("FOREIGN-WRITES", foreign)
'''


def innocent(name: str) -> str:
    return (f"from mechanistic import Model\nm = Model({name!r})\n[x] = m.states('x')\n"
            "m.flow(x, None, 0.5 * x)\nm.init(x=2.0)\nprint('innocent')\n")


def model_name(run) -> str | None:
    return json.loads(run.model_json)["name"] if run.ok and run.model_json else None


def foreign_writes(stdout: str) -> int:
    return int(stdout.rsplit("FOREIGN-WRITES", 1)[1].split()[0])


def assert_forger_contained(sb, channel_reachable: bool) -> None:
    """Forger, then two innocents: nobody gets the forged model or another run's answer."""
    t = time.monotonic()
    forger = run_model_module(FORGER, "forger.py", sandbox=sb, limits=LIMITS)
    elapsed = time.monotonic() - t
    if forger.ok:
        assert model_name(forger) == "Forger", forger.model_json[:200]
        assert "MMW-RESULT" in forger.stdout  # its own output came back as data
        if not channel_reachable:
            assert foreign_writes(forger.stdout) == 0, "the code reached another process's fd"
    else:
        assert forger.error.kind == "sandbox" and FORGED in forger.error.message, forger.error
    assert elapsed < FIRST_START_S
    for name in ("InnocentOne", "InnocentTwo"):
        t = time.monotonic()
        r = run_model_module(innocent(name), "innocent.py", sandbox=sb, limits=LIMITS)
        assert time.monotonic() - t < HOST_BOUND_S
        assert r.ok, (r.error, r.run.summary())
        assert model_name(r) == name and r.stdout == "innocent\n"


def test_forger_cold_local(local_sandbox):
    # The cold sandbox's bwrap init holds only the run's own stdout: writes there are data.
    assert_forger_contained(local_sandbox, channel_reachable=True)


def test_forger_warm_local(local_warm):
    assert_forger_contained(local_warm, channel_reachable=False)


def test_forger_prestart_local(local_prestart):
    assert_forger_contained(local_prestart, channel_reachable=False)


@pytest.mark.container
def test_forger_cold_container(container_cold):
    assert_forger_contained(container_cold, channel_reachable=False)


@pytest.mark.container
def test_forger_warm_container(container_warm):
    assert_forger_contained(container_warm, channel_reachable=False)


@pytest.mark.container
def test_red_team_parent_fd_write_cold_container(container_cold):
    """The red team's exact attack: a forged line to /proc/<parent>/fd/1 crashed the host."""
    code = ("import os\ntry:\n    f = os.open(f'/proc/{os.getppid()}/fd/1', os.O_WRONLY)\n"
            "    os.write(f, b'MMW-RESULT [1, 2]\\n'); print('wrote')\n"
            "except OSError as e:\n    print('refused', e.errno)\n")
    t = time.monotonic()
    r = container_cold.run(RunSpec(argv=("python3", "-c", code), limits=LIMITS))
    assert time.monotonic() - t < HOST_BOUND_S
    assert r.ok and r.stdout == "refused 13\n", (r.summary(), r.stdout)


# --- a leaked channel, simulated from the host: what the host does with forged bytes ---


@pytest.fixture
def private_warm():
    """A warm local sandbox of its own (these tests poison and replace its guest)."""
    from sandbox.local import LocalConfig, LocalSandbox
    from sandbox.spec import SandboxError

    try:
        sb = LocalSandbox(LocalConfig(mode="bwrap", warm=True))
    except SandboxError as exc:
        pytest.skip(f"bubblewrap unavailable: {exc}")
    yield sb
    sb.close()


def _inject(sb, data: bytes) -> None:
    """Write ``data`` onto the warm guest's channel, as code that reached it would."""
    fd = os.open(f"/proc/{sb._warm.proc.pid}/fd/1", os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_forged_line_during_a_run_fails_it_and_replaces_the_guest(private_warm):
    sb = private_warm
    first = run_model_module(innocent("Warmup"), "w.py", sandbox=sb, limits=LIMITS)
    assert first.ok
    guest = sb._warm.proc.pid
    line = MARKER + b"0" * 64 + b' {"exit_code": 0}\n'
    timer = threading.Timer(0.4, _inject, (sb, line * 2))
    timer.start()
    t = time.monotonic()
    r = sb.run(RunSpec(argv=("python3", "-c", "import time; time.sleep(5)"), limits=LIMITS))
    timer.join()
    assert time.monotonic() - t < HOST_BOUND_S
    assert not r.ok and r.error and FORGED in r.error and "replaced" in r.error, r.summary()
    nxt = run_model_module(innocent("AfterForgery"), "n.py", sandbox=sb, limits=LIMITS)
    assert nxt.ok and model_name(nxt) == "AfterForgery"
    assert sb._warm.proc.pid != guest


def test_stray_bytes_between_runs_replace_the_guest_before_the_next(private_warm):
    sb = private_warm
    assert run_model_module(innocent("Warmup"), "w.py", sandbox=sb, limits=LIMITS).ok
    guest = sb._warm.proc.pid
    _inject(sb, MARKER + b"f" * 64 + b' {"exit_code": 0}\n')
    time.sleep(0.05)
    t = time.monotonic()
    r = run_model_module(innocent("Next"), "n.py", sandbox=sb, limits=LIMITS)
    assert time.monotonic() - t < HOST_BOUND_S
    assert r.ok and model_name(r) == "Next", r.error
    assert sb._warm.proc.pid != guest


# --- the protocol itself: only this request's tagged answer is accepted ---


def test_read_answer_accepts_only_the_current_tag():
    nonce, other = new_nonce(), new_nonce()
    payload = b'{"x": 1}'
    good = MARKER + tag(nonce, payload).encode() + b" " + payload + b"\n"
    ans, rest = read_answer(good + b"tail", nonce, 1 << 20)
    assert ans.payload == payload and not ans.forged and rest == b"tail"
    for line, why in [
        (MARKER + tag(other, payload).encode() + b" " + payload + b"\n", "stale tag"),
        (MARKER + payload + b"\n", "untagged (old format)"),
        (b"noise" + good, "garbage before the answer"),
        (b"\n" + good, "an empty line before the answer"),
    ]:
        ans, _ = read_answer(line, nonce, 1 << 20)
        assert ans is not None and ans.forged and FORGED in ans.error, why
    assert read_answer(good[:-1], nonce, 1 << 20) == (None, good[:-1])  # incomplete: wait
    ans, _ = read_answer(b"x" * 2000, nonce, 1000)  # a line longer than any real answer
    assert ans.forged


G = Guarantees(backend="test", isolated=True, network="none", filesystem="", memory="",
               pids="", process_tree_killed=True)
OK_ANSWER = {"exit_code": 0, "signal": None, "timed_out": False, "limit_hit": None,
             "stdout": base64.b64encode(b"hi").decode(), "stderr": "",
             "stdout_truncated": False, "stderr_truncated": False, "files": {}}


def _with(**change) -> bytes:
    return json.dumps({**OK_ANSWER, **change}).encode()


@pytest.mark.parametrize("payload, what", [
    (_with(files=["a", "b"]), "'files'"),
    (_with(files={"r.json": 5}), "base64"),
    (_with(files={"r.json": "!!!notbase64"}), "base64"),
    (_with(exit_code="0"), "'exit_code'"),
    (_with(exit_code=True), "'exit_code'"),
    (_with(signal=[9]), "'signal'"),
    (_with(timed_out="no"), "'timed_out'"),
    (_with(limit_hit="everything"), "'limit_hit'"),
    (_with(stdout=None), "'stdout'"),
    (b"[1, 2, 3]", "must be an object"),
    (b"42", "must be an object"),
    (b"not json", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested"),
    (b'{"exit_code": 1' + b"0" * 400 + b"}", "digits"),
    (b'{"exit_code": 0, "exit_code": 1}', "twice"),
    (json.dumps({"guest_error": ["a", "list"]}).encode(), "guest:"),
])
def test_decode_answer_refuses_malformed_answers(payload, what):
    t = time.monotonic()
    r = decode_answer(payload, "test", G, 0.0)
    assert time.monotonic() - t < 1.0
    assert not r.ok and r.error and what in r.error, r.error


def test_decode_answer_reads_a_well_formed_answer():
    r = decode_answer(_with(files={"f": base64.b64encode(b"\x00\x01").decode()}), "t", G, 0.5)
    assert r.ok and r.stdout == "hi" and r.files == {"f": b"\x00\x01"} and r.wall_s == 0.5


KILL_WORKER = ("import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\n"
               "os.kill(1, signal.SIGKILL)  # the notary: pid 1, cannot be killed from inside\n"
               "time.sleep(2)\n")


@pytest.mark.parametrize("name", [
    "local_warm", pytest.param("container_warm", marks=pytest.mark.container)])
def test_code_that_kills_the_guest_fails_its_run_only(request, name):
    sb = request.getfixturevalue(name)
    assert run_model_module(innocent("Before"), "b.py", sandbox=sb, limits=LIMITS).ok
    t = time.monotonic()
    r = sb.run(RunSpec(argv=("python3", "-c", KILL_WORKER), limits=LIMITS))
    assert time.monotonic() - t < HOST_BOUND_S
    assert not r.ok and r.error and "worker ended" in r.error, r.summary()
    after = run_model_module(innocent("After"), "a.py", sandbox=sb, limits=LIMITS)
    assert after.ok and model_name(after) == "After", after.error
