"""Identified structures judged by the trajectories they simulate, not only by their fit to
increments.

The weak form scores a structure on one sampling interval at a time, from the observed
states; a structure can fit every increment well and still drift off the data once it runs
on its own states (a chemostat substrate equation with five small correction terms fits
the increments better than the three true ones and then runs away at the next change of
the dilution rate). Practice in sparse identification is to simulate the identified model
and compare the path with the data before trusting it (pysindy's ``SINDy.simulate``); the
search only has room to fit a few candidates, so the discovery proposer puts structures
whose simulated path explains nothing behind every one whose path does.

Each structure is integrated by scipy's LSODA (stiff or not) from the first training
observation with its regression coefficients, the known inputs held at their schedules, on
the training window. The score is the share of the observations' variance the path
explains, columns pooled after scaling each by its spread: ``1 - SSE / SST``. A path that
fails, leaves the observed range by three orders of magnitude, or takes longer than a
wall-clock budget scores ``-inf``.

It is a filter, not the ranking: the path runs on the regression's coefficients, before
any fit, and on an oscillation a small error in a frequency drifts the phase, so a flexible
wrong structure can track the data better than the true one (measured on Lotka-Volterra:
the true structure explained less of the path than one with a Hill term). Among structures
that explain their path, the weak-form system score decides.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["BLOW_UP", "SECONDS", "bounded_under_inputs", "trajectory_r2"]

BLOW_UP = 1e3        # |state| beyond this multiple of the largest observation: diverged
SECONDS = 2.0        # wall-clock budget of one integration


def trajectory_r2(equations: Mapping[str, object], t: np.ndarray,
                  observed: Mapping[str, np.ndarray],
                  inputs: Mapping[str, Callable[[np.ndarray], np.ndarray]],
                  seconds: float = SECONDS) -> float:
    """Share of the training observations' variance the structure's simulated path
    explains (1 is perfect; ``-inf`` when it cannot be simulated). ``equations`` maps each
    column to a model with ``terms`` and
    ``coefficients`` (see :class:`agent.discovery.regression.SparseModel`); ``observed``
    holds the gap-filled training observations at times ``t``."""
    cols = list(equations)
    t = np.asarray(t, dtype=float)
    y_obs = np.vstack([np.asarray(observed[c], dtype=float) for c in cols])
    if t.size < 3 or not np.isfinite(y_obs).all():
        return -math.inf
    top = float(np.nanmax(np.abs(y_obs))) or 1.0
    path = _integrate(equations, t, y_obs[:, 0], top, inputs, seconds)
    if path is None:
        return -math.inf
    sse = sst = 0.0
    for i in range(len(cols)):
        spread = float(np.std(y_obs[i])) or float(np.mean(np.abs(y_obs[i]))) or 1.0
        r = (path[i] - y_obs[i]) / spread
        d = (y_obs[i] - y_obs[i].mean()) / spread
        sse += float(r @ r)
        sst += float(d @ d)
    return 1.0 - sse / sst if sst > 0 else -math.inf


def _integrate(equations: Mapping[str, object], t: np.ndarray, y0: np.ndarray, top: float,
               inputs: Mapping[str, Callable[[np.ndarray], np.ndarray]], seconds: float
               ) -> np.ndarray | None:
    """The path at ``t`` from ``y0``, or None when it fails, diverges or runs too long."""
    from scipy.integrate import solve_ivp

    cols = list(equations)
    models = [equations[c] for c in cols]
    coefs = [np.asarray(m.coefficients, dtype=float) for m in models]  # type: ignore[attr-defined]
    deadline = time.monotonic() + seconds

    def rhs(tt: float, x: np.ndarray) -> np.ndarray:
        env: dict[str, np.ndarray] = {c: np.asarray(x[i]) for i, c in enumerate(cols)}
        for name, fn in inputs.items():
            env[name] = np.asarray(fn(np.asarray([tt]))[0], dtype=float)
        with np.errstate(all="ignore"):
            return np.array([float(sum(c * float(term.evaluate(env))
                                       for term, c in zip(m.terms, k, strict=True)))
                             for m, k in zip(models, coefs, strict=True)])

    def diverged(tt: float, x: np.ndarray) -> float:
        if time.monotonic() > deadline or not np.isfinite(x).all():
            return 0.0
        return BLOW_UP * top - float(np.max(np.abs(x)))

    diverged.terminal = True  # type: ignore[attr-defined]
    try:
        with np.errstate(all="ignore"):
            sol = solve_ivp(rhs, (t[0], t[-1]), y0, method="LSODA", t_eval=t, rtol=1e-5,
                            atol=1e-9 * top, events=diverged)
    except (ValueError, ArithmeticError, OverflowError, np.linalg.LinAlgError):
        return None
    if sol.status != 0 or sol.y.shape != (len(cols), t.size) or not np.isfinite(sol.y).all():
        return None
    return sol.y


def bounded_under_inputs(equations: Mapping[str, object], t: np.ndarray,
                         observed: Mapping[str, np.ndarray],
                         levels: Mapping[str, tuple[float, float]],
                         seconds: float = SECONDS) -> bool:
    """Whether the structure stays within ``BLOW_UP`` times the observed range when every
    known input is held, from the last training row for as long as the training window, at
    the lowest and at the highest level it was observed at.

    A what-if question moves an input; a mechanism that explodes when an input merely stays
    at a level the data already showed (a substrate equation whose correction terms feed
    back on themselves) cannot answer one, however well it fits the increments.
    """
    if not levels:
        return True
    cols = list(equations)
    y_obs = np.vstack([np.asarray(observed[c], dtype=float) for c in cols])
    top = float(np.nanmax(np.abs(y_obs))) or 1.0
    span = np.linspace(0.0, float(t[-1] - t[0]), 41)
    for pick in (0, 1):
        held = {u: (lambda tt, v=lv[pick]: np.full(np.shape(tt), v))
                for u, lv in levels.items()}
        if _integrate(equations, span, y_obs[:, -1], top, held, seconds) is None:
            return False
    return True
