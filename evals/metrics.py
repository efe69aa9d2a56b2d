"""Scores of one agent on one task and seed, and the series to plot them.

Every error is normalised so tasks on different scales average fairly, and every metric
is None where it does not apply (a real-data task has no truth; an invalid agent has no
forecast), never a made-up number. What each metric answers:

* ``forecast_skill`` - RMSE on the test window against the observed data divided by the
  RMSE of naive persistence (the last observed value at or before ``validate_until``
  carried forward); below 1 beats persistence. Columns are pooled after scaling each by
  its spread (:func:`forecast_skill`).
* ``forecast_nrmse_truth`` - RMSE against the noise-free truth on the test window over the
  truth's standard deviation: forecast error with the observation noise removed.
* ``param_error`` - median relative error of the comparable parameters (roles the agent's
  structure shares with ``task.recover``); None if it shares none.
* ``cf_error`` - NRMSE of each counterfactual against the noise-free true counterfactual
  on ``t >= scored_from``, normalised by the true counterfactual's standard deviation;
  mean over counterfactuals and columns.

Scales are standard deviations of the noise-free series over **all** observation times,
not just the scored window: a window where the truth has settled (glucose back at its
baseline after a tolerance test) has almost no spread and turned a miss of a fraction of
a percent into an NRMSE of 10^5 (measured on phys-ivgtt-full). Errors stay comparable
within a task, and the scored window still decides what is compared.
* ``cf_error_experiment`` / ``cf_noise_floor`` - the same error against one seeded noisy
  realisation of the true counterfactual (what a real follow-up experiment would show),
  for the agent and for the truth's own mean: the floor no model can beat, so an agent
  near the floor is as good as the experiment can tell.
* ``cf_effect_error`` - relative error of the intervention's effect, the window total of
  (no intervention minus intervention); mean over counterfactuals and columns where the
  true effect is not zero.

A prediction that is not finite (a diverged simulation) makes its metric None rather than
infinity: JSON has no infinity, and the aggregate treats None as "no number".

``series["counterfactuals"][i]`` carries, besides the spec's question/from/truth/agent
(the trajectory that was scored), ``answered`` (False: the agent gave no translation) and
``error`` (this question's cf_error), so reports can show each question on its own.

A question the agent could not translate (its counterfactual is None) is scored as its
unintervened forecast: predicting no effect. Declining to answer is then never free,
and it is what the neural baseline does where it has no input for the intervention.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from evals.agents import AgentOutcome
from mechanistic.scores import normalised_rmse

if TYPE_CHECKING:
    from evals.task import BenchTask

__all__ = ["METRIC_KEYS", "forecast_skill", "nrmse", "param_error", "persistence", "rmse", "score"]

METRIC_KEYS = ("valid", "valid_rate", "repairs", "llm_calls", "tokens", "wall_s",
               "forecast_skill", "forecast_nrmse_truth", "param_error", "cf_error",
               "cf_error_experiment", "cf_noise_floor", "cf_effect_error")

_CF_NOISE_STREAM = 1_000   # keeps the cf experiment's noise apart from the observations'


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values; None if any is missing or non-finite (a diverged prediction is
    not averaged away)."""
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return float(np.mean(values))


def rmse(pred: np.ndarray, ref: np.ndarray) -> float:
    """RMSE over rows where the reference is finite; inf if the prediction is not."""
    ok = np.isfinite(ref)
    if not ok.any():
        return math.nan
    diff = np.asarray(pred, dtype=float)[ok] - ref[ok]
    if not np.isfinite(diff).all():
        return math.inf
    return float(np.sqrt(np.mean(diff ** 2)))


def nrmse(pred: np.ndarray, ref: np.ndarray, scale: float) -> float:
    """RMSE divided by ``scale``, by the one rule for a zero scale
    (:func:`mechanistic.scores.normalised_rmse`)."""
    return normalised_rmse(rmse(pred, ref), scale)


def persistence(times: np.ndarray, observed: np.ndarray, until: float) -> np.ndarray:
    """The naive forecast: the last finite observation at or before ``until``, carried
    forward (NaN before it, where nothing is forecast)."""
    out = np.full(len(times), np.nan)
    seen = np.flatnonzero((times <= until) & np.isfinite(observed))
    if seen.size:
        out[times > until] = observed[seen[-1]]
    return out


def _std(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.std(finite)) if finite.size else 0.0


# ------------------------------------------------------------------------------ score
def score(task: BenchTask, seed: int, outcome: AgentOutcome) -> dict[str, Any]:
    """``{"metrics": {...}, "series": {...}}`` for ``outcome`` on ``task`` and ``seed``."""
    times = np.asarray(task.times, dtype=float)
    data = task.observations(seed)
    observed = {c: np.asarray(data.values[c], dtype=float) for c in task.observed}
    test = task.test_mask()
    has_truth = task.truth_model is not None
    truth = task.truth_mean(times) if has_truth else {}
    forecast = outcome.forecast

    metrics: dict[str, Any] = {
        "valid": outcome.valid,
        "valid_rate": (outcome.valid_nodes / outcome.nodes) if outcome.nodes else None,
        "repairs": outcome.repairs, "llm_calls": outcome.llm_calls, "tokens": outcome.tokens,
        "wall_s": round(float(outcome.wall_s), 3),
        "forecast_skill": None, "forecast_nrmse_truth": None, "param_error": None,
        "cf_error": None, "cf_error_experiment": None, "cf_noise_floor": None,
        "cf_effect_error": None,
    }
    if forecast is not None and test.any():
        metrics["forecast_skill"] = forecast_skill(times, observed, forecast, test,
                                                   task.validate_until)
        if has_truth:
            metrics["forecast_nrmse_truth"] = _finite(_mean([
                nrmse(forecast[c][test], truth[c][test], _std(truth[c]))
                for c in task.observed]))
    if has_truth and outcome.params:
        metrics["param_error"] = param_error(task, outcome.params)

    cf_series: list[dict[str, Any]] = []
    if has_truth and task.counterfactuals:
        cf = _counterfactual_scores(task, seed, outcome, times, truth, cf_series)
        metrics.update(cf)
    for key in METRIC_KEYS:
        value = metrics[key]
        if isinstance(value, float):
            metrics[key] = _finite(value)

    series = {
        "t": _list(times),
        "observed": {c: _list(v) for c, v in observed.items()},
        "truth": {c: _list(v) for c, v in truth.items()},
        "forecast": {c: _list(v) for c, v in (forecast or {}).items()},
        "counterfactuals": cf_series,
        "windows": {"train_until": task.train_until, "validate_until": task.validate_until},
    }
    return {"metrics": metrics, "series": series}


def forecast_skill(times: np.ndarray, observed: Mapping[str, np.ndarray],
                   forecast: Mapping[str, np.ndarray], test: np.ndarray,
                   until: float) -> float | None:
    """Test-window RMSE over naive persistence's, columns pooled after scaling each by the
    spread of its observed series: sqrt(sum_c MSE_c / s_c^2) / sqrt(sum_c naive_c / s_c^2).

    Pooled rather than a mean of per-column ratios: a column that has settled in the test
    window (a drug washed out between courses) makes persistence almost exact, and its
    ratio alone reached 500 (onc-lung-chemoradio-full) and swamped every average. With one
    column this is exactly RMSE / RMSE(persistence). None if nothing can be scored.
    """
    agent_sum, naive_sum = 0.0, 0.0
    for c, values in observed.items():
        naive = persistence(times, values, until)
        scale = _std(values) or 1.0
        agent_mse = rmse(forecast[c][test], values[test]) ** 2
        naive_mse = rmse(naive[test], values[test]) ** 2
        if not math.isfinite(naive_mse):
            continue                      # nothing observed in this column's test window
        if not math.isfinite(agent_mse):
            return None                   # a diverged forecast is not averaged away
        agent_sum += agent_mse / scale ** 2
        naive_sum += naive_mse / scale ** 2
    if naive_sum <= 0:
        return None
    return _finite(math.sqrt(agent_sum / naive_sum))


def param_error(task: BenchTask, params: Mapping[str, float]) -> float | None:
    """Median relative error over the roles both the agent and ``task.recover`` name."""
    errors = []
    for role, estimate in params.items():
        name = task.recover.get(role)
        if name is None or name not in task.truth_params:
            continue
        true = task.truth_params[name]
        if true == 0 or estimate is None or not math.isfinite(estimate):
            continue
        errors.append(abs(estimate - true) / abs(true))
    return float(np.median(errors)) if errors else None


def _counterfactual_scores(task: BenchTask, seed: int, outcome: AgentOutcome,
                           times: np.ndarray, truth: Mapping[str, np.ndarray],
                           cf_series: list[dict[str, Any]]) -> dict[str, float | None]:
    errors, experiment, floor, effects = [], [], [], []
    for i, cf in enumerate(task.counterfactuals):
        window = times >= cf.scored_from
        true_cf = task.truth_mean(times, cf.interventions)
        rng = np.random.default_rng(np.random.SeedSequence(
            [task.noise_seed, int(seed), _CF_NOISE_STREAM + i]))
        noisy = task.sample_noisy(true_cf, rng)
        answer = outcome.counterfactuals[i] if i < len(outcome.counterfactuals) else None
        agent_cf = answer if answer is not None else outcome.forecast
        mine: list[float] = []
        for c in task.observed:
            ref = true_cf[c][window]
            scale = _std(true_cf[c])
            floor.append(nrmse(ref, noisy[c][window], scale))
            if agent_cf is None or outcome.forecast is None:
                continue
            pred = np.asarray(agent_cf[c], dtype=float)[window]
            mine.append(nrmse(pred, ref, scale))
            errors.append(mine[-1])
            experiment.append(nrmse(pred, noisy[c][window], scale))
            true_effect = float(np.sum(truth[c][window] - ref))
            with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: a diverged fit
                agent_effect = float(np.sum(np.asarray(outcome.forecast[c])[window] - pred))
            if abs(true_effect) > 1e-9 * max(float(np.sum(np.abs(ref))), 1e-300):
                effects.append(abs(agent_effect - true_effect) / abs(true_effect))
        cf_series.append({
            "question": cf.question, "from": cf.scored_from,
            "truth": {c: _list(v) for c, v in true_cf.items()},
            "agent": {c: _list(np.asarray(v, dtype=float))
                      for c, v in (agent_cf or {}).items()},
            "answered": answer is not None,
            "error": _finite(_mean(mine)),
        })
    have_agent = outcome.forecast is not None
    return {
        "cf_error": _mean(errors) if have_agent else None,
        "cf_error_experiment": _mean(experiment) if have_agent else None,
        "cf_noise_floor": _mean(floor),
        "cf_effect_error": (float(np.mean(effects)) if effects and all(
            math.isfinite(e) for e in effects) else None) if have_agent else None,
    }


def _list(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=float)]
