"""Sanity checks that could fail: the metrics must separate right from wrong.

* The oracle (true structure, fitted on the training window) predicts a new experiment
  about as well as the truth itself: its error against one noisy realisation of the true
  counterfactual is within 1.25x of the noise floor (truth mean vs that realisation).
* A deliberately wrong structure, fitted the same way, scores worse than the oracle on
  the forecast and on the counterfactuals.
* The purely neural forecaster, even handed the true intervention as changed inputs,
  misses an intervention outside its training inputs (a 4x dose) by far more than the
  oracle.

Measured (tiny PK task, FAST budget, seeds 0/1/2; see the report of issue 6): oracle
cf_error_experiment 0.43/0.39/0.34 vs noise floor 0.40/0.36/0.32 (ratio <= 1.08); wrong vs
oracle forecast_nrmse_truth 0.35/0.27/0.35 vs 0.16/0.14/0.13, cf_error 0.32/0.32/0.29 vs
0.10/0.19/0.10; neural cf error on the 4x dose 0.91/1.09/1.66 vs oracle 0.09/0.13/0.07.
The slow tests repeat the checks on every task of the shipped suite.
"""

from __future__ import annotations

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
def _suite_tasks() -> list:
    from evals.suite import all_tasks

    return [t for t in all_tasks().values() if t.truth_model is not None]


@pytest.mark.slow
@pytest.mark.parametrize("task", _suite_tasks(), ids=lambda t: t.name)
def test_suite_oracle_wrong_and_neural(task, tmp_path):
    budget = Budget()
    oracle = score(task, 0, make_agent("oracle").run(task, 0, budget, None, tmp_path))["metrics"]
    assert oracle["valid"]
    assert oracle["cf_error_experiment"] <= FLOOR_FACTOR * oracle["cf_noise_floor"], oracle
    neural = score(task, 0, make_agent("neural").run(task, 0, budget, None, tmp_path))
    assert neural["metrics"]["cf_error"] > oracle["cf_error"], (neural["metrics"], oracle)
    if task.wrong_model is not None:
        wrong = score(task, 0, make_agent("wrong").run(task, 0, budget, None, tmp_path))
        w = wrong["metrics"]
        assert w["valid"], task.name
        assert w["forecast_nrmse_truth"] > oracle["forecast_nrmse_truth"], (w, oracle)
        if w["cf_error"] is not None:
            assert w["cf_error"] > oracle["cf_error"], (w, oracle)
