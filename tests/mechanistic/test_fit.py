"""Fitting recovers known parameters from synthetic data (independent truth: the
parameters the data were simulated and noised from), handles missing data and bad
columns, and a hybrid model learns a missing saturating term."""

from __future__ import annotations

import dataclasses
import json
import math
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from mechanistic import DataError, Fixed, LogNormalNoise, LogUniform, Model, Uniform, exp
from mechanistic.data import ObservedData
from mechanistic.fit import FitConfig, ParameterTransform, fit_model
from mechanistic.interventions import Dose, Scale
from mechanistic.observation import log_likelihood, sample_observations
from mechanistic.priors import HalfNormal, Normal
from mechanistic.simulate import RK4, compile_model

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"

LV_TRUE = {"alpha": 0.55, "beta": 0.028, "delta": 0.026, "gamma": 0.84, "sigma": 0.1}
SEIR_TRUE = {"beta": 0.6, "sigma": 0.25, "gamma": 0.2, "rho": 0.3, "phi": 20.0}
# Few Adam steps, more L-BFGS: on these smooth problems L-BFGS converges in far fewer
# simulations. Fits use a coarser RK4 step than the truth (simulated at dt 0.01), which
# keeps the tests fast and makes the fit absorb a discretisation difference too.
QUICK = FitConfig(starts=8, adam_steps=60, lbfgs_steps=60, seed=0)


def _load(name: str) -> Model:
    return runpy.run_path(str(MODELS / f"{name}.py"))["m"]


def _synthetic(model: Model, true: dict[str, float], t: np.ndarray, seed: int) -> ObservedData:
    sim = compile_model(model).simulate(true, t, solver=RK4(dt=0.01))
    y = sample_observations(model, sim, true, seed)[0]
    return ObservedData(t, {n: y[:, j] for j, n in enumerate(model.observable_names)})


def _rel_err(fit: dict[str, float], true: dict[str, float]) -> dict[str, float]:
    return {k: abs(fit[k] / v - 1) for k, v in true.items()}


@pytest.fixture(scope="module")
def lv_fit():
    m = _load("lotka_volterra")
    data = _synthetic(m, LV_TRUE, np.arange(0, 30.01, 0.5), seed=2)
    return m, data, fit_model(m, data, dataclasses.replace(QUICK, solver=RK4(dt=0.25)))


def test_lotka_volterra_recovers_all_four_rates(lv_fit) -> None:
    m, data, result = lv_fit
    err = _rel_err(result.params, {k: LV_TRUE[k] for k in ("alpha", "beta", "delta", "gamma")})
    assert max(err.values()) < 0.05, err  # measured: < 1% each
    assert abs(result.params["sigma"] / LV_TRUE["sigma"] - 1) < 0.25
    assert result.converged
    assert result.n_obs == 2 * len(data)
    assert result.k == 5 and result.k_neural == 0
    assert result.aic == pytest.approx(2 * 5 - 2 * result.log_likelihood)
    assert result.bic == pytest.approx(5 * math.log(result.n_obs) - 2 * result.log_likelihood)
    # well specified: standardised residuals look like N(0, 1) noise
    for name in m.observable_names:
        summary = result.train_residuals[name]
        assert abs(max(summary["largest"], key=lambda r: abs(r["z"]))["z"]) < 4.5
        assert summary["nrmse"] < 0.3


def test_fit_result_is_json_ready_and_simulates(lv_fit) -> None:
    m, data, result = lv_fit
    text = json.dumps(result.to_dict())
    back = json.loads(text)
    assert back["params"].keys() == set(m.param_names)
    assert "neural_state" not in back and back["solver"]["kind"] == "RK4"
    assert len(back["start_losses"]) == QUICK.starts
    sim = result.simulate(data.t)
    assert sim.observables.shape == (1, len(data), 2)
    # a counterfactual: halving predation from t = 10 changes nothing before, and leaves
    # more prey right after
    cf = result.simulate(data.t, interventions=[Scale("beta", 0.5, start=10.0)])
    before = data.t <= 10.0
    torch.testing.assert_close(cf.states[0, before], sim.states[0, before])
    assert float(cf.state("prey")[0, 22]) > float(sim.state("prey")[0, 22])


def test_seir_with_reporting_recovers_identifiable_quantities() -> None:
    """Reported cases alone pin down the early growth rate and the reporting fraction;
    beta, sigma, gamma separately (and with them R0) are only weakly identified: the same
    growth rate and peak arise from a ridge of combinations. With sigma known (a
    literature incubation period, as Fixed) beta and gamma are identified too."""
    m = _load("seir")
    t = np.arange(0.0, 101.0)
    data = _synthetic(m, SEIR_TRUE, t, seed=1)
    config = FitConfig(starts=4, adam_steps=40, lbfgs_steps=60, solver=RK4(dt=1.0))
    result = fit_model(m, data, config)
    p = result.params

    def growth(beta: float, sigma: float, gamma: float) -> float:
        # largest eigenvalue of the linearised E-I system at S ~ N
        return 0.5 * (-(sigma + gamma) + math.sqrt((sigma - gamma) ** 2 + 4 * sigma * beta))

    true_r = growth(SEIR_TRUE["beta"], SEIR_TRUE["sigma"], SEIR_TRUE["gamma"])
    # The fit is a maximum: at least as likely as the true parameters (seed 1: the truth
    # -595.7, the fit -591.8; the single-shooting fitter stopped at -594.8).
    truth = compile_model(m).simulate(SEIR_TRUE, t, solver=RK4(dt=1.0))
    data_matrix = np.stack([data.values[n] for n in m.observable_names], axis=1)
    truth_ll = float(log_likelihood(m, truth.observables, data_matrix, SEIR_TRUE)[0])
    assert result.log_likelihood >= truth_ll - 0.5
    # measured (seed 1): growth rate -0.5%, rho -5%. R0 itself is not pinned by these
    # 101 days: this draw's maximum sits at R0 = 4.5 (beta 0.57, sigma 0.18, gamma
    # 0.13), 3.9 log-likelihood units above the truth's R0 = 3, along the ridge of equal
    # growth; the single-shooting fitter's R0 within 8% was a stop short of that maximum.
    assert abs(growth(p["beta"], p["sigma"], p["gamma"]) / true_r - 1) < 0.05
    assert abs(p["rho"] / SEIR_TRUE["rho"] - 1) < 0.10
    assert 5 < p["phi"] < 80  # dispersion: right order of magnitude from 101 points


@pytest.mark.slow
def test_seir_with_known_incubation_recovers_beta_gamma_rho() -> None:
    m = runpy.run_path(str(MODELS / "seir.py"))["m"]
    m.params_["sigma"] = type(m.params_["sigma"])("sigma", Fixed(SEIR_TRUE["sigma"]))
    data = _synthetic(m, SEIR_TRUE, np.arange(0.0, 101.0), seed=1)
    result = fit_model(m, data, FitConfig(starts=4, adam_steps=40, lbfgs_steps=60,
                                          solver=RK4(dt=1.0)))
    err = _rel_err(result.params, {k: SEIR_TRUE[k] for k in ("beta", "gamma", "rho")})
    # measured: beta 5.2%, gamma 10.9%, rho 1.9% (RK4 at dt 1 against a dt 0.01 truth)
    assert max(err.values()) < 0.15, err
    assert result.params["sigma"] == SEIR_TRUE["sigma"]
    assert result.k == 4


def test_missing_cells_are_skipped() -> None:
    m = _load("lotka_volterra")
    t = np.arange(0, 20.01, 0.5)
    data = _synthetic(m, LV_TRUE, t, seed=5)
    rng = np.random.default_rng(0)
    values = {k: v.copy() for k, v in data.values.items()}
    for v in values.values():
        v[rng.random(v.size) < 0.3] = np.nan
    values["predator"][:10] = np.nan
    holed = ObservedData(t, values)
    n = int(sum((~np.isnan(v)).sum() for v in values.values()))
    cfg = FitConfig(starts=4, adam_steps=30, lbfgs_steps=40, solver=RK4(dt=0.25))
    result = fit_model(m, holed, cfg)
    assert result.n_obs == n
    assert math.isfinite(result.log_likelihood)
    assert result.train_residuals["predator"]["n"] == int((~np.isnan(values["predator"])).sum())
    err = _rel_err(result.params, {k: LV_TRUE[k] for k in ("alpha", "gamma")})
    assert max(err.values()) < 0.15, err


def test_unknown_data_column_raises_data_error() -> None:
    m = _load("lotka_volterra")
    data = ObservedData(np.arange(3.0), {"prey": np.ones(3), "wolves": np.ones(3)})
    with pytest.raises(DataError, match="wolves"):
        fit_model(m, data, FitConfig(starts=1, adam_steps=1, lbfgs_steps=0))


def test_all_missing_and_impossible_data_raise_data_error() -> None:
    m = _load("lotka_volterra")
    empty = ObservedData(np.arange(3.0), {"prey": np.full(3, np.nan)})
    with pytest.raises(DataError, match="no observed values"):
        fit_model(m, empty, FitConfig(starts=1, adam_steps=1))
    zero = ObservedData(np.arange(3.0), {"prey": np.array([1.0, 0.0, 2.0])})
    with pytest.raises(DataError, match="log-normal"):
        fit_model(m, zero, FitConfig(starts=1, adam_steps=1))


def test_config_is_validated() -> None:
    for bad in ({"starts": 0}, {"lr": -1.0}, {"adam_steps": -2}, {"solver": "rk4"},
                {"neural_weight_decay": float("nan")}):
        with pytest.raises(ValueError):
            FitConfig(**bad)
    with pytest.raises(AttributeError):
        FitConfig().starts = 3  # type: ignore[misc]


@pytest.mark.parametrize("prior", [Uniform(0.2, 3.0), LogUniform(1e-3, 10.0), HalfNormal(2.0),
                                   Normal(1.0, 0.5)])
def test_transforms_map_onto_the_support_and_invert(prior) -> None:
    tr = ParameterTransform.for_prior("p", prior)
    u = torch.linspace(-30, 30, 121, dtype=torch.float64)
    x = tr.forward(u).numpy()
    assert (x >= prior.support.lower).all() and (x <= prior.support.upper).all()
    values = prior.sample(np.random.default_rng(0), 50)
    back = tr.forward(torch.as_tensor(tr.inverse(values))).numpy()
    np.testing.assert_allclose(back, values, rtol=1e-6)


def test_a_diverging_start_does_not_poison_the_others() -> None:
    """dx/dt = k x^2 blows up within the window for k > 1/T: starts drawn there give
    non-finite losses, are re-drawn or frozen, and the fit still finds k."""
    m = Model("blow-up")
    x = m.state("x")
    k = m.param("k", LogUniform(0.01, 100.0))
    m.rate(x, k * x**2)
    m.init(x=1.0)
    m.observe("x_obs", x, noise=LogNormalNoise(0.05))
    t = np.linspace(0, 4, 21)
    data = _synthetic(m, {"k": 0.1}, t, seed=0)
    cfg = FitConfig(starts=8, adam_steps=80, lbfgs_steps=30, solver=RK4(dt=0.05), seed=3)
    result = fit_model(m, data, cfg)
    assert abs(result.params["k"] / 0.1 - 1) < 0.05
    assert sum(not math.isfinite(v) for v in result.start_losses) + result.resets > 0


# ------------------------------------------------------------------------- hybrid
DOSE_TIMES = (0.0, 24.0, 48.0, 72.0, 96.0)


def _michaelis_menten_data(seed: int = 0) -> ObservedData:
    """Repeated IV doses of 100, cleared by saturable elimination 4 C / (10 + C): scipy's
    solution between doses, 5% log-normal noise."""
    t = np.arange(0.5, 120.0, 2.0)
    c, y, start = 0.0, [], 0.0
    for i, dose in enumerate(DOSE_TIMES):
        end = DOSE_TIMES[i + 1] if i + 1 < len(DOSE_TIMES) else 120.0
        inside = t[(t >= dose) & (t < end)]
        sol = solve_ivp(lambda _t, z: [-4.0 * z[0] / (10.0 + z[0])], (start, end), [c + 100.0],
                        t_eval=np.concatenate([inside, [end]]), rtol=1e-10, atol=1e-10)
        y.extend(sol.y[0][:-1])
        c, start = sol.y[0][-1], end
    noisy = np.asarray(y) * np.exp(0.05 * np.random.default_rng(seed).standard_normal(t.size))
    return ObservedData(t, {"C": noisy})


def _linear_elimination(hybrid: bool) -> Model:
    """The misspecified mechanism: first-order elimination k C; the hybrid multiplies it by
    exp(g(C)), a learned function of the concentration."""
    m = Model("one compartment" + (", neural elimination" if hybrid else ", linear"))
    c = m.state("C")
    k = m.param("k", LogUniform(0.01, 10.0))
    s = m.param("s", LogUniform(0.01, 1.0))
    rate = k * c
    if hybrid:
        rate = rate * exp(m.neural("g", inputs=[c], hidden=(16, 16)))
    m.flow(c, None, rate, name="elimination")
    m.init(C=0.0)
    m.observe("C", c, noise=LogNormalNoise(s))
    return m


def test_hybrid_learns_missing_saturable_elimination() -> None:
    data = _michaelis_menten_data()
    doses = [Dose("C", 100.0, DOSE_TIMES)]
    config = FitConfig(starts=2, adam_steps=100, t0=0.0, neural_steps=150)
    linear = fit_model(_linear_elimination(False), data, config, train_until=72.0,
                       interventions=doses)
    hybrid = fit_model(_linear_elimination(True), data, config, train_until=72.0,
                       interventions=doses)
    assert hybrid.k_neural == (1 * 16 + 16) + (16 * 16 + 16) + (16 + 1)
    assert hybrid.log_likelihood > linear.log_likelihood + 20
    # Measured: 0.23 against 0.99; the validation window (t > 72) is never trained on.
    assert hybrid.validation_error < 0.5 * linear.validation_error, (
        hybrid.validation_error, linear.validation_error)
    # The learned elimination saturates: the effective rate constant k exp(g(C)) falls
    # with C, as 4 / (10 + C) does (the truth), which a linear model cannot express.
    net = hybrid.compiled.neural["g"]
    with torch.no_grad():
        low, high = (hybrid.params["k"] * torch.exp(net(torch.tensor([[v]], dtype=torch.float64)))
                     for v in (5.0, 80.0))
    assert float(low) > 2.0 * float(high)


HOLLING = {"r": 1.0, "K": 35.0, "a": 0.1, "h": 0.5, "e": 0.5, "m": 0.2}


def _holling_data(seed: int = 0) -> ObservedData:
    """Rosenzweig-MacArthur dynamics (logistic prey, Holling type II predation)."""
    p = HOLLING

    def f(t, z):
        x, y = z
        predation = p["a"] * x * y / (1 + p["a"] * p["h"] * x)
        return [p["r"] * x * (1 - x / p["K"]) - predation, p["e"] * predation - p["m"] * y]

    t = np.arange(0.0, 101.0)
    sol = solve_ivp(f, (0, 100), [20.0, 3.0], t_eval=t, rtol=1e-10, atol=1e-10)
    noisy = sol.y * np.exp(0.05 * np.random.default_rng(seed).standard_normal(sol.y.shape))
    return ObservedData(t, {"prey": noisy[0], "predator": noisy[1]})


def _predator_prey(hybrid: bool) -> Model:
    m = Model("predator-prey" + (", neural predation" if hybrid else ", mass action"))
    x, y = m.states("prey predator")
    r = m.param("r", LogUniform(0.1, 5.0))
    cap = m.param("K", LogUniform(5.0, 500.0))
    b = m.param("b", LogUniform(1e-3, 1.0), doc="predation rate per predator")
    e = m.param("e", Uniform(0.05, 1.0), doc="conversion efficiency")
    mort = m.param("mort", LogUniform(0.01, 2.0))
    s = m.param("s", LogUniform(0.01, 1.0))
    rate = b + m.neural("g", inputs=[x], hidden=(16,)) if hybrid else b
    predation = rate * x * y
    m.rate(x, r * x * (1 - x / cap) - predation)
    m.rate(y, e * predation - mort * y)
    m.init(prey=20.0, predator=3.0)
    m.observe("prey", x, noise=LogNormalNoise(s))
    m.observe("predator", y, noise=LogNormalNoise(s))
    return m


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason=(
    "not yet met: joint training starts from the mass-action skeleton fit (a damped "
    "focus, K at its prior's edge) and must cross to a limit cycle; measured validation "
    "NRMSE hybrid 0.70-0.82 vs mechanistic 0.59. Needs multi-start or curriculum for the "
    "hybrid phase."))
def test_hybrid_learns_the_missing_saturating_term() -> None:
    data = _holling_data()
    config = FitConfig(starts=8, adam_steps=60, lbfgs_steps=60, solver=RK4(dt=0.25),
                       neural_steps=300)
    mechanistic = fit_model(_predator_prey(False), data, config, train_until=60.0)
    torch.manual_seed(0)
    hybrid = fit_model(_predator_prey(True), data, config, train_until=60.0)
    assert hybrid.k_neural == 16 + 16 + 16 + 1
    assert hybrid.neural_state and "g.mlp.0.weight" in hybrid.neural_state
    assert hybrid.log_likelihood > mechanistic.log_likelihood
    assert hybrid.validation_error < 0.5 * mechanistic.validation_error, (
        hybrid.validation_error, mechanistic.validation_error)


def test_one_nrmse_rule_for_a_zero_scale_everywhere() -> None:
    """The fitter, the main job and the bench metrics agree: a flat reference matched
    exactly scores 0, missed at all scores inf (not NaN, not a division by one)."""
    import math

    from evals.metrics import nrmse
    from mechanistic.scores import normalised_rmse, series_scale
    from workbench.main_job import validation_errors

    flat = np.zeros(4)
    assert series_scale(flat) == 0.0 and series_scale(np.array([2.0, 2.0])) == 2.0
    assert normalised_rmse(0.0, 0.0) == 0.0 and normalised_rmse(1.0, 0.0) == math.inf
    assert nrmse(flat + 1.0, flat, 0.0) == math.inf and nrmse(flat, flat, 0.0) == 0.0
    t = np.arange(8.0)
    errors = validation_errors(t, {"y": np.zeros(8)}, {"y": np.ones(8)}, train_until=3.0)
    assert errors["y"]["nrmse"] == math.inf
