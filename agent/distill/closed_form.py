"""A closed form for a learned rate: sparse regression on the term library, then polish.

The hybrid's network has learned a rate along the fitted trajectory; this finds the short
mechanistic formula that reproduces it:

1. the shared term library (:mod:`agent.discovery.terms`) over the rate's inputs, with the
   saturation constants ``K`` on a grid of multiples of each input's scale along the
   trajectory; for an outflow only terms that vanish when the source is empty (so the
   distilled model keeps its states non-negative, and passes the structural checks);
2. :func:`agent.discovery.regression.sparse_path` proposes supports of at most
   ``max_terms`` terms; every single term is also a candidate (a one-term mechanism is the
   commonest answer, and the path's information criterion, computed on a near noise-free
   learned curve of a few hundred points, rewards extra terms that only chase the network's
   wiggles);
3. each candidate's coefficients, ``K`` and Hill exponents ``n`` are refined together by
   ``scipy.optimize.least_squares`` from the grid winner, since the grid only gets ``K`` to
   within a factor of three;
4. for a flow (``nonnegative=True``), a candidate that turns negative anywhere on the box
   from 0 to three times the largest value of each input seen is rejected: a flow has a
   direction, and a linear decrease that fits the observed range (``10 - 0.5 p``) would
   run the flow backwards just outside it, exactly where the distilled model is meant to
   extrapolate;
5. the *parsimony rule*: of the remaining candidates whose R^2 is within ``parsimony`` of
   the best, the one with the fewest fitted constants (coefficients + K + n) wins, then the
   higher R^2. A linear rate that explains the curve as well as a saturating one wins, since
   then the data never reached saturation and its K would be a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from agent.discovery.regression import sparse_path
from agent.discovery.terms import Term, TermLibraryConfig, build_library, feature_matrix

__all__ = ["ClosedForm", "ClosedFormConfig", "fit_closed_form", "term_expr"]


@dataclass(frozen=True)
class ClosedFormConfig:
    """Settings of :func:`fit_closed_form`; validated on construction."""

    max_terms: int = 3
    parsimony: float = 0.01
    refine_top: int = 10
    n_thresholds: int = 20
    bootstrap: int = 0  # stability is not used to choose here; the refit R^2 is
    library: TermLibraryConfig = field(default_factory=lambda: TermLibraryConfig(
        saturation_grid=(0.03, 0.1, 0.3, 1.0, 3.0, 10.0)))

    def __post_init__(self) -> None:
        for name in ("max_terms", "refine_top", "n_thresholds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ClosedFormConfig.{name} must be an integer >= 1, "
                                 f"got {value!r}")
        if not isinstance(self.bootstrap, int) or self.bootstrap < 0:
            raise ValueError(f"ClosedFormConfig.bootstrap must be >= 0, got {self.bootstrap!r}")
        if not (math.isfinite(self.parsimony) and 0 <= self.parsimony < 1):
            raise ValueError(f"ClosedFormConfig.parsimony must be in [0, 1), "
                             f"got {self.parsimony!r}")
        if not isinstance(self.library, TermLibraryConfig):
            raise ValueError("ClosedFormConfig.library must be a TermLibraryConfig")


@dataclass(frozen=True)
class ClosedForm:
    """``sum_j coefficients[j] * terms[j]`` with refined constants, and how well it
    reproduces the learned rate (``r2``, ``rss`` on the regression rows)."""

    terms: tuple[Term, ...]
    coefficients: tuple[float, ...]
    r2: float
    rss: float

    @property
    def complexity(self) -> int:
        """Fitted constants: one coefficient per term, plus each K and Hill exponent."""
        return sum(1 + (t.K is not None) + (t.n is not None) for t in self.terms)

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for t in self.terms for v in t.variables))

    def predict(self, env: Mapping[str, np.ndarray]) -> np.ndarray:
        theta = feature_matrix(list(self.terms), env)
        return theta @ np.asarray(self.coefficients, dtype=float)

    def expression(self) -> sp.Expr:
        """The formula with every constant inlined (for reading, not for a module)."""
        return sp.Add(*[sp.Float(c) * term_expr(t) for t, c in
                        zip(self.terms, self.coefficients, strict=True)])

    def describe(self) -> str:
        return str(self.expression().evalf(4))


def term_expr(term: Term, K: sp.Expr | None = None, n: sp.Expr | None = None) -> sp.Expr:
    """A library term as a sympy expression over ``Symbol(variable)``; ``K``/``n`` default to
    the term's numbers. Built directly from the term's kind, never from its text form, so no
    string is parsed on the host. ``tests/agent/test_distill.py`` checks it against
    ``Term.evaluate``."""
    v = [sp.Symbol(x) for x in term.variables]
    k = K if K is not None else sp.Float(term.K or 0.0)
    e = n if n is not None else sp.Float(term.n or 0.0)
    if term.kind == "constant":
        return sp.Integer(1)
    if term.kind == "linear":
        return v[0]
    if term.kind == "square":
        return v[0] ** 2
    if term.kind == "product":
        return sp.Mul(*v)
    if term.kind == "saturating":
        return v[0] / (k + v[0])
    if term.kind == "saturating_product":
        return v[0] * v[1] / (k + v[0])
    if term.kind == "hill_activation":
        core = v[0] ** e / (k**e + v[0] ** e)
    elif term.kind == "hill_repression":
        core = 1 / (1 + (v[0] / k) ** e)
    else:  # pragma: no cover - Term validates its kind
        raise ValueError(f"unknown term kind {term.kind!r}")
    return v[1] * core if len(v) > 1 else core


def _rms(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x * x))) if x.size else 1.0


def _r2(rss: float, y: np.ndarray) -> float:
    tss = float(((y - y.mean()) ** 2).sum())
    return 1.0 - rss / tss if tss > 0 else (1.0 if rss <= 1e-12 * max(float(y @ y), 1e-300)
                                             else 0.0)


def _refine(terms: Sequence[Term], coef: Sequence[float], env: Mapping[str, np.ndarray],
            y: np.ndarray) -> ClosedForm | None:
    """Coefficients, log K and log n of one support by least squares from the grid point."""
    from scipy.optimize import least_squares

    k = len(terms)
    has_k = [t.K is not None for t in terms]
    has_n = [t.n is not None for t in terms]
    x0 = [*coef, *(math.log(t.K or 1.0) for t, h in zip(terms, has_k, strict=True) if h),
          *(math.log(t.n or 1.0) for t, h in zip(terms, has_n, strict=True) if h)]
    lo = [-np.inf] * k + [math.log(t.K or 1.0) - 7 for t, h in zip(terms, has_k, strict=True)
                          if h] + [math.log(0.3)] * sum(has_n)
    hi = [np.inf] * k + [math.log(t.K or 1.0) + 7 for t, h in zip(terms, has_k, strict=True)
                         if h] + [math.log(10.0)] * sum(has_n)
    x0 = [min(max(v, a + 1e-9), b - 1e-9) for v, a, b in zip(x0, lo, hi, strict=True)]
    scale = _rms(y) or 1.0

    def unpack(x: np.ndarray) -> list[Term]:
        it_k = iter(x[k:k + sum(has_k)])
        it_n = iter(x[k + sum(has_k):])
        out = []
        for t, hk, hn in zip(terms, has_k, has_n, strict=True):
            K = float(np.exp(next(it_k))) if hk else None
            n = float(np.exp(next(it_n))) if hn else None
            out.append(Term(t.kind, t.variables, K=K, n=n))
        return out

    def residual(x: np.ndarray) -> np.ndarray:
        theta = feature_matrix(unpack(x), env)
        r = (theta @ x[:k] - y) / scale
        return np.nan_to_num(r, nan=1e6, posinf=1e6, neginf=-1e6)

    try:
        sol = least_squares(residual, np.asarray(x0, dtype=float), bounds=(lo, hi),
                            x_scale="jac", max_nfev=200 * len(x0))
    except (ValueError, np.linalg.LinAlgError):
        return None
    fitted = unpack(sol.x)
    rss = float((residual(sol.x) ** 2).sum()) * scale**2
    if not math.isfinite(rss):
        return None
    return ClosedForm(tuple(fitted), tuple(float(c) for c in sol.x[:k]), _r2(rss, y), rss)


def _box(data: Mapping[str, np.ndarray], points: int = 12, limit: int = 2000,
         seed: int = 0) -> dict[str, np.ndarray]:
    """Points covering ``[0, 3 * max]`` of every variable (a grid, or random points when
    the grid would exceed ``limit``), where a flow's closed form must stay >= 0."""
    names = list(data)
    tops = [3.0 * max(float(np.nanmax(np.abs(data[n]))), 1e-12) for n in names]
    if points ** len(names) <= limit:
        axes = [np.linspace(0.0, top, points) for top in tops]
        mesh = np.meshgrid(*axes, indexing="ij")
        return {n: m.reshape(-1) for n, m in zip(names, mesh, strict=True)}
    rng = np.random.default_rng(seed)
    return {n: rng.uniform(0.0, top, limit) for n, top in zip(names, tops, strict=True)}


def _stays_nonnegative(form: ClosedForm, box: Mapping[str, np.ndarray],
                       scale: float) -> bool:
    with np.errstate(all="ignore"):
        values = form.predict(box)
    values = values[np.isfinite(values)]
    return bool(values.size == 0 or values.min() >= -1e-9 * max(scale, 1e-300))


def fit_closed_form(env: Mapping[str, np.ndarray], target: np.ndarray,
                    states: Sequence[str], controls: Sequence[str] = (), *,
                    vanish: Sequence[str] = (), nonnegative: bool = False,
                    config: ClosedFormConfig | None = None) -> list[ClosedForm]:
    """Refined closed forms for ``target`` as a function of ``states`` and ``controls``
    (arrays in ``env``), the chosen one (parsimony rule, module docstring) first, then the
    others by R^2. ``vanish``: variables at whose zero every term must vanish;
    ``nonnegative``: the form must stay >= 0 beyond the observed range (a flow). Returns []
    when nothing could be fitted (no finite rows, an empty library, no admissible form)."""
    cfg = config or ClosedFormConfig()
    y = np.asarray(target, dtype=float).reshape(-1)
    names = [*states, *controls]
    arrays = {n: np.asarray(env[n], dtype=float).reshape(-1) for n in names}
    rows = np.isfinite(y) & np.all([np.isfinite(a) for a in arrays.values()], axis=0) \
        if arrays else np.isfinite(y)
    if rows.sum() < 5:
        return []
    y = y[rows]
    data = {n: a[rows] for n, a in arrays.items()}
    scales = {n: _rms(a) for n, a in data.items()}
    library = [t for t in build_library(list(states), scales, inputs=list(controls),
                                        config=cfg.library)
               if all(t.vanishes_when_zero(x) for x in vanish)]
    if not library:
        return []
    theta = feature_matrix(library, data)
    starts: dict[tuple[object, ...], tuple[float, tuple[Term, ...], tuple[float, ...]]] = {}

    def offer(terms: Sequence[Term], coef: Sequence[float], rss: float) -> None:
        # One start per family support: K and n are refined anyway.
        key = tuple(sorted((t.kind, t.variables, t.n) for t in terms))
        if key not in starts or rss < starts[key][0]:
            starts[key] = (rss, tuple(terms), tuple(coef))

    for model in sparse_path(theta, y, library, max_terms=cfg.max_terms,
                             n_thresholds=cfg.n_thresholds, bootstrap=cfg.bootstrap):
        offer(model.terms, model.coefficients, model.rss)
    for j, term in enumerate(library):  # every one-term mechanism competes
        col = theta[:, j]
        denom = float(col @ col)
        if denom > 0 and np.isfinite(denom):
            c = float(col @ y) / denom
            r = y - c * col
            offer([term], [c], float(r @ r))
    ranked = sorted(starts.values(), key=lambda s: s[0])
    # the best few by grid rss, and the best of every support size (simplest first)
    chosen = ranked[:cfg.refine_top]
    for size in range(1, cfg.max_terms + 1):
        best = next((s for s in ranked if len(s[1]) == size), None)
        if best is not None and best not in chosen:
            chosen.append(best)
    refined = [f for f in (_refine(terms, coef, data, y) for _, terms, coef in chosen)
               if f is not None]
    if nonnegative:
        box = _box(data)
        refined = [f for f in refined if _stays_nonnegative(f, box, _rms(y))]
    if not refined:
        return []
    top = max(f.r2 for f in refined)
    eligible = [f for f in refined if f.r2 >= top - cfg.parsimony]
    pick = min(eligible, key=lambda f: (f.complexity, -f.r2))
    rest = sorted((f for f in refined if f is not pick), key=lambda f: -f.r2)
    return [pick, *rest]
