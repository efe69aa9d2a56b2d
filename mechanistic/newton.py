"""Damped Newton on a batched objective, with finite-difference derivatives in one batch.

Why: the simulator's cost is per time step, not per sample (a step over 300 parameter
sets costs about what a step over one does), so every point a finite-difference gradient
and Hessian need can be a row of *one* forward simulation, with no backward pass. A
Newton step then costs two batched simulations (the derivatives, then a line of damped
steps tried side by side), and near an optimum it converges in a handful of steps where
L-BFGS needs dozens of gradient evaluations, each a full backward pass through the
integration.

The objective is smooth in the parameters for a fixed-step solver, so central
differences are accurate; a non-finite value among the probes (a perturbed trajectory
that diverges) ends the polish for that start, which keeps the point it had.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

__all__ = ["MAX_NEWTON_PARAMS", "newton_polish"]

# Past this many parameters the probe batch (2k^2 + 2k + 1 rows per start) grows too large for
# the per-step cost to stay flat; the caller uses L-BFGS instead.
MAX_NEWTON_PARAMS = 14
_STEP = 1e-3          # finite-difference steps in the unconstrained coordinates
_GRAD_STEP = 1e-5
_DAMPING = (0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def _probe_points(x: np.ndarray) -> np.ndarray:
    """The points of central differences around ``x`` ([k]): ``x``; ``x +- g e_i`` (the
    gradient, at a small step so its truncation error is negligible); ``x +- h e_i`` and
    ``x + h(+-e_i +- e_j)`` for ``i < j`` (the Hessian, at a step large enough that
    rounding in the loss does not swamp second differences)."""
    k = x.size
    grad_eye, eye = np.eye(k) * _GRAD_STEP, np.eye(k) * _STEP
    rows = [x[None, :], x + grad_eye, x - grad_eye, x + eye, x - eye]
    for i in range(k):
        for j in range(i + 1, k):
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                rows.append((x + si * eye[i] + sj * eye[j])[None, :])
    return np.concatenate(rows, axis=0)


def _derivatives(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian from the probes of :func:`_probe_points`."""
    f0, h, g = values[0], _STEP, _GRAD_STEP
    grad = (values[1:1 + k] - values[1 + k:1 + 2 * k]) / (2 * g)
    plus, minus = values[1 + 2 * k:1 + 3 * k], values[1 + 3 * k:1 + 4 * k]
    hess = np.diag((plus - 2 * f0 + minus) / h**2)
    at = 1 + 4 * k
    for i in range(k):
        for j in range(i + 1, k):
            pp, pm, mp, mm = values[at:at + 4]
            at += 4
            hess[i, j] = hess[j, i] = (pp - pm - mp + mm) / (4 * h**2)
    return grad, hess


def newton_polish(losses_of: Callable[[np.ndarray], np.ndarray], u: np.ndarray,
                  losses: np.ndarray, steps: int, tol: float = 1e-7,
                  deadline: float = math.inf) -> tuple[np.ndarray, np.ndarray, int]:
    """Polish each row of ``u`` ([R, k]) by damped Newton steps on ``losses_of``
    (a batch of points ``[N, k]`` to their losses ``[N]``, non-finite allowed).

    Every row's probes and trial steps go into one call per stage. A row stops when its
    best trial improves the loss by less than ``tol * max(1, |loss|)`` or a probe is not
    finite. Returns the polished rows, their losses (never worse than given) and the
    number of Newton steps taken.
    """
    u = np.array(u, dtype=float)
    best = np.array(losses, dtype=float)
    k = u.shape[1]
    if k == 0 or steps == 0:
        return u, best, 0
    active = np.isfinite(best)
    taken = 0
    for _ in range(steps):
        if not active.any() or time.perf_counter() > deadline:
            break
        live = np.flatnonzero(active)
        probes = np.concatenate([_probe_points(u[r]) for r in live])
        values = losses_of(probes).reshape(len(live), -1)
        trials, owners = [], []
        for i, r in enumerate(live):
            if not np.isfinite(values[i]).all():
                active[r] = False
                continue
            grad, hess = _derivatives(values[i], k)
            scale = max(1e-8, float(np.mean(np.abs(np.diag(hess)))))
            for damping in _DAMPING:
                try:
                    step = np.linalg.solve(hess + damping * scale * np.eye(k), -grad)
                except np.linalg.LinAlgError:
                    continue
                if np.isfinite(step).all() and float(grad @ step) < 0:
                    trials.append(u[r] + np.clip(step, -3.0, 3.0))
                    owners.append(r)
            trials.append(u[r] - np.clip(grad / scale, -1.0, 1.0) * 0.1)  # a gradient step
            owners.append(r)
        if not trials:
            break
        tried = losses_of(np.stack(trials))
        owners_arr = np.array(owners)
        for r in np.unique(owners_arr):
            mine = np.flatnonzero(owners_arr == r)
            scores = np.where(np.isfinite(tried[mine]), tried[mine], np.inf)
            pick = mine[int(np.argmin(scores))]
            gain = best[r] - tried[pick]
            if np.isfinite(tried[pick]) and gain > 0:
                u[r], best[r] = trials[pick], tried[pick]
            if not gain > tol * max(1.0, abs(best[r])):
                active[r] = False
        taken += 1
    return u, best, taken
