"""Fits in worker processes: the same search as in-process, and a dead worker is a node.

The truth here is the sequential search itself: with workers, the nodes, their fits and
the trajectory must be the ones the in-process order gives (apart from timings).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import replace

import numpy as np
import pytest
from decay_models import decay_model_json, decay_task

from agent.evaluate import FitFailure, FitJob, run_fit_job
from agent.fitpool import FitPool, _read_result, job_from_json, job_to_json
from agent.loop import Search, SearchConfig
from agent.proposers import ProposerSettings, make_proposer
from mechanistic.fit import FitConfig, FitResult
from mechanistic.interventions import ControlSchedule
from mechanistic.serialize import model_from_json

_TIMINGS = {"wall_time", "wall_seconds", "run", "llm_seconds"}


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _TIMINGS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _search(workers: int, sandbox) -> tuple[list[dict], list[dict]]:
    events: list[dict] = []
    config = SearchConfig(initial=3, max_nodes=5, refinements=2, seed=3, workers=workers,
                          fit=FitConfig(starts=3, adam_steps=40, lbfgs_steps=10,
                                        polish_starts=1))
    result = Search(decay_task(), make_proposer("offline", ProposerSettings(seed=3)), config,
                    sandbox=sandbox, log=events.append).run()
    nodes = [{**n.to_dict(), "fit": n.fit} for n in result.nodes]
    return _strip(nodes), _strip(events)


def test_parallel_search_is_the_sequential_search(sandbox) -> None:
    sequential = _search(0, sandbox)
    parallel = _search(2, sandbox)
    assert len(sequential[0]) == 5
    assert parallel[0] == sequential[0]
    assert parallel[1] == sequential[1]
    assert any(n["status"] == "ok" for n in parallel[0])


def _job(**config) -> FitJob:
    task = decay_task()
    data, _ = task.data.split(25.0)
    return FitJob(model_from_json(decay_model_json()), data, 20.0, {},
                  FitConfig(**{"starts": 3, "adam_steps": 40, "lbfgs_steps": 10, **config}))


def test_a_job_survives_the_trip_as_data() -> None:
    job = replace(_job(), controls={"u": ControlSchedule((-math.inf, 3.0), (0.5, 1.0))})
    job_id, folder, back = job_from_json(job_to_json(job, 7, os.path.abspath("x")))
    assert (job_id, folder.name) == (7, "x")
    assert back.model == job.model and back.config == job.config
    assert back.train_until == job.train_until and back.controls == job.controls
    np.testing.assert_array_equal(back.data.t, job.data.t)
    np.testing.assert_array_equal(back.data.values["x"], job.data.values["x"])


def test_worker_fit_equals_the_in_process_fit() -> None:
    job = _job()
    here = run_fit_job(job)
    with FitPool(1) as pool:
        there = pool.result(pool.submit(job))
    assert isinstance(here, FitResult) and isinstance(there, FitResult)
    assert there.params == here.params
    assert there.log_likelihood == here.log_likelihood
    assert _strip(there.to_dict()) == _strip(here.to_dict())
    # the rebuilt result simulates like the original
    t = np.linspace(0.0, 30.0, 7)
    np.testing.assert_array_equal(there.simulate(t).observables.numpy(),
                                  here.simulate(t).observables.numpy())


def test_a_worker_killed_mid_fit_is_a_failed_fit_and_the_pool_goes_on() -> None:
    slow = _job(adam_steps=20000, lbfgs_steps=0, patience=20000, strategy="single")
    with FitPool(1) as pool:
        ticket = pool.submit(slow)
        deadline = time.monotonic() + 60
        while not pool.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.0)  # the worker is importing or fitting: either way, mid-job
        os.kill(pool.pids()[0], signal.SIGKILL)
        outcome = pool.result(ticket)
        assert isinstance(outcome, FitFailure) and outcome.type == "FitWorkerDied"
        assert "signal 9" in outcome.message
        after = pool.result(pool.submit(_job()))
    assert isinstance(after, FitResult) and math.isfinite(after.log_likelihood)


@pytest.mark.parametrize("body", [
    "not json", json.dumps({"ok": True, "fit": {"params": {}}}), json.dumps([1, 2]),
    json.dumps({"ok": False, "type": "X" * 10_000, "message": "m"}),
])
def test_an_unusable_worker_result_is_a_failed_fit(tmp_path, body: str) -> None:
    (tmp_path / "result.json").write_text(body)
    outcome = _read_result(tmp_path, _job())
    assert isinstance(outcome, FitFailure)
    assert len(outcome.type) <= 200
