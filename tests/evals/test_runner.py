"""The local process executor and the runner: parallel jobs, timeouts that kill the whole
process tree, crashes and exceptions recorded as rows, resume by result file.

The job functions here are top-level (the spawned workers import this module by name) and
use a stand-in budget, so a worker starts without importing torch or the agents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evals.executor import Job, LocalProcessExecutor, failure_result, kill_tree
from evals.runner import job_timeout, read_results, run_benchmark, run_job, write_result


@dataclass(frozen=True)
class FakeBudget:
    max_seconds: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"max_seconds": self.max_seconds}


def _job(out: Path, task: str, agent: str = "fake", seed: int = 0) -> Job:
    return Job(task=task, agent=agent, seed=seed, budget=FakeBudget(), out=str(out))


def _ok(job: Job, **extra: Any) -> dict[str, Any]:
    return {**job.describe(), "status": "ok", "reason": "", "wall_s": 0.0,
            "metrics": {"valid": True, "forecast_skill": 0.5}, "series": None,
            "outcome": None, **extra}


def work(job: Job) -> dict[str, Any]:
    """Behaviour chosen by the task name."""
    marks = Path(job.out) / "marks"
    marks.mkdir(exist_ok=True)
    if job.task.startswith("meet"):  # both meet-* jobs must run at the same time
        (marks / job.task).write_text(str(os.getpid()))
        other = marks / ("meet-b" if job.task == "meet-a" else "meet-a")
        deadline = time.monotonic() + 60
        while not other.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the other job never started: jobs are not parallel")
            time.sleep(0.05)
        return _ok(job, pid=os.getpid())
    if job.task == "hang":  # starts a grandchild in a session of its own, then hangs
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                 start_new_session=True)
        (marks / "grandchild").write_text(str(child.pid))
        time.sleep(120)
    if job.task == "boom":
        raise RuntimeError("the agent fell over")
    if job.task == "crash":
        os._exit(3)
    return _ok(job)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_jobs_run_in_parallel_and_a_hung_job_is_killed_with_its_tree(tmp_path: Path) -> None:
    jobs = [_job(tmp_path, "meet-a"), _job(tmp_path, "hang"), _job(tmp_path, "meet-b")]
    limits = {"meet-a": 60.0, "meet-b": 60.0, "hang": 4.0}
    started = time.monotonic()
    got = list(LocalProcessExecutor(workers=3).run(work, jobs, lambda j: limits[j.task]))
    results = {job.task: result for job, result in got}
    assert time.monotonic() - started < 40
    assert sorted(results) == ["hang", "meet-a", "meet-b"]
    assert results["meet-a"]["status"] == results["meet-b"]["status"] == "ok"
    assert results["meet-a"]["pid"] != results["meet-b"]["pid"] != os.getpid()
    assert results["hang"]["status"] == "timeout"
    assert "killed after" in results["hang"]["reason"]
    assert results["hang"]["metrics"] == {"valid": False}
    assert got[-1][0].task == "hang"  # yielded as they finish
    grandchild = int((tmp_path / "marks" / "grandchild").read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild), "the hung job's own-session grandchild survived"


def test_raising_and_crashing_jobs_are_errors_and_others_finish(tmp_path: Path) -> None:
    jobs = [_job(tmp_path, t) for t in ("boom", "fine", "crash")]
    results = {j.task: r for j, r in LocalProcessExecutor(workers=2).run(
        work, jobs, lambda j: 60.0)}
    assert results["fine"]["status"] == "ok"
    assert results["boom"]["status"] == "error"
    assert results["boom"]["reason"] == "RuntimeError: the agent fell over"
    assert "Traceback" in results["boom"]["detail"]
    assert results["crash"]["status"] == "error"
    assert "exited with status 3" in results["crash"]["reason"]


def test_kill_tree_reaches_processes_in_other_sessions() -> None:
    script = ("import subprocess, sys, time; "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
              "start_new_session=True); print(p.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    grandchild = int(parent.stdout.readline())
    kill_tree(parent.pid)
    parent.wait(5)
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


class InProcess:
    """An executor running jobs in this process, counting the calls (for resume tests)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def run(self, fn: Callable[[Job], dict[str, Any]], jobs: Sequence[Job],
            timeout_s: Callable[[Job], float]) -> Iterator[tuple[Job, dict[str, Any]]]:
        for job in jobs:
            assert timeout_s(job) > 0
            self.calls.append(job.key)
            yield job, fn(job)


def _fake(job: Job) -> dict[str, Any]:
    if job.task == "bad":
        return failure_result(job, "error", "broken", 0.1)
    return _ok(job)


def test_resume_reruns_nothing_that_finished(tmp_path: Path) -> None:
    jobs = [_job(tmp_path, t, a, s) for t in ("t1", "bad") for a in ("x", "y")
            for s in (0, 1)]
    seen: list[tuple[int, int, str]] = []
    first = InProcess()
    res = run_benchmark(jobs, first, tmp_path, lambda d, n, j, r: seen.append((d, n, j.key)),
                        fn=_fake, manifest={"budget": {"max_seconds": 1.0}, "agents": ["x"]})
    assert len(first.calls) == 8 and len(res.ran) == 8 and res.reused == ()
    assert seen[-1][:2] == (8, 8)
    assert res.counts() == {"ok": 4, "invalid": 0, "error": 4, "timeout": 0}
    assert len(read_results(tmp_path)) == 8

    # a truncated result file (killed mid-write elsewhere) is run again; the rest is reused
    (tmp_path / "results" / "t1__x__s1.json").write_text('{"status": "o')
    again = InProcess()
    res = run_benchmark(jobs, again, tmp_path, fn=_fake)
    assert again.calls == ["t1__x__s1"]
    assert len(res.reused) == 7 and len(res.results) == 8

    retry = InProcess()
    run_benchmark(jobs, retry, tmp_path, fn=_fake, retry_failed=True)
    assert sorted(retry.calls) == sorted(j.key for j in jobs if j.task == "bad")
    assert not InProcess().calls
    none = InProcess()
    run_benchmark(jobs, none, tmp_path, fn=_fake)
    assert none.calls == []


def test_manifest_merges_and_refuses_another_budget(tmp_path: Path) -> None:
    jobs = [_job(tmp_path, "t1")]
    run_benchmark(jobs, InProcess(), tmp_path, fn=_fake,
                  manifest={"budget": {"max_seconds": 1.0}, "agents": ["x"], "seeds": [0],
                            "tasks": {"t1": {"domain": "d"}}})
    run_benchmark(jobs, InProcess(), tmp_path, fn=_fake,
                  manifest={"budget": {"max_seconds": 1.0}, "agents": ["y"], "seeds": [1],
                            "tasks": {"t2": {"domain": "e"}}})
    manifest = json.loads((tmp_path / "bench.json").read_text())
    assert manifest["agents"] == ["x", "y"] and manifest["seeds"] == [0, 1]
    assert sorted(manifest["tasks"]) == ["t1", "t2"]
    with pytest.raises(ValueError, match="budget"):
        run_benchmark(jobs, InProcess(), tmp_path, fn=_fake,
                      manifest={"budget": {"max_seconds": 2.0}})


def test_job_is_validated_and_keyed(tmp_path: Path) -> None:
    job = _job(tmp_path, "epi-seir", "oracle", 3)
    assert job.key == "epi-seir__oracle__s3"
    assert job_timeout(job) == pytest.approx(1.0 * 1.5 + 120)
    for bad in ({"task": "../x"}, {"seed": -1}, {"agent": ""}, {"seed": True}):
        with pytest.raises(ValueError, match="Job"):
            Job(**{"task": "t", "agent": "a", "seed": 0, "budget": FakeBudget(),
                   "out": str(tmp_path), **bad})


def test_run_job_turns_a_missing_task_into_an_error_row(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    job = Job(task="nothing", agent="oracle", seed=0, budget=FakeBudget(),
              out=str(tmp_path / "out"), tasks_dir=str(tasks))
    result = run_job(job)
    assert result["status"] == "error" and "nothing" in result["reason"]
    stored = json.loads((tmp_path / "out" / "results" / f"{job.key}.json").read_text())
    assert stored == result


def test_write_result_is_strict_json(tmp_path: Path) -> None:
    import numpy as np

    job = _job(tmp_path, "t1")
    path = write_result(tmp_path, _ok(job, extra=np.array([1.0, np.nan, np.inf])))
    assert json.loads(path.read_text())["extra"] == [1.0, None, None]


def test_plan_skips_pairs_that_do_not_apply(tmp_path: Path) -> None:
    from evals.agents import Budget
    from evals.runner import plan
    from evals.suite import select

    tasks = select("eco-hare-lynx-real,epi-seir-town-partial")
    jobs = plan(tasks, ["oracle", "neural"], 2, Budget(max_seconds=5), tmp_path)
    keys = [j.key for j in jobs]
    assert "eco-hare-lynx-real__oracle__s0" not in keys  # no truth model to be oracle of
    assert len(keys) == len(set(keys)) == 6
    assert keys == sorted(keys, key=lambda k: (k.split("__")[0], ["oracle", "neural"].index(
        k.split("__")[1]), k))
    assert plan(tasks, ["neural"], [7], Budget(), tmp_path)[0].seed == 7
    with pytest.raises(ValueError, match="unknown agent"):
        plan(tasks, ["orcale"], 1, Budget(), tmp_path)
