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
The slow test repeats the checks on every simulated task of the shipped suite. Measured
on the suite as of 2026-11-23 00:20 UTC (seed 0, default budget): the neural
counterfactuals are worse than the oracle's on 16/16 tasks; the oracle is within 1.25x of
the floor on 7/16 (off: epi-seir-delay-full 2.10, -partial 1.39, epi-age-full 3.41,
-partial 7.59, onc-lung-chemoradio-full 1.51, -partial 2.02, eco-foodchain-partial 1.31,
pk-saturable-partial 1.53, phys-ivgtt-partial 3.05); the wrong structure is not worse
on epi-age-full (forecast), epi-age-partial (both) and phys-ivgtt-partial (cf). On
epi-seir-delay-full and pk-saturable-partial the oracle's training log-likelihood is at
least the truth's, also with 8 starts and 300 Adam steps: the training window does not
identify the answer, the fit budget is not the cause. So the slow test fails until those
tasks (or the criterion) change; that is the finding it exists to report.
"""

from __future__ import annotations

import math

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
def test_the_sanity_checks_hold_on_every_suite_task(tmp_path):
    """The three checks above on every simulated task of the shipped suite (seed 0, the
    default budget), all tasks run before failing so the message is the whole table.
    The suite is built here, not at collection, so the default run never pays for it."""
    from evals.suite import all_tasks

    failures, rows = [], []
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
        rows.append(f"{task.name}: oracle/floor {ratio:.2f}, cf oracle "
                    f"{oracle['cf_error']} wrong {wrong and wrong['cf_error']} neural "
                    f"{neural['cf_error']}; forecast oracle {oracle['forecast_nrmse_truth']} "
                    f"wrong {wrong and wrong['forecast_nrmse_truth']}")
        if not ratio <= FLOOR_FACTOR:
            failures.append(f"{task.name}: oracle {ratio:.2f}x the noise floor")
        if wrong is not None and not (
                _worse(wrong["forecast_nrmse_truth"], oracle["forecast_nrmse_truth"])
                and _worse(wrong["cf_error"], oracle["cf_error"])):
            failures.append(f"{task.name}: the wrong structure is not worse than the oracle")
        if not _worse(neural["cf_error"], oracle["cf_error"]):
            failures.append(f"{task.name}: neural counterfactuals not worse than the oracle")
    assert not failures, "\n".join(failures + ["", *rows])


def _worse(a: float | None, b: float | None) -> bool:
    """``a`` is worse than ``b`` (None for a: no answer, which counts as worse)."""
    return a is None or (b is not None and a > b)
