"""Sanity checks that could fail: the metrics must separate right from wrong.

* The oracle (true structure, fitted on the training window) predicts a new experiment
  about as well as the truth itself: its error against one noisy realisation of the true
  counterfactual is within 1.25x of the noise floor (truth mean vs that realisation).
* A deliberately wrong structure, fitted the same way, scores worse than the oracle on
  the forecast and on the counterfactuals.
* The purely neural forecaster, even handed the true intervention as changed inputs,
  misses an intervention outside its training inputs (a 4x dose) by far more than the
  oracle.

Measured (tiny PK task, FAST budget, seeds 0/1/2): oracle cf_error_experiment
0.36/0.30/0.26 vs noise floor 0.33/0.29/0.25 (ratio <= 1.09); wrong vs oracle
forecast_nrmse_truth 0.31/0.25/0.32 vs 0.14/0.12/0.11 and cf_error 0.26/0.26/0.24 vs
0.09/0.15/0.08; neural cf error on the 4x dose 0.96/1.14/1.75 vs oracle 0.09/0.13/0.07.
The slow test repeats the checks on every simulated task of the shipped suite and
asserts them as suite-level claims (its docstring has the measurements and why the
per-task floor check cannot hold on partially observed tasks).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiny_tasks import FAST, pk_task

from evals.agents import Budget, make_agent
from evals.metrics import score

FLOOR_FACTOR = 1.25


@pytest.fixture(scope="module")
def pk():
    return pk_task()


@pytest.fixture(scope="module")
def scored(pk, tmp_path_factory):
    """Each agent's score on the tiny PK task, seed 0 (computed once per module)."""
    out = {}
    for name in ("oracle", "wrong", "neural"):
        outcome = make_agent(name).run(pk, 0, FAST, None, tmp_path_factory.mktemp(name))
        assert outcome.valid, (name, outcome.reason)
        out[name] = score(pk, 0, outcome)
    return out


def test_the_oracle_predicts_a_new_experiment_about_as_well_as_the_truth(scored):
    m = scored["oracle"]["metrics"]
    assert m["cf_error_experiment"] <= FLOOR_FACTOR * m["cf_noise_floor"], m


def test_the_wrong_structure_scores_worse_than_the_oracle(scored):
    oracle, wrong = scored["oracle"]["metrics"], scored["wrong"]["metrics"]
    assert wrong["forecast_nrmse_truth"] > oracle["forecast_nrmse_truth"]
    assert wrong["cf_error"] > oracle["cf_error"]
    assert wrong["cf_error_experiment"] > oracle["cf_error_experiment"]


def test_the_neural_baseline_misses_an_intervention_outside_its_training_inputs(scored):
    # counterfactual 0: an extra 1000 mg dose, 4x any dose in the training inputs
    neural = scored["neural"]["series"]["counterfactuals"][0]
    oracle = scored["oracle"]["series"]["counterfactuals"][0]
    assert neural["answered"] and neural["error"] > 3 * oracle["error"]
    # counterfactual 1 (halved clearance) has no input channel: no effect predicted
    assert scored["neural"]["metrics"]["cf_error"] > 3 * scored["oracle"]["metrics"]["cf_error"]


# ------------------------------------------------------------- the shipped suite (slow)
@pytest.mark.slow
def test_the_sanity_checks_hold_across_the_suite(tmp_path):
    """The three checks on every simulated task of the shipped suite (seed 0, default
    budget), asserted as suite-level claims with the per-task table in the message.

    Per task, the oracle is within 1.25x of the floor on only about half the tasks: on
    partially observed ones (epi-age-partial 2.7x, phys-ivgtt-partial 3.1x, the lung
    tumour 1.5-2x) the training window does not pin down the answer even for the true
    structure (its training likelihood is at least the truth's, also with 8 starts and 300
    steps). That is what partial observation does, so the strict per-task check is
    reported, not asserted; what must hold: the oracle's median ratio to the floor stays
    below 1.5 (measured 1.29, `mmw bench run` 2026-11-23), the wrong structure's
    counterfactuals are worse than the oracle's on all but at most two tasks and on the
    median (measured: all but phys-ivgtt-partial), and the neural baseline's are worse than
    the oracle's on every task (measured 16/16).
    """
    from evals.suite import all_tasks

    rows, ratios, wrong_not_worse, neural_not_worse = [], [], [], []
    wrong_cf, oracle_cf = [], []
    for task in all_tasks().values():
        if task.truth_model is None:
            continue
        m = {}
        for agent in ("oracle", "wrong", "neural"):
            if agent == "wrong" and task.wrong_model is None:
                continue
            outcome = make_agent(agent).run(task, 0, Budget(), None, tmp_path / agent)
            m[agent] = score(task, 0, outcome)["metrics"]
        oracle, neural, wrong = m["oracle"], m["neural"], m.get("wrong")
        ratio = (oracle["cf_error_experiment"] or math.inf) / oracle["cf_noise_floor"]
        ratios.append(ratio)
        rows.append(f"{task.name}: oracle/floor {ratio:.2f}, cf oracle "
                    f"{oracle['cf_error']} wrong {wrong and wrong['cf_error']} neural "
                    f"{neural['cf_error']}; forecast oracle {oracle['forecast_nrmse_truth']} "
                    f"wrong {wrong and wrong['forecast_nrmse_truth']}")
        if wrong is not None:
            wrong_cf.append(wrong["cf_error"] if wrong["cf_error"] is not None else math.inf)
            oracle_cf.append(oracle["cf_error"])
            if not _worse(wrong["cf_error"], oracle["cf_error"]):
                wrong_not_worse.append(task.name)
        if not _worse(neural["cf_error"], oracle["cf_error"]):
            neural_not_worse.append(task.name)
    table = "\n".join(rows)
    assert float(np.median(ratios)) <= 1.5, table
    assert len(wrong_not_worse) <= 2, f"wrong not worse on {wrong_not_worse}\n{table}"
    assert float(np.median(wrong_cf)) > float(np.median(oracle_cf)), table
    assert not neural_not_worse, f"neural not worse on {neural_not_worse}\n{table}"


def _worse(a: float | None, b: float | None) -> bool:
    """``a`` is worse than ``b`` (None for a: no answer, which counts as worse)."""
    return a is None or (b is not None and a > b)
