"""The constant-rate infusion intervention against closed forms.

A one-compartment model dx/dt = -k x with an infusion of rate R over [a, b) has

    x(t) = x0 e^{-kt} + R/k (1 - e^{-k (min(t, b) - a)}) e^{-k (t - min(t, b))}   (t >= a)

so the simulator is checked exactly at the window's edges (which must be breakpoints,
not steps that straddle them) and after it, for both solvers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mechanistic import Fixed, Model
from mechanistic.errors import ModelError
from mechanistic.interventions import (
    Dose,
    Infusion,
    Transfer,
    interventions_from_json,
    interventions_to_json,
    validate_interventions,
)
from mechanistic.simulate import RK4, Dopri5, compile_model

K, X0, RATE, A, B = 0.3, 2.0, 1.5, 2.05, 6.3
SOLVERS = {"rk4": RK4(dt=0.01), "dopri5": Dopri5(rtol=1e-10, atol=1e-12)}


def _decay(k: float = K) -> Model:
    m = Model("decay")
    x = m.state("x")
    m.flow(x, None, m.param("k", Fixed(k)) * x)
    m.init(x=X0)
    return m


def _closed_form(t: np.ndarray, k: float = K, x0: float = X0, rate: float = RATE,
                 a: float = A, b: float = B) -> np.ndarray:
    out = x0 * np.exp(-k * t)
    on = t >= a
    end = np.minimum(t, b)
    out[on] += rate / k * (1 - np.exp(-k * (end[on] - a))) * np.exp(-k * (t[on] - end[on]))
    return out


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_infusion_matches_the_closed_form(solver: str) -> None:
    t = np.array([0.0, 1.0, A, 3.0, 5.0, B, 7.5, 12.0])
    sim = compile_model(_decay()).simulate({}, t, solver=SOLVERS[solver],
                                           interventions=[Infusion("x", RATE, A, B)])
    np.testing.assert_allclose(sim.state("x")[0].numpy(), _closed_form(t), rtol=1e-8)


def test_infusion_total_amount_is_rate_times_duration_without_elimination() -> None:
    """With k = 0 the infused amount is exactly R (b - a), wherever the outputs fall."""
    t = np.array([0.0, 4.0, 10.0])
    sim = compile_model(_decay(0.0)).simulate({}, t, solver=RK4(dt=0.7),
                                              interventions=[Infusion("x", 150.0, 2.0, 2.2)])
    np.testing.assert_allclose(sim.state("x")[0].numpy(), [X0, X0 + 30.0, X0 + 30.0],
                               rtol=1e-12)


def test_infusion_with_a_dose_and_a_removal_superposes() -> None:
    """Linear system: a bolus at 1 and an infusion add their closed forms; a removal of
    0.2 x from 0 on is the same as eliminating at k + 0.2."""
    t = np.array([0.0, 1.0, 4.0, 9.0])
    items = [Infusion("x", RATE, A, B), Dose("x", 1.0, (1.0,)), Transfer("x", None, 0.2)]
    sim = compile_model(_decay()).simulate({}, t, solver=SOLVERS["dopri5"], interventions=items)
    k = K + 0.2
    want = _closed_form(t, k=k) + np.where(t >= 1.0, np.exp(-k * (t - 1.0)), 0.0)
    np.testing.assert_allclose(sim.state("x")[0].numpy(), want, rtol=1e-8)


def test_infusion_json_round_trip_and_validation() -> None:
    data = [{"kind": "infusion", "target": "x", "rate": 150, "start": 20, "end": 22},
            {"kind": "infusion", "target": "x", "rate": 1.0, "start": 5}]
    items = interventions_from_json(data)
    assert items == [Infusion("x", 150.0, 20.0, 22.0), Infusion("x", 1.0, 5.0, math.inf)]
    assert interventions_to_json(items)[1] == {"kind": "infusion", "target": "x", "rate": 1.0,
                                              "start": 5.0, "end": None}
    assert interventions_from_json(interventions_to_json(items)) == items
    validate_interventions(_decay(), items)
    with pytest.raises(ModelError, match="'gut' is not a state"):
        validate_interventions(_decay(), [Infusion("gut", 1.0)])
    with pytest.raises(ModelError, match="must be >= 0"):
        Infusion("x", -1.0)
    with pytest.raises(ModelError, match="start < end"):
        Infusion("x", 1.0, 5.0, 5.0)
    with pytest.raises(ModelError, match="missing"):
        interventions_from_json([{"kind": "infusion", "target": "x"}])
