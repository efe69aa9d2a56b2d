"""Regression targets from noisy, gappy series: smoothed derivatives and a weak form.

Derivative form: each series is filled by linear interpolation, smoothed and differentiated
with pysindy's ``SmoothedFiniteDifference`` (a Savitzky-Golay smoother, cubic, then a
second-order finite difference). Strictly positive series are treated in log space, where
multiplicative (log-normal) noise is additive and of one size across a series that spans
decades; ``x' = x * (log x)'``. The window is chosen by the discrepancy principle: the widest
odd window (at most a third of the series) whose residual RMS stays within 1.3 times the
noise level estimated from second differences (``MAD(d2)/0.6745/sqrt(6)``), so clean data is
barely smoothed and noisy data is smoothed until the fit would start to flatten the signal.

Weak form: increments ``x(t_{k+m}) - x(t_k)`` regressed on the integrals of the features over
the same interval (midpoint rule with ``SUBSTEPS`` sub-intervals per sampling interval,
states from the smoothed curve interpolated, known inputs read exactly with
``InputSeries.value_at`` so a step in a dilution rate is integrated where it happens).
Noise enters the increments once instead of being amplified by differentiation. Both are
exposed; ``identify`` chooses (see its docstring for the measured comparison).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from agent.discovery.terms import Term, feature_matrix

__all__ = ["SUBSTEPS", "Smoothed", "fill_missing", "noise_level", "savgol_window",
           "smooth_series", "weak_form"]

SUBSTEPS = 4
_POLYORDER = 3


@dataclass(frozen=True)
class Smoothed:
    """One series on the training samples: filled+smoothed values, rate, and diagnostics."""

    values: np.ndarray
    rates: np.ndarray
    window: int
    noise: float     # estimated noise level (relative when ``log`` is True)
    log: bool


def fill_missing(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Missing values filled by linear interpolation (held constant beyond the ends)."""
    v = np.asarray(v, dtype=float)
    ok = np.isfinite(v)
    if ok.all() or not ok.any():
        return v.copy()
    return np.interp(np.asarray(t, dtype=float), np.asarray(t)[ok], v[ok])


def noise_level(v: np.ndarray) -> float:
    """Robust noise SD from second differences (a smooth signal contributes little)."""
    v = np.asarray(v, dtype=float)
    if v.size < 4:
        return 0.0
    d2 = np.diff(v, 2)
    return float(np.median(np.abs(d2 - np.median(d2))) / 0.6745 / math.sqrt(6.0))


def _savgol(v: np.ndarray, window: int) -> np.ndarray:
    from scipy.signal import savgol_filter

    if window < _POLYORDER + 2:
        return v.copy()
    return savgol_filter(v, window, _POLYORDER, mode="interp")


def savgol_window(v: np.ndarray, noise: float | None = None) -> int:
    """The widest odd Savitzky-Golay window whose residual RMS is within 1.3x the noise
    (module docstring); 5 at least, a third of the series at most (and odd)."""
    v = np.asarray(v, dtype=float)
    n = v.size
    top = max(5, min(n // 3, 51))
    top -= (top + 1) % 2
    sigma = noise_level(v) if noise is None else noise
    best = 5
    for w in range(5, top + 1, 2):
        if w > n:
            break
        resid = v - _savgol(v, w)
        if float(np.sqrt(np.mean(resid**2))) <= 1.3 * sigma:
            best = w
    return min(best, n if n % 2 else n - 1)


def smooth_series(t: np.ndarray, v: np.ndarray, *, log: bool | None = None,
                  window: int | None = None) -> Smoothed:
    """Fill, smooth and differentiate one series (module docstring)."""
    import pysindy as ps  # slow to import: only when targets are computed

    t = np.asarray(t, dtype=float)
    x = fill_missing(t, v)
    use_log = bool(np.all(x > 0)) if log is None else log
    y = np.log(x) if use_log else x
    sigma = noise_level(y)
    w = savgol_window(y, sigma) if window is None else int(window)
    if w < _POLYORDER + 2 or w > y.size:
        w = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if w:
            sfd = ps.SmoothedFiniteDifference(
                smoother_kws={"window_length": w, "polyorder": _POLYORDER, "mode": "interp"})
            dy = np.asarray(sfd(y.reshape(-1, 1), t)).reshape(-1)
            ys = np.asarray(sfd.smoothed_x_).reshape(-1)
        else:
            dy = np.gradient(y, t)
            ys = y
    if use_log:
        xs = np.exp(ys)
        return Smoothed(xs, xs * dy, w, sigma, True)
    return Smoothed(ys, dy, w, sigma, False)


def weak_form(t: np.ndarray, states: Mapping[str, np.ndarray], raw: Mapping[str, np.ndarray],
              inputs: Mapping[str, Callable[[np.ndarray], np.ndarray]],
              terms: Sequence[Term], stride: int = 1
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(Theta_int [K, n_terms], {state: increments [K]})`` over intervals of ``stride``
    samples. ``states`` are smoothed values at ``t`` (interpolated linearly between samples
    for the integrals), ``raw`` the filled observations whose increments are the targets,
    ``inputs`` the known inputs as functions of time."""
    t = np.asarray(t, dtype=float)
    starts = np.arange(0, t.size - stride, stride)
    if starts.size == 0:
        return np.zeros((0, len(terms))), {k: np.zeros(0) for k in raw}
    # midpoint rule on SUBSTEPS sub-intervals per sampling interval: midpoints lie strictly
    # inside an interval, so a piecewise-constant input that steps at a sample time is read
    # on the correct side of the step
    frac = (np.arange(SUBSTEPS) + 0.5) / SUBSTEPS
    width = np.diff(t)
    mids = (t[:-1, None] + width[:, None] * frac[None, :]).reshape(-1)
    env = {k: np.interp(mids, t, np.asarray(v, dtype=float)) for k, v in states.items()}
    env.update({name: np.asarray(fn(mids), dtype=float) for name, fn in inputs.items()})
    phi = feature_matrix(terms, env) * np.repeat(width / SUBSTEPS, SUBSTEPS)[:, None]
    per_interval = phi.reshape(t.size - 1, SUBSTEPS, -1).sum(axis=1)
    cum = np.concatenate([np.zeros((1, phi.shape[1])), np.cumsum(per_interval, axis=0)])
    ends = starts + stride
    theta_int = cum[ends] - cum[starts]
    incr = {k: np.asarray(v, dtype=float)[ends] - np.asarray(v, dtype=float)[starts]
            for k, v in raw.items()}
    return theta_int, incr
