"""Sparse regression of one state's rate on the term library, with bootstrap stability.

Sequentially thresholded least squares (pysindy's ``STLSQ``) is run over a geometric path of
thresholds on column-normalised features, so one call yields every distinct support from
dense to sparse; each support is refitted by plain least squares on the original features
(the thresholded ridge solution is biased), sign constraints are enforced by dropping the
worst offender and refitting, and supports are ranked by an information criterion. A
library holds families of nearly collinear terms (the same saturation at neighbouring K),
so each support is also tried with every sibling of its saturating terms (same kind and
variables, other K): the grid K that fits best is kept, which is how the half-saturation
constant is identified at grid level.

Stability is pysindy's ``EnsembleOptimizer`` with bagging at the threshold that produced a
support: the fraction of bootstrap resamples whose model includes each term. A term that
appears in few resamples is one the data cannot pin down.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agent.discovery.terms import Term

__all__ = ["SparseModel", "information_criterion", "n_parameters", "refit", "sparse_path"]

_THRESHOLD_RANGE = (1e-3, 3.0)  # in units of the target's RMS per unit-RMS feature
# Nested libraries the path is run on, simplest first: mass action and inputs, then
# saturation, then Hill terms. A flexible term can mimic a simple one inside noise; running
# the simple library alone guarantees its supports are on the path to compete.
_TIERS = (frozenset({"constant", "linear", "product", "square"}),
          frozenset({"saturating", "saturating_product"}),
          frozenset({"hill_activation", "hill_repression"}))


def n_parameters(terms: Sequence[Term]) -> int:
    """Coefficients plus one per half-saturation constant: K is chosen from a grid, which
    is a fitted parameter, and counting it keeps a saturating term from winning over a
    mass-action one on noise alone."""
    return sum(1 + (t.K is not None) for t in terms)


@dataclass(frozen=True)
class SparseModel:
    """One selected support with least-squares coefficients on the original features.

    ``score`` is the information criterion (lower is better); ``stability[j]`` the
    fraction of bootstrap models that include ``terms[j]``.
    """

    terms: tuple[Term, ...]
    coefficients: tuple[float, ...]
    rss: float
    score: float
    stability: tuple[float, ...]

    @property
    def size(self) -> int:
        return len(self.terms)

    def predict(self, theta_support: np.ndarray) -> np.ndarray:
        """The model's rate on a feature matrix whose columns are ``terms`` in order."""
        return np.asarray(theta_support, dtype=float) @ np.asarray(self.coefficients)

    def describe(self) -> str:
        parts = [f"{c:+.4g}*{t.label}" for t, c in zip(self.terms, self.coefficients,
                                                        strict=True)]
        return " ".join(parts) or "0"


def information_criterion(rss: float, n: int, k: int, kind: str = "aicc") -> float:
    """AICc (default) or BIC of a Gaussian regression with ``k`` coefficients on ``n`` rows."""
    rss = max(float(rss), 1e-300)
    base = n * math.log(rss / n)
    if kind == "bic":
        return base + k * math.log(n)
    if kind != "aicc":
        raise ValueError(f"criterion must be 'aicc' or 'bic', got {kind!r}")
    denom = n - k - 1
    correction = 2 * k * (k + 1) / denom if denom > 0 else math.inf
    return base + 2 * k + correction


def refit(theta: np.ndarray, target: np.ndarray, support: Sequence[int],
          allowed_sign: Sequence[int] | None = None) -> tuple[list[int], np.ndarray, float]:
    """Least squares on ``support``; while a coefficient has a forbidden sign, drop the
    worst one (largest contribution of the wrong sign) and refit. Returns the surviving
    support, its coefficients and the residual sum of squares."""
    keep = list(support)
    while keep:
        a = theta[:, keep]
        coef, *_ = np.linalg.lstsq(a, target, rcond=None)
        if allowed_sign is None:
            break
        norms = np.sqrt((a * a).mean(axis=0))
        bad = [(abs(c) * s, i) for i, (j, c, s) in enumerate(zip(keep, coef, norms, strict=True))
               if allowed_sign[j] and np.sign(c) == -allowed_sign[j]]
        if not bad:
            break
        keep.pop(max(bad)[1])
    if not keep:
        return [], np.zeros(0), float(target @ target)
    resid = target - theta[:, keep] @ coef
    return keep, np.asarray(coef, dtype=float), float(resid @ resid)


def _siblings(terms: Sequence[Term]) -> dict[int, list[int]]:
    """For each term with a K, the indices of terms identical except for K."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for j, t in enumerate(terms):
        if t.K is not None:
            groups.setdefault((t.kind, t.variables, t.n), []).append(j)
    return {j: [i for i in g if i != j] for g in groups.values() for j in g}


def _one_per_family(xn: np.ndarray, yn: np.ndarray, support: list[int],
                    terms: Sequence[Term]) -> list[int]:
    """Keep, of several terms of one family (same kind and variables, different K), the
    one with the largest contribution: two K of one saturation combine into a shape the
    mechanism does not have."""
    if len(support) < 2:
        return support
    coef, *_ = np.linalg.lstsq(xn[:, support], yn, rcond=None)
    best: dict[tuple[object, ...], tuple[float, int]] = {}
    for j, c in zip(support, coef, strict=True):
        t = terms[j]
        key = (t.kind, t.variables, t.n) if t.K is not None else (j,)
        if key not in best or abs(c) > best[key][0]:
            best[key] = (abs(float(c)), j)
    return sorted(j for _, j in best.values())


def _best_siblings(theta: np.ndarray, target: np.ndarray, support: list[int],
                   siblings: dict[int, list[int]],
                   allowed_sign: Sequence[int] | None) -> list[int]:
    """Coordinate descent over the K grid of each saturating term in ``support``."""
    best, _, best_rss = support, None, refit(theta, target, support, allowed_sign)[2]
    for pos in range(len(support)):
        for alt in siblings.get(best[pos], []):
            if alt in best:
                continue
            trial = [*best[:pos], alt, *best[pos + 1:]]
            kept, _, rss = refit(theta, target, trial, allowed_sign)
            if len(kept) == len(trial) and rss < best_rss * (1 - 1e-9):
                best, best_rss = trial, rss
    return best


def _stlsq(ps: object, x: np.ndarray, y: np.ndarray, threshold: float,
           alpha: float) -> np.ndarray:
    opt = ps.STLSQ(threshold=threshold, alpha=alpha, max_iter=20)  # type: ignore[attr-defined]
    opt.fit(x, y)
    return np.asarray(opt.coef_).reshape(-1)


def sparse_path(theta: np.ndarray, target: np.ndarray, terms: Sequence[Term], *,
                max_terms: int = 6, n_thresholds: int = 20, bootstrap: int = 20,
                seed: int = 0, allowed_sign: Sequence[int] | None = None,
                criterion: str = "aicc", ridge: float = 1e-3) -> list[SparseModel]:
    """Distinct supports of at most ``max_terms`` terms, best ``score`` first.

    ``theta`` is ``[T, len(terms)]``, ``target`` ``[T]``; rows with a non-finite value are
    dropped. ``allowed_sign[j]`` is +1 (coefficient must be >= 0), -1 (<= 0) or 0 (free).
    ``ridge`` is the STLSQ ridge weight relative to the number of rows (features have unit
    RMS), which steadies the thresholding inside collinear families. ``bootstrap=0``
    skips the stability ensemble (all stabilities are then 1). Returns [] when there is
    nothing to explain (a zero target) or no support survives.
    """
    import pysindy as ps  # slow to import (~1 s): only when a regression is run

    theta = np.asarray(theta, dtype=float)
    y = np.asarray(target, dtype=float).reshape(-1)
    if theta.ndim != 2 or theta.shape[0] != y.size or theta.shape[1] != len(terms):
        raise ValueError(f"theta must be [T, {len(terms)}] with T = {y.size}, "
                         f"got {theta.shape}")
    if allowed_sign is not None and len(allowed_sign) != len(terms):
        raise ValueError("allowed_sign needs one entry per term")
    rows = np.isfinite(theta).all(axis=1) & np.isfinite(y)
    theta, y = theta[rows], y[rows]
    n = y.size
    y_rms = float(np.sqrt(np.mean(y * y))) if n else 0.0
    if n < 3 or y_rms == 0.0 or not terms:
        return []
    norms = np.sqrt(np.mean(theta * theta, axis=0))
    usable = norms > 1e-12 * max(float(norms.max()), 1e-300)
    scale = np.where(usable, norms, 1.0)
    xn = np.where(usable, theta / scale, 0.0)
    yn = y / y_rms
    lo, hi = _THRESHOLD_RANGE
    thresholds = np.geomspace(lo, hi, max(int(n_thresholds), 1))
    siblings = _siblings(terms)
    alpha = ridge * n

    # support -> inclusion frequencies of the bootstrap run that found it
    found: dict[tuple[int, ...], np.ndarray | None] = {}
    rng_state = np.random.get_state()
    try:
        np.random.seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for tier in range(len(_TIERS)):
                allowed = frozenset().union(*_TIERS[:tier + 1])
                cols = np.array([t.kind in allowed for t in terms]) & usable
                if tier and not (np.array([t.kind in _TIERS[tier] for t in terms])
                                 & usable).any():
                    continue  # this tier adds no term
                x_tier = np.where(cols, xn, 0.0)
                for lam in thresholds:
                    fits = [_stlsq(ps, x_tier, yn, float(lam), alpha)]
                    if bootstrap > 0:
                        ens = ps.EnsembleOptimizer(
                            ps.STLSQ(threshold=float(lam), alpha=alpha, max_iter=20),
                            bagging=True, n_models=int(bootstrap))
                        ens.fit(x_tier, yn.reshape(-1, 1))
                        coefs = np.asarray(ens.coef_list).reshape(len(ens.coef_list), -1)
                        freq = (coefs != 0).mean(axis=0)
                        fits.append(np.asarray(ens.coef_).reshape(-1))
                    else:
                        freq = None
                    for coef in fits:
                        sup = [int(j) for j in np.flatnonzero(coef) if cols[j]]
                        sup = _one_per_family(xn, yn, sup, terms)
                        if not 1 <= len(sup) <= max_terms:
                            continue
                        kept, _, _ = refit(xn, yn, sup, allowed_sign)
                        if not kept:
                            continue
                        swapped = _best_siblings(xn, yn, kept, siblings, allowed_sign)
                        for cand in {tuple(sorted(kept)), tuple(sorted(swapped))}:
                            if cand not in found:
                                found[cand] = freq
    finally:
        np.random.set_state(rng_state)

    models: dict[tuple[int, ...], SparseModel] = {}
    for support, freq in found.items():
        kept, coef_n, rss_n = refit(xn, yn, list(support), allowed_sign)
        key = tuple(sorted(kept))
        if not kept or key in models:
            continue
        order = np.argsort(kept)
        kept_sorted = [kept[i] for i in order]
        coef = [float(coef_n[i] * y_rms / scale[kept[i]]) for i in order]
        rss = rss_n * y_rms**2
        stability = tuple(float(freq[j]) if freq is not None else 1.0 for j in kept_sorted)
        if freq is not None:  # a sibling swap: credit the family's inclusion frequency
            stability = tuple(max(s, max((float(freq[i]) for i in siblings.get(j, [])),
                                         default=0.0))
                              for s, j in zip(stability, kept_sorted, strict=True))
        models[key] = SparseModel(tuple(terms[j] for j in kept_sorted), tuple(coef), rss,
                                  information_criterion(rss_n, n, n_parameters(
                                      [terms[j] for j in kept]), criterion),
                                  stability)
    return sorted(models.values(), key=lambda m: (m.score, m.size))
