"""Spec validation, result helpers and the supervisor's pure parts (no sandbox needed)."""

from __future__ import annotations

import dataclasses
import os
import signal

import pytest

from sandbox import supervise
from sandbox.spec import Guarantees, LimitHit, Limits, RunResult, RunSpec, failed_result


def test_limits_validate():
    with pytest.raises(ValueError):
        Limits(wall_s=0)
    with pytest.raises(ValueError):
        Limits(memory_bytes=1024)
    with pytest.raises(ValueError):
        Limits(pids=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().wall_s = 3  # type: ignore[misc]


@pytest.mark.parametrize("path", ["/etc/passwd", "../x.py", "a/../../x", ""])
def test_runspec_rejects_paths_outside_workdir(path):
    with pytest.raises(ValueError):
        RunSpec(argv=("python3",), files={path: b"x"})


def test_runspec_freezes_and_encodes():
    spec = RunSpec(argv=["python3", "m.py"], files={"m.py": "print(1)"}, env={"A": "1"})
    assert spec.argv == ("python3", "m.py") and spec.files["m.py"] == b"print(1)"
    with pytest.raises(TypeError):
        spec.files["x"] = b""  # type: ignore[index]
    with pytest.raises(ValueError):
        RunSpec(argv=("python3",), env={"BAD NAME": "1"})
    with pytest.raises(ValueError):
        RunSpec(argv=())


def test_failed_result_is_data():
    g = Guarantees("x", True, "none", "-", "-", "-", True)
    r = failed_result("x", g, "no engine")
    assert not r.ok and "no engine" in r.summary() and r.to_dict()["error"] == "no engine"
    assert isinstance(r, RunResult)


@pytest.mark.parametrize(("kw", "expected"), [
    ({"returncode": -signal.SIGXCPU}, LimitHit.CPU),
    ({"returncode": -signal.SIGXFSZ}, LimitHit.FILE_SIZE),
    ({"returncode": 1, "stderr_tail": b"Traceback...\nMemoryError\n"}, LimitHit.MEMORY),
    ({"returncode": 1, "stderr_tail": b"OSError: [Errno 27] File too large"}, LimitHit.FILE_SIZE),
    ({"returncode": 1, "stderr_tail": b"BlockingIOError: [Errno 11] Resource temporarily "
                                      b"unavailable"}, LimitHit.PIDS),
    ({"returncode": 1, "stderr_tail": b"NameError: x"}, None),
    ({"returncode": 0}, None),
    ({"returncode": -9, "timed_out": True}, LimitHit.WALL),
    ({"returncode": -9, "output_capped": True}, LimitHit.OUTPUT),
])
def test_classify(kw, expected):
    args = {"timed_out": False, "output_capped": False, "stderr_tail": b"", **kw}
    got = supervise.classify(**args)
    assert (LimitHit(got) if got else None) is expected


def test_collect_files_never_follows_symlinks(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "out" / "a.txt").write_text("fine")
    os.symlink(secret, work / "out" / "leak.txt")
    os.symlink(tmp_path, work / "out" / "dirlink")
    got = supervise.collect_files(str(work), ["out/*", "out/dirlink/*"], 1 << 20)
    assert got == {"out/a.txt": b"fine"}


def test_collect_files_respects_budget(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "b").write_bytes(b"y" * 10)
    assert len(supervise.collect_files(str(tmp_path), ["*"], 15)) == 1
