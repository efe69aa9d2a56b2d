"""The compiled simulator against an independent truth: scipy's solve_ivp at tight
tolerances (and closed forms), for RK4 and Dopri5, doses, interventions and controls."""

from __future__ import annotations

import itertools
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from mechanistic import Fixed, LogUniform, Model
from mechanistic.interventions import ControlSchedule, Dose, Scale, SetValue, Transfer
from mechanistic.simulate import RK4, Dopri5, Status, compile_model

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"
SOLVERS = {"rk4": RK4(dt=0.02), "dopri5": Dopri5(rtol=1e-10, atol=1e-10)}
REL = 1e-4


def _load(name: str) -> Model:
    return runpy.run_path(str(MODELS / f"{name}.py"))["m"]


def _reference(rhs, y0, breaks, t_eval, jumps=None) -> np.ndarray:
    """solve_ivp (rtol 1e-10) piecewise between ``breaks``, applying ``jumps[t]`` (a state
    increment) at a break, recording the state at every ``t_eval`` (after a jump there)."""
    y = np.asarray(y0, dtype=float)
    out = {}
    t_eval = np.asarray(t_eval, dtype=float)
    points = sorted({*breaks, *t_eval})
    for a, b in itertools.pairwise(points):
        if jumps and a in jumps:
            y = y + jumps[a]
        if a in set(t_eval.tolist()):
            out[a] = y.copy()
        sol = solve_ivp(rhs, (a, b), y, method="DOP853", rtol=1e-12, atol=1e-12,
                        args=(0.5 * (a + b),))
        y = sol.y[:, -1]
    last = points[-1]
    if jumps and last in jumps:
        y = y + jumps[last]
    out[last] = y
    return np.stack([out[t] for t in t_eval])


def _assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """Relative error 1e-4, with an absolute floor of 1e-4 x the state's own scale (a
    state that starts at zero has no meaningful relative error there)."""
    scale = np.abs(want).max(axis=0, keepdims=True)
    err = np.abs(got - want)
    ok = err <= REL * np.abs(want) + 1e-6 * scale
    worst = np.unravel_index(np.argmax(err / (np.abs(want) + 1e-6 * scale)), err.shape)
    assert ok.all(), (f"relative error {err[worst] / abs(want[worst]):.3g} at index {worst}: "
                      f"got {got[worst]!r}, want {want[worst]!r}")


SEIR_P = {"beta": 0.6, "sigma": 0.25, "gamma": 0.2, "rho": 0.3, "phi": 20.0}


def _seir_rhs(p, u=lambda mid: 0.0):
    def f(t, y, mid):
        s, e, i, r = y
        n = s + e + i + r
        inf = (1 - u(mid)) * p["beta"] * s * i / n
        return [-inf, inf - p["sigma"] * e, p["sigma"] * e - p["gamma"] * i, p["gamma"] * i]
    return f


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_seir_matches_solve_ivp(solver: str) -> None:
    m = _load("seir")
    t = np.linspace(0, 120, 61)
    sim = compile_model(m).simulate(SEIR_P, t, solver=SOLVERS[solver])
    want = _reference(_seir_rhs(SEIR_P), [1e6 - 10, 0, 10, 0], [0, 120], t)
    _assert_close(sim.states[0].numpy(), want)
    cases = SEIR_P["rho"] * SEIR_P["sigma"] * want[:, 1]
    np.testing.assert_allclose(sim.observable("cases")[0].numpy(), cases, rtol=REL,
                               atol=1e-6 * cases.max())


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_lotka_volterra_matches_solve_ivp(solver: str) -> None:
    m = _load("lotka_volterra")
    p = {"alpha": 0.55, "beta": 0.028, "delta": 0.026, "gamma": 0.84, "sigma": 0.1}
    t = np.linspace(0, 40, 81)

    def f(t, y, mid):
        x, z = y
        return [p["alpha"] * x - p["beta"] * x * z, p["delta"] * x * z - p["gamma"] * z]

    # a batch of three parameter sets, each checked against its own reference
    batch = {k: torch.tensor([v, v * 1.1, v * 0.9]) for k, v in p.items()}
    sim = compile_model(m).simulate(batch, t, solver=SOLVERS[solver])
    for b in range(3):
        pb = {k: float(v[b]) for k, v in batch.items()}

        def fb(t, y, mid, pb=pb):
            x, z = y
            return [pb["alpha"] * x - pb["beta"] * x * z, pb["delta"] * x * z - pb["gamma"] * z]

        _assert_close(sim.states[b].numpy(), _reference(fb, [30, 4], [0, 40], t))
    assert (sim.status == Status.OK).all()


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_two_compartment_pk_with_repeated_doses(solver: str) -> None:
    m = _load("two_compartment_pk")
    p = {"ka": 1.2, "CL": 5.0, "V1": 20.0, "Q": 3.0, "V2": 50.0, "a": 0.01, "b": 0.1}
    dose_times = [0.0, 12.0, 24.0, 36.0]
    doses = [Dose("gut", 100.0, tuple(dose_times)), Dose("central", 50.0, (30.0,))]
    t = np.linspace(0, 60, 121)  # includes every dose time: outputs are after the dose

    def f(t, y, mid):
        g, c, q = y
        return [-p["ka"] * g,
                p["ka"] * g - (p["CL"] + p["Q"]) / p["V1"] * c + p["Q"] / p["V2"] * q,
                p["Q"] / p["V1"] * c - p["Q"] / p["V2"] * q]

    jumps = {tt: np.array([100.0, 0, 0]) for tt in dose_times}
    jumps[30.0] = np.array([0, 50.0, 0])
    want = _reference(f, [0, 0, 0], [0, 12, 24, 30, 36, 60], t, jumps)
    sim = compile_model(m).simulate(p, t, solver=SOLVERS[solver], interventions=doses)
    _assert_close(sim.states[0].numpy(), want)
    np.testing.assert_allclose(sim.observable("conc")[0].numpy(), want[:, 1] / p["V1"],
                               rtol=REL, atol=1e-6 * want[:, 1].max() / p["V1"])


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_diverging_sample_is_reported_and_the_rest_stay_exact(solver: str) -> None:
    # dx/dt = k x^2, x(0) = 1 blows up at t = 1/k; closed form x = 1 / (1 - k t).
    m = Model("blow-up")
    x = m.state("x")
    k = m.param("k", LogUniform(0.01, 10))
    m.rate(x, k * x**2)
    m.init(x=1.0)
    ks = torch.tensor([0.1, 2.0, 0.3, float("nan")], dtype=torch.float64)
    t = np.linspace(0, 2, 21)
    sim = compile_model(m).simulate({"k": ks}, t, solver=SOLVERS[solver])
    assert int(sim.status[1]) != Status.OK and int(sim.status[3]) != Status.OK
    assert int(sim.status[0]) == Status.OK and int(sim.status[2]) == Status.OK
    for b in (0, 2):
        exact = 1 / (1 - float(ks[b]) * t)
        np.testing.assert_allclose(sim.states[b, :, 0].numpy(), exact, rtol=REL)
    # outputs of the failed sample are NaN after its failure, not garbage
    assert torch.isnan(sim.states[1, -1]).all()


def test_gradient_matches_finite_difference() -> None:
    m = _load("seir")
    c = compile_model(m)
    t = np.array([0.0, 30.0, 60.0])
    solver = RK4(dt=0.25)

    def infected_at_60(beta: torch.Tensor) -> torch.Tensor:
        return c.simulate({**SEIR_P, "beta": beta}, t, solver=solver).state("I")[0, -1]

    beta = torch.tensor([0.6], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(infected_at_60(beta), beta)
    h = 1e-6
    with torch.no_grad():
        fd = (infected_at_60(beta + h) - infected_at_60(beta - h)) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-5)
    # and the discretised derivative agrees with the true one (solve_ivp on both sides)
    def true_i60(b: float) -> float:
        sol = solve_ivp(lambda t, y, mid: _seir_rhs({**SEIR_P, "beta": b})(t, y, mid),
                        (0, 60), [1e6 - 10, 0, 10, 0], rtol=1e-12, atol=1e-10, args=(0,))
        return sol.y[2, -1]

    exact = (true_i60(0.6 + 1e-5) - true_i60(0.6 - 1e-5)) / 2e-5
    assert float(grad) == pytest.approx(exact, rel=1e-3)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_interventions_and_control_schedule_match_piecewise_reference(solver: str) -> None:
    m = _load("seir")
    items = [
        Scale("beta", 0.5, start=30.0, end=50.0),
        SetValue("gamma", 0.3, start=70.0, end=80.0),
        Transfer("S", "R", 0.01, start=60.0),
    ]
    schedule = {"contact_reduction": ControlSchedule((20.0, 40.0), (0.4, 0.1))}
    t = np.linspace(0, 100, 51)

    def u(mid: float) -> float:
        return 0.0 if mid < 20 else (0.4 if mid < 40 else 0.1)

    def f(t, y, mid):
        beta = SEIR_P["beta"] * (0.5 if 30 <= mid < 50 else 1.0)
        gamma = 0.3 if 70 <= mid < 80 else SEIR_P["gamma"]
        s, e, i, r = y
        inf = (1 - u(mid)) * beta * s * i / (s + e + i + r)
        vac = 0.01 * s if mid >= 60 else 0.0
        return [-inf - vac, inf - SEIR_P["sigma"] * e, SEIR_P["sigma"] * e - gamma * i,
                gamma * i + vac]

    want = _reference(f, [1e6 - 10, 0, 10, 0], [0, 20, 30, 40, 50, 60, 70, 80, 100], t)
    sim = compile_model(m).simulate(SEIR_P, t, solver=SOLVERS[solver], interventions=items,
                                    controls=schedule)
    _assert_close(sim.states[0].numpy(), want)


def test_observables_see_the_control_schedule_and_parameter_interventions() -> None:
    m = Model("observed control")
    x = m.state("x")
    k = m.param("k", Fixed(0.1))
    u = m.control("u", default=0.0)
    m.rate(x, -k * x)
    m.init(x=1.0)
    m.observe("treated", u * x + k)
    t = np.array([0.0, 1.0, 2.0, 3.0])
    sim = compile_model(m).simulate({}, t, controls={"u": ControlSchedule((1.0, 3.0),
                                                                          (0.5, 0.0))},
                                    interventions=[Scale("k", 2.0, start=2.0)])
    x_t = sim.state("x")[0].numpy()
    k_t = np.array([0.1, 0.1, 0.2, 0.2])
    u_t = np.array([0.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(sim.observable("treated")[0].numpy(), u_t * x_t + k_t)


def test_transfer_to_outside_removes_a_fraction_exactly() -> None:
    """dx/dt = -0.1 x, plus removal of 0.2 x per unit time from t = 5: analytic solution."""
    from mechanistic import Fixed, Model
    from mechanistic.interventions import interventions_from_json
    from mechanistic.simulate import Dopri5, compile_model

    m = Model("decay")
    x = m.state("x")
    m.flow(x, None, m.param("k", Fixed(0.1)) * x)
    m.init(x=1.0)
    items = interventions_from_json([{"kind": "transfer", "source": "x", "target": None,
                                      "rate": 0.2, "start": 5}])
    sim = compile_model(m).simulate({}, [0.0, 5.0, 10.0], solver=Dopri5(1e-10, 1e-12),
                                    interventions=items)
    expected = np.array([1.0, np.exp(-0.5), np.exp(-0.5 - 0.3 * 5)])
    np.testing.assert_allclose(sim.states[0, :, 0].numpy(), expected, rtol=1e-7)
    assert items[0].to_dict()["target"] is None
