"""Multiple shooting and the batched Newton polish, against independent truths.

* Segments started on the single-shooting trajectory's own states take the same RK4 steps,
  so their likelihood is the single-shooting likelihood and every gap is zero (to
  rounding), with a known input switching inside a segment too.
* The Newton polish finds the known minimum of Rosenbrock's function and of a quadratic.
* A fit by the shooting strategy reaches the likelihood of the true parameters, and the
  single strategy is the fitter as it was.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mechanistic import Gaussian, LogUniform, Model
from mechanistic.data import ObservedData
from mechanistic.fit import FitConfig, ParameterTransform, _Objective, fit_model
from mechanistic.interventions import ControlSchedule
from mechanistic.newton import newton_polish
from mechanistic.observation import log_likelihood, sample_observations
from mechanistic.shooting import ShootingObjective, plan_segments, state_scales
from mechanistic.simulate import RK4, compile_model


def _chemostat() -> Model:
    """Monod growth on a substrate fed at a known, switching dilution rate D."""
    m = Model("chemostat")
    s, x = m.states("S X")
    mu = m.param("mu", LogUniform(0.1, 3.0))
    k = m.param("K", LogUniform(0.05, 5.0))
    y = m.param("Y", LogUniform(0.1, 1.0))
    d = m.control("D", 0.2)
    growth = mu * s / (k + s) * x
    m.rate(s, d * (2.0 - s) - growth / y)
    m.rate(x, growth - d * x)
    m.init(S=1.5, X=0.1)
    m.observe("S_obs", s, noise=Gaussian(0.02))
    m.observe("X_obs", x, noise=Gaussian(0.02))
    return m


TRUE = {"mu": 0.9, "K": 0.4, "Y": 0.5}
SCHEDULE = {"D": ControlSchedule((0.0, 12.3), (0.2, 0.45))}  # switches between samples


def _data(m: Model, seed: int = 3) -> ObservedData:
    t = np.arange(0.0, 30.5, 0.5)
    sim = compile_model(m).simulate(TRUE, t, solver=RK4(dt=0.01), controls=SCHEDULE)
    y = sample_observations(m, sim, TRUE, seed)[0]
    return ObservedData(t, {n: y[:, j] for j, n in enumerate(m.observable_names)})


def test_segments_on_the_trajectory_reproduce_the_single_shooting_likelihood() -> None:
    m = _chemostat()
    data = _data(m)
    compiled = compile_model(m)
    free = m.free_param_names
    transforms = [ParameterTransform.for_prior(n, m.params_[n].prior) for n in free]
    y = np.stack([data.values[n] for n in m.observable_names], axis=1)
    solver = RK4(dt=0.125)
    single = _Objective(m, compiled, transforms, data.t, y, solver, 0.0, (), SCHEDULE)
    plan = plan_segments(m, data.t, 0.0, solver.dt, SCHEDULE, max_segments=6, min_intervals=3)
    assert plan is not None and plan.segments == 6
    u = torch.as_tensor(np.array([[float(tr.inverse(np.array(TRUE[tr.name])))
                                   for tr in transforms]]), dtype=torch.float64)
    with torch.no_grad():
        sim = single.simulate(u)
        expected = float(single(u)[0])
    states = sim.states.numpy()
    scale, positive = state_scales(states)
    assert positive.all()
    shooting = ShootingObjective(m, compiled, single.params, len(transforms), plan, data.t,
                                 y, SCHEDULE, scale, positive)
    starts = states[:, plan.start_rows[1:], :]
    row = np.concatenate([u.numpy(), shooting.encode_states(starts)], axis=1)
    with torch.no_grad():
        got = float(shooting(torch.as_tensor(row))[0])
    # same steps from the same states: the gaps vanish and the likelihoods agree
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-7)
    # and the single-shooting likelihood is the observation model's at the truth
    truth = compiled.simulate(TRUE, data.t, solver=solver, controls=SCHEDULE)
    assert expected == pytest.approx(-float(log_likelihood(m, truth.observables, y, TRUE)[0]),
                                     rel=1e-9)


def test_segment_starts_off_the_trajectory_pay_for_their_gaps() -> None:
    m = _chemostat()
    data = _data(m)
    compiled = compile_model(m)
    transforms = [ParameterTransform.for_prior(n, m.params_[n].prior) for n in m.free_param_names]
    y = np.stack([data.values[n] for n in m.observable_names], axis=1)
    single = _Objective(m, compiled, transforms, data.t, y, RK4(dt=0.125), 0.0, (), SCHEDULE)
    plan = plan_segments(m, data.t, 0.0, 0.125, SCHEDULE, max_segments=6, min_intervals=3)
    u = torch.as_tensor([[float(tr.inverse(np.array(TRUE[tr.name]))) for tr in transforms]],
                        dtype=torch.float64)
    with torch.no_grad():
        states = single.simulate(u).states.numpy()
    scale, positive = state_scales(states)
    shooting = ShootingObjective(m, compiled, single.params, len(transforms), plan, data.t,
                                 y, SCHEDULE, scale, positive)
    starts = states[:, plan.start_rows[1:], :]
    moved = starts * 1.1  # every segment starts 10% high
    rows = np.concatenate([np.repeat(u.numpy(), 2, 0),
                           shooting.encode_states(np.concatenate([starts, moved]))], axis=1)
    with torch.no_grad():
        on, off = shooting(torch.as_tensor(rows)).numpy()
    assert off > on + 10.0


def test_newton_polish_finds_known_minima() -> None:
    def rosenbrock(x: np.ndarray) -> np.ndarray:
        return (1 - x[:, 0]) ** 2 + 100 * (x[:, 1] - x[:, 0] ** 2) ** 2

    start = np.array([[-1.2, 1.0], [0.5, 0.5]])
    u, f, steps = newton_polish(rosenbrock, start, rosenbrock(start), steps=200, tol=1e-14)
    np.testing.assert_allclose(u, np.ones((2, 2)), atol=1e-4)
    assert (f < 1e-8).all() and steps > 1

    a = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
    b = np.array([1.0, -2.0, 0.5])

    def quadratic(x: np.ndarray) -> np.ndarray:
        return 0.5 * np.einsum("ni,ij,nj->n", x, a, x) - x @ b

    x0 = np.zeros((1, 3))
    u, _, steps = newton_polish(quadratic, x0, quadratic(x0), steps=10)
    np.testing.assert_allclose(u[0], np.linalg.solve(a, b), atol=1e-6)
    assert steps <= 3  # one undamped Newton step is exact on a quadratic


def test_newton_polish_never_makes_a_point_worse_and_stops_on_non_finite_probes() -> None:
    def cliff(x: np.ndarray) -> np.ndarray:
        out = (x[:, 0] - 2.0) ** 2
        return np.where(x[:, 0] > 0.5, np.nan, out)

    x0 = np.array([[0.5 - 1e-4]])
    _, f, _ = newton_polish(cliff, x0, cliff(x0), steps=20)
    assert f[0] <= cliff(x0)[0] and np.isfinite(f[0])


@pytest.mark.parametrize("strategy", ["shooting", "single"])
def test_fit_reaches_the_truths_likelihood_with_a_switching_input(strategy: str) -> None:
    m = _chemostat()
    data = _data(m, seed=5)
    config = FitConfig(starts=4, adam_steps=120, lbfgs_steps=30, polish_starts=2,
                       strategy=strategy)
    result = fit_model(m, data, config, controls=SCHEDULE)
    solver = RK4(**{k: v for k, v in result.solver.items() if k not in ("kind",)})
    truth = compile_model(m).simulate(TRUE, data.t, solver=solver, controls=SCHEDULE)
    y = np.stack([data.values[n] for n in m.observable_names], axis=1)
    truth_ll = float(log_likelihood(m, truth.observables, y, TRUE)[0])
    assert result.log_likelihood >= truth_ll - 1.0
    for name, value in TRUE.items():
        assert math.isclose(result.params[name], value, rel_tol=0.1), (name, result.params)


def test_single_strategy_is_the_fitter_without_segments() -> None:
    """Short series have no room for segments: both strategies give the same fit."""
    m = _chemostat()
    data = _data(m)
    short = ObservedData(data.t[:6], {n: v[:6] for n, v in data.values.items()})
    a = fit_model(m, short, FitConfig(starts=2, adam_steps=20, lbfgs_steps=5),
                  controls=SCHEDULE)
    b = fit_model(m, short, FitConfig(starts=2, adam_steps=20, lbfgs_steps=5,
                                      strategy="single"), controls=SCHEDULE)
    assert a.params == b.params and a.log_likelihood == b.log_likelihood
