"""Two tiny benchmark tasks for the evals tests: small grids, simple truths, fast fits.

``decay_task``: a tracer washing out (no study inputs), one what-if on the loss rate.
``pk_task``: oral dosing every 12 hours into a gut depot (study inputs the neural
baseline can see), an extra 4x dose (inputs it never saw in training) and a halved
clearance (no input it could change).
"""

from __future__ import annotations

import numpy as np
from decay_models import decay_source

from evals.agents import Budget
from evals.task import BenchTask, Counterfactual
from mechanistic import Fixed, LogNormalNoise, LogUniform, Model
from mechanistic.fit import FitConfig
from mechanistic.interventions import Dose, Scale

FAST = Budget(max_seconds=60.0, max_nodes=2,
              fit=FitConfig(starts=2, adam_steps=60, lbfgs_steps=15, polish_starts=1))

DECAY_MODULE = decay_source(model="washout", structure="first-order washout",
                            observable="tracer")


def _decay() -> Model:
    m = Model("true washout", time_unit="day")
    x = m.state("x")
    k = m.param("k", LogUniform(0.01, 2.0))
    x0 = m.param("x0", LogUniform(1.0, 1000.0))
    s = m.param("s", LogUniform(0.01, 1.0))
    m.flow(x, None, k * x, name="loss")
    m.init(x=x0)
    m.observe("tracer", x, noise=LogNormalNoise(s))
    return m


def decay_task() -> BenchTask:
    return BenchTask(
        name="tiny-decay", domain="physiology", difficulty="easy", tags=("tiny",),
        variant="full",
        description="A tracer injected into a well-mixed tank washes out at a steady "
                    "fractional rate; its concentration is measured once a day.",
        time_unit="day", times=np.arange(0.0, 41.0), train_until=20.0, validate_until=28.0,
        observed=("tracer",), hidden=(), truth_model=_decay(),
        truth_params={"k": 0.1, "x0": 100.0, "s": 0.05}, conditions=(),
        counterfactuals=(Counterfactual("From day 30 on, the loss rate is halved.",
                                        (Scale("k", 0.5, 30.0),), 30.0),),
        recover={"elimination_rate": "k"}, wrong_model=None, noise_seed=3)


def _oral(fast_absorption: bool = False) -> Model:
    m = Model("fast absorption" if fast_absorption else "true oral PK", time_unit="hour")
    depot, plasma = m.states("depot plasma")
    k_abs = m.param("k_abs", Fixed(2.5) if fast_absorption else LogUniform(0.05, 20.0))
    k_out = m.param("k_out", LogUniform(0.005, 2.0))
    vol = m.param("vol", LogUniform(1.0, 1000.0))
    cv = m.param("cv", LogUniform(0.01, 2.0))
    m.flow(depot, plasma, k_abs * depot, name="uptake")
    m.flow(plasma, None, k_out * plasma, name="clearance")
    m.init(depot=0, plasma=0)
    m.observe("conc", plasma / vol, noise=LogNormalNoise(cv))
    return m


def pk_task() -> BenchTask:
    doses = (0.0, 12.0, 24.0, 36.0, 48.0, 60.0)
    return BenchTask(
        name="tiny-pk", domain="pharmacology", difficulty="easy", tags=("tiny", "dosing"),
        variant="partial",
        description="Volunteers took a 250 mg tablet every 12 hours from hour 0, six doses "
                    "in all; the drug is absorbed from the gut over a few hours and cleared "
                    "by the kidneys. Plasma concentration (mg/L) was measured every 2 hours.",
        time_unit="hour", times=np.arange(0.0, 73.0, 2.0), train_until=36.0,
        validate_until=48.0, observed=("conc",), hidden=("depot", "plasma"),
        truth_model=_oral(), truth_params={"k_abs": 0.6, "k_out": 0.12, "vol": 40.0,
                                           "cv": 0.1},
        conditions=(Dose("depot", 250.0, doses),),
        counterfactuals=(
            Counterfactual("Give an extra 1000 mg dose at hour 54.",
                           (Dose("depot", 1000.0, (54.0,)),), 53.0),
            Counterfactual("From hour 50 on, kidney clearance is halved.",
                           (Scale("k_out", 0.5, 50.0),), 49.0),
        ),
        recover={"absorption_rate": "k_abs", "elimination_rate": "k_out", "volume": "vol"},
        wrong_model=_oral(fast_absorption=True), noise_seed=5)
