"""The Ray executor keeps the local executor's contract on a real (local, 2-CPU) Ray cluster.

One cluster serves the whole module (starting Ray costs seconds). Job functions live in
``ray_jobs.py`` next to this file, put on the workers' PYTHONPATH by the fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evals.executor import Job, LocalProcessExecutor
from evals.executor_ray import RayExecutor
from evals.runner import run_benchmark

pytestmark = pytest.mark.ray

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray  # a dev dependency: missing ray fails here rather than skipping
    path = os.pathsep.join([str(ROOT), str(HERE)])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


class _Budget:
    """What a Job needs of a budget here: a time limit."""

    max_seconds = 5.0

    def to_dict(self) -> dict:
        return {"max_seconds": self.max_seconds}


def _jobs(out: Path, n_seeds: int = 2) -> list[Job]:
    return [Job(task=t, agent=a, seed=s, budget=_Budget(), out=str(out))
            for t in ("alpha", "beta-task") for a in ("oracle", "neural")
            for s in range(n_seeds)]


def _scores(results: dict) -> dict:
    """Status and metrics of each job, timings left out (they differ run to run)."""
    return {k: (r["status"], {m: v for m, v in r["metrics"].items() if "wall" not in m})
            for k, r in results.items()}


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="workers"):
        RayExecutor(workers=0)
    with pytest.raises(ValueError, match="num_cpus"):
        RayExecutor(num_cpus=0)
    with pytest.raises(ValueError, match="max_retries"):
        RayExecutor(max_retries=-1)


def _bench(out: Path, executor) -> tuple[str, dict]:
    """Oracle and neural agents on a tiny test task (loaded from JSON by each worker), a
    budget that is not time-bound so scores cannot depend on worker speed."""
    from tiny_tasks import FAST, decay_task

    from evals.agents import Budget
    from evals.leaderboard import write_leaderboard
    from evals.runner import make_manifest, plan
    from evals.suite import all_tasks

    tasks_dir = out.parent / "tasks"
    tasks_dir.mkdir(exist_ok=True)
    task = decay_task()
    (tasks_dir / f"{task.name}.json").write_text(task.to_json())
    tasks = list(all_tasks(tasks_dir).values())
    budget = Budget(max_seconds=300, max_nodes=1, fit=FAST.fit)
    agents = ["oracle", "neural"]
    jobs = plan(tasks, agents, 1, budget, out, tasks_dir=tasks_dir)
    manifest = make_manifest(tasks, agents, [0], budget)
    result = run_benchmark(jobs, executor, out, manifest=manifest)
    files = write_leaderboard(out, manifest)
    return files["leaderboard"].read_text(), result.results


def test_same_leaderboard_from_local_and_ray(ray_cluster, tmp_path) -> None:
    local_board, local = _bench(tmp_path / "local", LocalProcessExecutor(workers=2, threads=1))
    ray_board, remote = _bench(tmp_path / "ray", RayExecutor(num_cpus=1))
    assert len(remote) == 2 and {r["status"] for r in remote.values()} == {"ok"}
    assert ray_board == local_board
    assert _scores(remote) == _scores(local)  # unrounded metrics too: same seeds, same numbers


@pytest.mark.parametrize("isolate", [True, False])
def test_killed_worker_is_retried_and_finished_results_kept(ray_cluster, tmp_path,
                                                            isolate) -> None:
    from ray_jobs import crash_once, seeded

    out = tmp_path / "run"
    jobs = _jobs(out, n_seeds=1)
    first = run_benchmark(jobs[:2], RayExecutor(isolate=isolate), out, fn=seeded,
                          timeout=lambda j: 60)
    before = {k: (out / "results" / f"{k}.json").read_text() for k in first.results}
    # The rest: every job kills its Ray worker once, then succeeds on the retry.
    result = run_benchmark(jobs, RayExecutor(isolate=isolate, max_retries=2), out,
                           fn=crash_once, timeout=lambda j: 60)
    assert set(result.reused) == set(first.results)
    assert set(result.ran) == {j.key for j in jobs[2:]}
    assert result.counts() == {"ok": 4, "invalid": 0, "error": 0, "timeout": 0}
    for job in jobs[2:]:
        assert (out / f"crashed-{job.key}").exists()  # it really died once
        assert _scores({0: result.results[job.key]}) == _scores({0: seeded(job)})
    for key, text in before.items():  # finished results untouched
        assert (out / "results" / f"{key}.json").read_text() == text


def test_worker_lost_beyond_retries_is_an_error_row(ray_cluster, tmp_path) -> None:
    from ray_jobs import crash_once

    job = _jobs(tmp_path, n_seeds=1)[0]
    [(_, result)] = list(RayExecutor(isolate=False, max_retries=0).run(
        crash_once, [job], lambda j: 60))
    assert result["status"] == "error" and "Ray worker lost" in result["reason"]


def test_timeout_and_raising_job_are_rows_not_exceptions(ray_cluster, tmp_path) -> None:
    from ray_jobs import raises, sleepy

    job = _jobs(tmp_path, n_seeds=1)[0]
    [(_, isolated)] = list(RayExecutor(start_grace_s=30).run(sleepy, [job], lambda j: 2))
    assert isolated["status"] == "timeout" and "killed after" in isolated["reason"]
    [(_, backstop)] = list(RayExecutor(isolate=False, start_grace_s=0.5).run(
        sleepy, [job], lambda j: 1))
    assert backstop["status"] == "timeout" and "cancelled" in backstop["reason"]
    [(_, error)] = list(RayExecutor(isolate=False).run(raises, [job], lambda j: 60))
    assert error["status"] == "error" and "bad job" in error["reason"]


def test_stopping_early_kills_the_isolated_jobs_still_running(ray_cluster, tmp_path) -> None:
    import time

    from ray_jobs import oracle_fast

    fast, slow = _jobs(tmp_path, n_seeds=1)[:2]  # alpha: oracle, then neural
    runs = RayExecutor(workers=2).run(oracle_fast, [fast, slow], lambda j: 60)
    first, _ = next(runs)
    assert first == fast
    pid_file = tmp_path / f"pid-{slow.key}"
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    runs.close()  # what a consumer that fails, or Ctrl-C, does to the generator
    pid = int(pid_file.read_text())
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.2)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())
