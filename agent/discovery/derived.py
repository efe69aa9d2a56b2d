"""Columns that are read off the states rather than states themselves.

A data set often holds a measured *rate* beside the levels: a fishery's catch is effort x
catchability x stock, a reactor's off-gas is a rate times two concentrations, reported
incidence is a contact rate times two compartments. Treated as a state, such a column gets
a rate law of its own that has nothing to do with the mechanism (a catch that "grows" and
"decays"), and the stock's equation loses the harvest that the catch measures. A column is
taken as **derived** when, on the training window, it is proportional to one product of
another column and a known input, or of two other columns, such that the product explains
at least ``MIN_R2`` of its variance (in logs: the noise is multiplicative) and what it
leaves is measurement noise: residuals without memory from one sample to the next (lag-1
autocorrelation below ``MAX_MEMORY``). A state that merely co-varies with a product leaves
smooth, autocorrelated residuals, because a state integrates its past. The column then
becomes an observable ``scale * product`` of the states, and discovery identifies rate
laws for the remaining columns only.

Products only: a column merely proportional to another is more often a second state that
moves with the first (a settled chemostat) than a second reading of the same quantity.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from agent.discovery.terms import Term

__all__ = ["MAX_MEMORY", "MIN_R2", "Derived", "derived_columns"]

MIN_R2 = 0.6         # share of the column's log-variance the product explains
MAX_MEMORY = 0.3     # lag-1 autocorrelation of what it leaves


@dataclass(frozen=True)
class Derived:
    """``column = coefficient * term`` on the training window, explaining ``r2``."""

    column: str
    term: Term
    coefficient: float
    r2: float

    def describe(self) -> str:
        return (f"{self.column} = {self.coefficient:.4g}*{self.term.label} (explains "
                f"{self.r2:.0%} of it: read off the states, not a state)")


def _fit(y: np.ndarray, f: np.ndarray) -> tuple[float, float, float]:
    """``log y = log c + log f``: the coefficient, R^2 of log y, and the lag-1
    autocorrelation of the log residuals."""
    if not (y.min() > 0 and f.min() > 0):
        return 0.0, -np.inf, 1.0
    ly, lf = np.log(y), np.log(f)
    resid = ly - lf
    c = float(np.exp(resid.mean()))
    resid = resid - resid.mean()
    total = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float(resid @ resid) / total if total > 0 else -np.inf
    denom = float(resid @ resid)
    memory = float(resid[1:] @ resid[:-1]) / denom if denom > 0 else 1.0
    return c, r2, memory


def derived_columns(t: np.ndarray, values: Mapping[str, np.ndarray],
                    inputs: Mapping[str, Callable[[np.ndarray], np.ndarray]],
                    cols: Sequence[str]) -> list[Derived]:
    """The derived columns, best explained first; at least one column stays a state, and
    a derived column is never a factor of another's product."""
    env = {c: np.asarray(values[c], dtype=float) for c in cols}
    env.update({u: np.asarray(fn(t), dtype=float) for u, fn in inputs.items()})
    found: list[Derived] = []
    for c in cols:
        y = env[c]
        if not np.isfinite(y).all() or y.min() <= 0:
            continue
        others = [x for x in cols if x != c]
        terms = [Term("product", (u, x)) for u in inputs for x in others]
        terms += [Term("product", pair) for pair in itertools.combinations(others, 2)]
        best: Derived | None = None
        for term in terms:
            coef, r2, memory = _fit(y, term.evaluate(env))
            if coef > 0 and r2 >= MIN_R2 and abs(memory) < MAX_MEMORY and (
                    best is None or r2 > best.r2):
                best = Derived(c, term, coef, r2)
        if best is not None:
            found.append(best)
    found.sort(key=lambda d: -d.r2)
    out: list[Derived] = []
    for d in found:
        taken = {o.column for o in out}
        if d.column in {v for o in out for v in o.term.variables} or \
                taken & set(d.term.variables):
            continue
        if len(cols) - len(out) - 1 < 1:
            break
        out.append(d)
    return out
