"""Candidate terms of a right-hand side: the library that structure identification selects from.

Discovery writes ``dX/dt`` as a sparse sum ``sum_j c_j * term_j(states, inputs)``. The terms
are the textbook building blocks of mechanistic models, so a selected support reads as a
mechanism rather than a polynomial fit:

* ``constant`` (a fixed inflow), ``linear`` (``x``: first-order growth, decay or washout),
* ``product`` / ``square`` (mass action ``x*y``; ``x**2`` for logistic crowding), and
  ``u*x`` for a known input ``u`` (a dilution rate washes a state out, an effort harvests it),
* ``saturating`` (``x/(K+x)``) and ``saturating_product`` (``x*y/(K+x)``: Michaelis-Menten,
  Monod uptake, a Holling type II functional response), with ``K`` on a grid of multiples of
  the variable's observed scale, since K is not linear in the regression,
* ``hill_activation`` (``x^n/(K^n+x^n)``) and ``hill_repression`` (``1/(1+(x/K)^n)``), alone or
  times another state.

Library size: with the default config (degree 2, 4 saturation constants, one Hill exponent),
2 states and 1 input give 57 terms: 1 constant + 3 linear + 5 products (``x*y``, two squares,
two ``u*x``) + 8 saturating + 8 saturating products + 16 Hill activations (8 alone, 8 times
the other state) + 16 Hill repressions. :func:`build_library` documents the rule.

``Term.evaluate`` (numpy, for the regression) and ``Term.expression`` (model-language text,
for the rendered module) implement the same formula; the tests check one against the other
through sympy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["KINDS", "Term", "TermLibraryConfig", "build_library", "feature_matrix"]

KINDS = ("constant", "linear", "product", "square", "saturating", "saturating_product",
         "hill_activation", "hill_repression")

# How many variables each kind reads: (fewest, most); ``None`` means "degree-limited".
_ARITY: dict[str, tuple[int, int | None]] = {
    "constant": (0, 0), "linear": (1, 1), "product": (2, None), "square": (1, 1),
    "saturating": (1, 1), "saturating_product": (2, 2), "hill_activation": (1, 2),
    "hill_repression": (1, 2),
}


def _fmt(value: float) -> str:
    """A constant as short, readable text for labels (``2.5``, ``0.03``, ``1.2e+04``)."""
    return f"{value:.4g}"


def _src(value: float) -> str:
    """A constant as model-language source: exact enough to reproduce the library's value."""
    return repr(float(value))


@dataclass(frozen=True)
class Term:
    """One candidate term, without its coefficient.

    ``variables`` is ordered: for ``saturating_product`` it is ``(x, y)`` meaning
    ``x * y / (K + x)`` (x saturates, y multiplies); for the Hill kinds ``(x,)`` or ``(x, y)``
    with ``y`` the optional multiplier; for ``product`` the factors (repeats allowed at
    degree 3, e.g. ``(x, x, y)``).
    """

    kind: str
    variables: tuple[str, ...]
    K: float | None = None
    n: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown term kind {self.kind!r}; one of {', '.join(KINDS)}")
        object.__setattr__(self, "variables", tuple(self.variables))
        lo, hi = _ARITY[self.kind]
        k = len(self.variables)
        if k < lo or (hi is not None and k > hi):
            raise ValueError(f"a {self.kind} term reads {lo}..{hi or 'n'} variables, got {k}")
        needs_k = self.kind in ("saturating", "saturating_product", "hill_activation",
                                "hill_repression")
        if needs_k and (self.K is None or not math.isfinite(self.K) or self.K <= 0):
            raise ValueError(f"a {self.kind} term needs a positive half-saturation K")
        if self.kind.startswith("hill") and (self.n is None or not self.n > 0):
            raise ValueError(f"a {self.kind} term needs a positive Hill exponent n")

    # ------------------------------------------------------------------ text
    @property
    def label(self) -> str:
        """Readable and unique within a library, e.g. ``S*X/(K+S) [K=2.5]``."""
        v = self.variables
        if self.kind == "constant":
            return "1"
        if self.kind == "linear":
            return v[0]
        if self.kind == "square":
            return f"{v[0]}^2"
        if self.kind == "product":
            return "*".join(v)
        if self.kind == "saturating":
            return f"{v[0]}/(K+{v[0]}) [K={_fmt(self.K or 0)}]"
        if self.kind == "saturating_product":
            return f"{v[0]}*{v[1]}/(K+{v[0]}) [K={_fmt(self.K or 0)}]"
        n = _fmt(self.n or 0)
        if self.kind == "hill_activation":
            core = f"{v[0]}^n/(K^n+{v[0]}^n)"
        else:
            core = f"1/(1+({v[0]}/K)^n)"
        times = f"{v[1]}*" if len(v) > 1 else ""
        return f"{times}{core} [K={_fmt(self.K or 0)}, n={n}]"

    def expression(self, K: str | None = None) -> str:
        """Model-language source of the term (no coefficient): ``S * X / (Km + S)`` when
        ``K="Km"``, the library's number inlined when ``K`` is None. The Hill exponent is
        always inlined (it is a structural choice, not a fitted parameter)."""
        v = self.variables
        if self.kind == "constant":
            return "1"
        if self.kind == "linear":
            return v[0]
        if self.kind == "square":
            return f"{v[0]}**2"
        if self.kind == "product":
            return " * ".join(v)
        k = K if K is not None else _src(self.K or 0.0)
        if self.kind == "saturating":
            return f"{v[0]} / ({k} + {v[0]})"
        if self.kind == "saturating_product":
            return f"{v[0]} * {v[1]} / ({k} + {v[0]})"
        n = _src(self.n or 0.0)
        if self.kind == "hill_activation":
            core = f"{v[0]}**{n} / ({k}**{n} + {v[0]}**{n})"
        else:
            core = f"1 / (1 + ({v[0]} / {k})**{n})"
        return f"{v[1]} * {core}" if len(v) > 1 else core

    # ---------------------------------------------------------------- values
    def evaluate(self, env: Mapping[str, np.ndarray]) -> np.ndarray:
        """The term on arrays of its variables (all of one shape); float64."""
        v = self.variables
        if self.kind == "constant":
            shape = np.shape(next(iter(env.values()))) if env else ()
            return np.ones(shape, dtype=float)
        x = np.asarray(env[v[0]], dtype=float)
        if self.kind == "linear":
            return x.copy()
        if self.kind == "square":
            return x * x
        if self.kind == "product":
            out = x.copy()
            for name in v[1:]:
                out = out * np.asarray(env[name], dtype=float)
            return out
        K = float(self.K or 0.0)
        if self.kind == "saturating":
            return x / (K + x)
        if self.kind == "saturating_product":
            return x * np.asarray(env[v[1]], dtype=float) / (K + x)
        n = float(self.n or 0.0)
        with np.errstate(invalid="ignore"):
            if self.kind == "hill_activation":
                core = x**n / (K**n + x**n)
            else:
                core = 1.0 / (1.0 + (x / K) ** n)
        return core * np.asarray(env[v[1]], dtype=float) if len(v) > 1 else core

    def vanishes_when_zero(self, name: str) -> bool:
        """Whether the term is 0 whenever ``name`` is 0 (whatever the other variables are).

        This is what the non-negativity check asks of a loss term in ``d name/dt``.
        """
        if self.kind == "constant":
            return False
        if self.kind == "hill_repression":
            return name in self.variables[1:]  # 1/(1+(x/K)^n) is 1 at x = 0
        return name in self.variables


@dataclass(frozen=True)
class TermLibraryConfig:
    """Which terms :func:`build_library` generates.

    ``saturation_grid`` holds K as multiples of each variable's scale (so it is unit-free);
    ``degree`` bounds mass-action products of states (2: ``x*y`` and ``x^2``; 3 adds the
    triples). ``include_hill`` turns the Hill kinds off for a smaller library.
    """

    degree: int = 2
    saturation_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)
    hill_n: tuple[float, ...] = (2.0,)
    include_hill: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "saturation_grid", tuple(float(k) for k in
                                                          self.saturation_grid))
        object.__setattr__(self, "hill_n", tuple(float(n) for n in self.hill_n))
        if not isinstance(self.degree, int) or not 1 <= self.degree <= 3:
            raise ValueError(f"degree must be 1, 2 or 3, got {self.degree!r}")
        if any(not (math.isfinite(k) and k > 0) for k in self.saturation_grid):
            raise ValueError(f"saturation_grid must hold positive multiples, got "
                             f"{self.saturation_grid}")
        if len(set(self.saturation_grid)) != len(self.saturation_grid):
            raise ValueError("saturation_grid has repeated values")
        if self.include_hill and (not self.hill_n or
                                  any(not (math.isfinite(n) and n > 0) for n in self.hill_n)):
            raise ValueError(f"hill_n must hold positive exponents, got {self.hill_n}")


def build_library(variables: Sequence[str], scales: Mapping[str, float], *,
                  inputs: Sequence[str] = (),
                  config: TermLibraryConfig | None = None) -> list[Term]:
    """The candidate terms over ``variables`` (states) and known ``inputs``.

    In order: constant; linear in every state and input; state products up to
    ``config.degree`` (squares included); ``u*x`` for every input and state; for every
    state x and K in ``scale[x] * saturation_grid``: ``x/(K+x)`` and ``x*y/(K+x)`` for every
    other state y; with Hill terms, the same for both Hill kinds and each exponent. Inputs
    enter only linearly and as ``u*x`` (inflow and washout), since they are set by the
    experimenter and rarely saturate. Duplicates (e.g. a Hill activation with n = 1, which
    is a saturating term) are dropped. A missing or non-positive scale counts as 1.
    """
    cfg = config or TermLibraryConfig()
    states = list(dict.fromkeys(variables))
    ins = [u for u in dict.fromkeys(inputs) if u not in states]

    def scale(name: str) -> float:
        s = float(scales.get(name, 1.0))
        return s if math.isfinite(s) and s > 0 else 1.0

    terms: list[Term] = [Term("constant", ())]
    terms += [Term("linear", (x,)) for x in [*states, *ins]]
    for deg in range(2, cfg.degree + 1):
        for combo in itertools.combinations_with_replacement(states, deg):
            if deg == 2 and combo[0] == combo[1]:
                terms.append(Term("square", (combo[0],)))
            else:
                terms.append(Term("product", combo))
    terms += [Term("product", (u, x)) for u in ins for x in states]
    grids = {x: [scale(x) * k for k in cfg.saturation_grid] for x in states}
    for x in states:
        others = [y for y in states if y != x]
        for K in grids[x]:
            terms.append(Term("saturating", (x,), K=K))
            terms += [Term("saturating_product", (x, y), K=K) for y in others]
    if cfg.include_hill:
        for kind in ("hill_activation", "hill_repression"):
            for x in states:
                others = [y for y in states if y != x]
                for K in grids[x]:
                    for n in cfg.hill_n:
                        terms.append(Term(kind, (x,), K=K, n=n))
                        terms += [Term(kind, (x, y), K=K, n=n) for y in others]
    out: list[Term] = []
    seen: set[str] = set()
    for term in terms:
        key = _canonical(term)
        if key not in seen:
            seen.add(key)
            out.append(term)
    return out


def _canonical(term: Term) -> str:
    """A key equal for terms with the same formula (Hill n=1 activation == saturating)."""
    if term.kind == "hill_activation" and term.n == 1.0:
        v = term.variables
        alias = Term("saturating", v, K=term.K) if len(v) == 1 else Term(
            "saturating_product", v, K=term.K)
        return alias.label
    return term.label


def feature_matrix(terms: Sequence[Term], env: Mapping[str, np.ndarray]) -> np.ndarray:
    """``[T, n_terms]``: every term evaluated on the same samples (float64)."""
    shape = np.shape(next(iter(env.values()))) if env else (0,)
    if not terms:
        return np.zeros((shape[0] if shape else 1, 0))
    return np.column_stack([np.broadcast_to(t.evaluate(env), shape) for t in terms]
                           ).astype(float)
