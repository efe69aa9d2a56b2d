"""Metrics against numbers computed by hand: a perfect answer scores 0, persistence scores
skill 1, an offset scores offset/std, half the true effect scores effect error 0.5."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tiny_tasks import decay_task, pk_task

from evals.agents import AgentOutcome, failed
from evals.metrics import METRIC_KEYS, persistence, score
from evals.task import BenchTask


def outcome(task: BenchTask, forecast, cfs=None, params=None, **kw) -> AgentOutcome:
    n = len(task.counterfactuals)
    cfs = tuple(cfs) if cfs is not None else (None,) * n
    return AgentOutcome(agent=kw.get("agent", "test"), valid=True, reason="", structure="s",
                        nodes=kw.get("nodes", 4), valid_nodes=kw.get("valid_nodes", 3),
                        repairs=1, llm_calls=2, tokens=30, wall_s=1.5, forecast=forecast,
                        counterfactuals=cfs, interventions=([],) * n, params=params or {})


def truth_cfs(task: BenchTask) -> list[dict[str, np.ndarray]]:
    return [task.truth_mean(task.times, cf.interventions) for cf in task.counterfactuals]


@pytest.fixture(scope="module")
def pk() -> BenchTask:
    return pk_task()


def test_a_perfect_answer_scores_zero_and_sits_on_the_noise_floor(pk):
    result = score(pk, 0, outcome(pk, pk.truth_mean(pk.times), truth_cfs(pk)))
    m = result["metrics"]
    assert set(m) == set(METRIC_KEYS)
    assert m["forecast_nrmse_truth"] == 0.0
    assert m["cf_error"] == 0.0
    assert m["cf_effect_error"] == 0.0
    assert m["cf_error_experiment"] == pytest.approx(m["cf_noise_floor"])
    assert 0.05 < m["cf_noise_floor"] < 2.0   # 10% log-normal noise on a spread series
    assert m["valid"] is True and m["valid_rate"] == 0.75
    assert (m["repairs"], m["llm_calls"], m["tokens"], m["wall_s"]) == (1, 2, 30, 1.5)
    json.dumps(result, allow_nan=False)   # NaN observations (below LOQ) became null
    assert result["series"]["observed"]["conc"][0] is None


def test_persistence_scores_skill_one_and_an_offset_scores_offset_over_std(pk):
    obs = pk.observations(0).values["conc"]
    naive = persistence(pk.times, obs, pk.validate_until)
    test = pk.test_mask()
    forecast = pk.truth_mean(pk.times)["conc"].copy()
    forecast[test] = naive[test]
    assert score(pk, 0, outcome(pk, {"conc": forecast}))["metrics"]["forecast_skill"] == \
        pytest.approx(1.0)

    truth = pk.truth_mean(pk.times)["conc"]
    shifted = truth + 0.25
    m = score(pk, 0, outcome(pk, {"conc": shifted}))["metrics"]
    assert m["forecast_nrmse_truth"] == pytest.approx(0.25 / np.std(truth))
    rmse = np.sqrt(np.mean((shifted[test] - obs[test]) ** 2))
    base = np.sqrt(np.mean((naive[test] - obs[test]) ** 2))
    assert m["forecast_skill"] == pytest.approx(rmse / base)


def test_persistence_carries_the_last_finite_value():
    t = np.arange(6.0)
    y = np.array([1.0, 2.0, 3.0, np.nan, 9.0, 9.0])
    out = persistence(t, y, 3.0)
    assert np.isnan(out[:4]).all() and (out[4:] == 3.0).all()


def test_param_error_is_the_median_relative_error_over_shared_roles(pk):
    params = {"absorption_rate": 0.6 * 1.1, "elimination_rate": 0.12 * 0.8,
              "volume": 40.0 * 1.5, "not_a_role": 123.0}
    m = score(pk, 0, outcome(pk, pk.truth_mean(pk.times), params=params))["metrics"]
    assert m["param_error"] == pytest.approx(0.2)   # median of 0.1, 0.2, 0.5


def test_half_the_true_effect_scores_effect_error_one_half(pk):
    truth = pk.truth_mean(pk.times)
    half = [{"conc": truth["conc"] + 0.5 * (cf["conc"] - truth["conc"])} for cf in truth_cfs(pk)]
    m = score(pk, 0, outcome(pk, truth, half))["metrics"]
    assert m["cf_effect_error"] == pytest.approx(0.5)
    # the trajectory error by hand, for the first question
    cf = pk.counterfactuals[0]
    window = pk.times >= cf.scored_from
    true_cf = truth_cfs(pk)[0]["conc"]
    by_hand = np.sqrt(np.mean((half[0]["conc"][window] - true_cf[window]) ** 2)) \
        / np.std(true_cf)
    series = score(pk, 0, outcome(pk, truth, half))["series"]["counterfactuals"]
    assert series[0]["error"] == pytest.approx(by_hand)
    assert series[0]["answered"] is True and series[0]["from"] == cf.scored_from


def test_an_unanswered_question_counts_as_predicting_no_effect(pk):
    truth = pk.truth_mean(pk.times)
    m = score(pk, 0, outcome(pk, truth, [None, None]))["metrics"]
    assert m["cf_effect_error"] == pytest.approx(1.0)
    assert m["cf_error"] > 0.1
    series = score(pk, 0, outcome(pk, truth, [None, None]))["series"]
    assert series["counterfactuals"][0]["answered"] is False


def test_an_invalid_agent_has_no_forecast_metrics_but_the_task_still_has_a_floor(pk):
    import time

    result = score(pk, 0, failed("library", pk, "no valid simulator", time.perf_counter()))
    m = result["metrics"]
    assert m["valid"] is False and m["valid_rate"] is None
    for key in ("forecast_skill", "forecast_nrmse_truth", "param_error", "cf_error",
                "cf_error_experiment", "cf_effect_error"):
        assert m[key] is None, key
    assert m["cf_noise_floor"] is not None
    json.dumps(result, allow_nan=False)


def test_a_diverged_forecast_is_none_not_infinity(pk):
    bad = pk.truth_mean(pk.times)["conc"].copy()
    bad[-1] = np.inf
    m = score(pk, 0, outcome(pk, {"conc": bad}))["metrics"]
    assert m["forecast_skill"] is None and m["forecast_nrmse_truth"] is None


def test_the_experiment_noise_is_seeded_and_differs_from_the_observations():
    task = decay_task()
    perfect = outcome(task, task.truth_mean(task.times), truth_cfs(task))
    a = score(task, 0, perfect)["metrics"]
    assert a == score(task, 0, perfect)["metrics"]
    assert a["cf_noise_floor"] != score(task, 1, perfect)["metrics"]["cf_noise_floor"]


def test_real_data_tasks_score_the_forecast_against_the_data_only():
    from mechanistic.data import load_csv

    data = load_csv(Path(__file__).resolve().parents[2] / "examples/data/hare_lynx.csv")
    task = BenchTask(
        name="hare-lynx-test", domain="ecology", difficulty="hard", tags=(), variant="real",
        description="Hudson's Bay Company pelt records of snowshoe hares and lynx, yearly.",
        time_unit="year", times=data.t, train_until=float(data.t[60]),
        validate_until=float(data.t[75]), observed=("Hare", "Lynx"), hidden=(),
        truth_model=None, truth_params={}, conditions=(), counterfactuals=(), recover={},
        wrong_model=None, noise_seed=0, data_path="examples/data/hare_lynx.csv")
    forecast = {c: persistence(task.times, data.values[c], task.validate_until)
                for c in task.observed}
    result = score(task, 0, outcome(task, forecast))
    m = result["metrics"]
    assert m["forecast_skill"] == pytest.approx(1.0)
    for key in ("forecast_nrmse_truth", "param_error", "cf_error", "cf_noise_floor"):
        assert m[key] is None
    assert result["series"]["truth"] == {} and result["series"]["counterfactuals"] == []
    assert math.isclose(result["series"]["windows"]["validate_until"], task.validate_until)


def test_forecast_skill_pools_columns_so_a_settled_column_cannot_swamp_it():
    """Two columns: one where persistence is nearly exact (a washed-out drug), one that
    moves. Hand-computed: scaled MSEs summed, then the ratio of square roots."""
    from evals.metrics import forecast_skill

    times = np.arange(6.0)
    test = times > 2.0
    moving = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    settled = np.array([1.0, 0.5, 0.0, 0.0, 0.0, 0.0])
    observed = {"moving": moving, "settled": settled}
    forecast = {"moving": moving + 1.0, "settled": np.full(6, 0.1)}
    s_m, s_s = np.std(moving), np.std(settled)
    agent = 1.0 / s_m ** 2 + 0.01 / s_s ** 2
    naive = np.mean((moving[test] - 2.0) ** 2) / s_m ** 2 + 0.0
    assert forecast_skill(times, observed, forecast, test, 2.0) == pytest.approx(
        np.sqrt(agent / naive))
    # the per-column ratio of the settled column alone would be infinite
    assert np.isfinite(forecast_skill(times, observed, forecast, test, 2.0))
    # one column: exactly RMSE over persistence's RMSE
    one = forecast_skill(times, {"moving": moving}, {"moving": moving + 1.0}, test, 2.0)
    assert one == pytest.approx(1.0 / np.sqrt(np.mean((moving[test] - 2.0) ** 2)))
