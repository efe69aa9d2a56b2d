"""The Ray executor keeps the local executor's contract on a real (local, 2-CPU) Ray cluster.

One cluster serves the whole module (starting Ray costs seconds). Job functions live in
``ray_jobs.py`` next to this file, put on the workers' PYTHONPATH by the fixture.
"""

from __future__ import annotations

import json
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
    return {k: (r["status"], r["metrics"]) for k, r in results.items()}


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="workers"):
        RayExecutor(workers=0)
    with pytest.raises(ValueError, match="num_cpus"):
        RayExecutor(num_cpus=0)
    with pytest.raises(ValueError, match="max_retries"):
        RayExecutor(max_retries=-1)


def test_same_results_from_local_and_ray(ray_cluster, tmp_path) -> None:
    from ray_jobs import seeded

    local = run_benchmark(_jobs(tmp_path / "local"), LocalProcessExecutor(workers=2),
                          tmp_path / "local", fn=seeded, timeout=lambda j: 60)
    remote = run_benchmark(_jobs(tmp_path / "ray"), RayExecutor(isolate=False),
                           tmp_path / "ray", fn=seeded, timeout=lambda j: 60)
    assert len(remote.results) == 8 and remote.counts()["ok"] == 8
    assert _scores(local.results) == _scores(remote.results)
    stored = json.loads((tmp_path / "ray" / "results" / "alpha__oracle__s1.json").read_text())
    assert stored["metrics"] == local.results["alpha__oracle__s1"]["metrics"]


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
