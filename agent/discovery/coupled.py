"""Coupled identification: all states' rate laws selected together, with mass balance.

Per-state selection (:mod:`agent.discovery.identify`) treats each column alone, so it cannot
prefer the structure a mechanistic modeller would write when two supports explain one
state about equally well. Two kinds of collinearity defeat it on flow-through and
conversion systems:

* in a chemostat once the culture settles, the feed ``D * S_in``, the outflow ``D * S`` and
  ``D * X / Y`` are nearly proportional, and the substrate equation picks ``D * X``;
* in a stirred tank a first-order loss ``k * A`` and a crowding ``A**2`` look alike inside
  noise, though the intermediate's equation pins ``k * A`` down as its gain.

Mechanisms are not independent per state: a conversion ``A -> B`` is one rate that is a loss
of A and (times a yield) a gain of B, and a flow-through vessel washes every species out at
one dilution rate. This module stacks every state's weak-form regression into one problem
(each state's rows weighted by the inverse RMS of its increments, so no unit dominates) and
adds, beside each state's own terms, two kinds of shared columns:

* **flow** columns ``[-f in A's rows, +y * f in B's rows]`` for every ordered pair of states
  and every library term ``f`` that vanishes when A is zero (a loss of A must), with the
  yield ``y`` 1 and the ratios that per-state selection already found between a loss of A
  and a gain of B of the same family (a chemostat's biomass yield), and
* **dilution** columns ``[-u * x for every state x]`` for every known input ``u``: one
  coefficient washes all states out together.

A shared column costs one coefficient where two separate terms cost two, so the same
information criterion that ranks per-state supports now prefers the mass-balanced
structure when it explains the data as well. The path is pysindy's STLSQ through
:func:`agent.discovery.regression.sparse_path`, whose family and tier logic reads the
stacked terms' ``kind``, ``variables``, ``K`` and ``n`` like any term. The result is split
back into one :class:`~agent.discovery.regression.SparseModel` per state (a flow becomes a
loss of A and a gain of B of the same term, which :mod:`agent.discovery.render` turns into
one flow with its yield), so it renders, checks and fits like every discovered structure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from agent.discovery.regression import SparseModel, information_criterion, refit
from agent.discovery.terms import Term

__all__ = ["StackedTerm", "coupled_models", "system_score"]

MAX_PAIRS = 12            # ordered state pairs whose flows are offered (3-4 states)
# gain of B per loss of A: unit-free, and the same multiples of B's scale over A's (a flow
# between columns in different units: mm of soil water into metres of water table)
YIELD_GRID = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0)
MAX_ESTIMATES = 2         # yields estimated from per-state models, added to the grid
_YIELD_MATCH = 2.0        # K of a loss and a gain within this factor: the same family


@dataclass(frozen=True)
class StackedTerm:
    """A column of the stacked problem; duck-types :class:`Term` for the sparse path.

    ``role`` is ``own`` (``base`` in ``state``'s rows only), ``flow`` (``-base`` in
    ``state``'s rows, ``+yield_ * base`` in ``target``'s) or ``dilution`` (``-input * x`` in
    every state x's rows; ``base`` is then ``None``). ``variables`` carries the role and
    states as a tag so that families (same kind and variables, other K) stay within one
    role and one pair, as the regression's sibling logic expects.
    """

    kind: str
    variables: tuple[str, ...]
    K: float | None
    n: float | None
    role: str
    base: Term | None
    state: str = ""
    target: str = ""
    yield_: float = 1.0
    input: str = ""

    @classmethod
    def own(cls, term: Term, state: str) -> StackedTerm:
        return cls(term.kind, (*term.variables, f"@{state}"), term.K, term.n, "own", term,
                   state)

    @classmethod
    def flow(cls, term: Term, src: str, dst: str, y: float) -> StackedTerm:
        return cls(term.kind, (*term.variables, f"@{src}>{dst}*{y:.4g}"), term.K, term.n,
                   "flow", term, src, dst, float(y))

    @classmethod
    def dilution(cls, u: str) -> StackedTerm:
        return cls("product", (u, "@all"), None, None, "dilution", None, input=u)

    def with_k(self, K: float) -> StackedTerm:
        return replace(self, K=K, base=replace(self.base, K=K) if self.base else None)

    def with_yield(self, y: float) -> StackedTerm:
        return replace(self, yield_=float(y))


@dataclass(frozen=True)
class _Blocks:
    """The stacked problem's rows: one block per state, weighted by 1/RMS of its target."""

    cols: tuple[str, ...]
    weights: Mapping[str, float]
    rows: int

    def column(self, st: StackedTerm, base_col: np.ndarray | None,
               dilution_cols: Mapping[str, np.ndarray]) -> np.ndarray:
        out = np.zeros(self.rows * len(self.cols))
        for b, c in enumerate(self.cols):
            sl = slice(b * self.rows, (b + 1) * self.rows)
            w = self.weights[c]
            if st.role == "own" and c == st.state:
                out[sl] = w * base_col
            elif st.role == "flow" and c == st.state:
                out[sl] = -w * base_col
            elif st.role == "flow" and c == st.target:
                out[sl] = w * st.yield_ * base_col
            elif st.role == "dilution":
                out[sl] = -w * dilution_cols[c]
        return out


def _estimated_yields(per_state: Mapping[str, Sequence[SparseModel]], src: str,
                      dst: str) -> list[float]:
    """Ratios gain-of-dst / loss-of-src between same-family terms of any selected model."""
    out: list[float] = []
    for ma in per_state.get(src, ()):
        for ta, ca in zip(ma.terms, ma.coefficients, strict=True):
            if ca >= 0 or not ta.vanishes_when_zero(src):
                continue
            for mb in per_state.get(dst, ()):
                for tb, cb in zip(mb.terms, mb.coefficients, strict=True):
                    if cb <= 0 or (tb.kind, tb.variables, tb.n) != (ta.kind, ta.variables,
                                                                     ta.n):
                        continue
                    if ta.K and tb.K and max(ta.K, tb.K) / min(ta.K, tb.K) > _YIELD_MATCH:
                        continue
                    y = cb / -ca
                    if math.isfinite(y) and y > 0 and abs(math.log(y)) > math.log(1.25):
                        out.append(float(y))
    # distinct to within 25%, most frequent first
    out.sort()
    groups: list[list[float]] = []
    for y in out:
        if groups and y / groups[-1][0] < 1.25:
            groups[-1].append(y)
        else:
            groups.append([y])
    groups.sort(key=len, reverse=True)
    return [float(np.exp(np.mean(np.log(g)))) for g in groups]


def _yields(a: str, b: str, scales: Mapping[str, float],
            per_state: Mapping[str, Sequence[SparseModel]]) -> list[float]:
    """The yields offered for a flow a -> b: the unit-free grid, the grid times the ratio
    of the columns' scales when that ratio is far from 1, and per-state estimates; none
    within 25% of another."""
    ys: list[float] = []
    ratio = scales.get(b, 1.0) / scales.get(a, 1.0)
    grids = [YIELD_GRID] + ([tuple(ratio * g for g in YIELD_GRID)]
                            if math.isfinite(ratio) and ratio > 0
                            and abs(math.log(ratio)) > math.log(3.0) else [])
    cands = [y for g in grids for y in g] + _estimated_yields(per_state, a, b)[:MAX_ESTIMATES]
    for y in cands:
        if y > 0 and all(abs(math.log(y / o)) > math.log(1.25) for o in ys):
            ys.append(float(y))
    return ys


def _stacked_terms(terms: Sequence[Term], cols: Sequence[str], inputs: Sequence[str],
                   per_state: Mapping[str, Sequence[SparseModel]],
                   scales: Mapping[str, float]) -> list[StackedTerm]:
    out = [StackedTerm.own(t, c) for c in cols for t in terms]
    pairs = [(a, b) for a in cols for b in cols if a != b][:MAX_PAIRS]
    for a, b in pairs:
        for y in _yields(a, b, scales, per_state):
            out += [StackedTerm.flow(t, a, b, y) for t in terms
                    if t.kind != "constant" and t.vanishes_when_zero(a)]
    out += [StackedTerm.dilution(u) for u in inputs]
    return out


def n_parameters_of(t: StackedTerm) -> int:
    """A column's parameters: its coefficient, its K, and its yield unless that is 1."""
    return 1 + (t.K is not None) + (t.role == "flow" and t.yield_ != 1.0)


def system_score(rss_norm: Mapping[str, float], n_rows: Mapping[str, int],
                 k: int) -> float:
    """AICc of a whole system on the stacked, RMS-normalised increments: comparable
    between coupled and per-state structures (shared coefficients counted once)."""
    rss = sum(rss_norm.values())
    n = sum(n_rows.values())
    return information_criterion(rss, n, k)


def coupled_models(theta: np.ndarray, targets: Mapping[str, np.ndarray],
                   terms: Sequence[Term], cols: Sequence[str], inputs: Sequence[str],
                   columns: Callable[[Sequence[Term]], np.ndarray],
                   per_state: Mapping[str, Sequence[SparseModel]], nonneg: Mapping[str, bool],
                   *, max_terms: int, n_thresholds: int, bootstrap: int, seed: int,
                   top: int = 3, scales: Mapping[str, float] | None = None
                   ) -> list[tuple[dict[str, SparseModel], float]]:
    """The best coupled systems: per-state models (flows split into a loss and a gain of
    the same term) and each system's :func:`system_score`, best first.

    ``theta`` is the per-state weak-form feature matrix ``[R, len(terms)]`` (the same for
    every state), ``targets`` each state's increments ``[R]``, ``columns`` rebuilds
    feature columns for terms with other K (to refine them off the grid), ``scales`` each
    column's typical size (for the yields of flows between columns in different units).
    """
    ok = np.isfinite(theta).all(axis=1)
    for c in cols:
        ok &= np.isfinite(targets[c])
    if int(ok.sum()) < 3:
        return []
    # the per-state models' own terms (K refined off the grid) join the library, so the
    # coupled search can start from exactly what per-state selection found
    known = {t.label for t in terms}
    extra = list({t.label: t for c in cols for m in per_state.get(c, ())
                  for t in m.terms if t.label not in known}.values())
    if extra:
        theta = np.column_stack([theta, np.asarray(columns(extra), dtype=float)])
        terms = [*terms, *extra]
        ok &= np.isfinite(theta).all(axis=1)
    if int(ok.sum()) < 3:
        return []
    theta = theta[ok]
    rows = theta.shape[0]
    y = {c: np.asarray(targets[c], dtype=float)[ok] for c in cols}
    rms = {c: float(np.sqrt(np.mean(y[c] ** 2))) for c in cols}
    if any(not (math.isfinite(r) and r > 0) for r in rms.values()):
        return []
    blocks = _Blocks(tuple(cols), {c: 1.0 / rms[c] for c in cols}, rows)
    index = {t.label: j for j, t in enumerate(terms)}
    dil = {}
    for u in inputs:
        for c in cols:
            j = index.get(Term("product", (u, c)).label)
            if j is None:
                break
            dil.setdefault(u, {})[c] = theta[:, j]
    stacked = [s for s in _stacked_terms(terms, cols, inputs, per_state, scales or {})
               if s.role != "dilution" or s.input in dil]
    big = np.column_stack([
        blocks.column(s, theta[:, index[s.base.label]] if s.base else None,
                      dil.get(s.input, {})) for s in stacked])
    target = np.concatenate([blocks.weights[c] * y[c] for c in cols])
    sign = []
    for s in stacked:
        if s.role == "own":
            sign.append(1 if nonneg.get(s.state) and not s.base.vanishes_when_zero(s.state)
                        else 0)
        else:
            sign.append(1)
    problem = _Problem(big, target, sign, stacked, len(cols) * max_terms)
    stack = _Stack(stacked, big, target, sign, blocks, ok, columns)
    where = stack.where
    seeds: list[tuple[int, ...]] = []
    for combo in _independent_supports(per_state, cols):
        sup = [where.get(StackedTerm.own(t, c)) for c, t in combo]
        if all(j is not None for j in sup):
            seeds.append(tuple(sorted(set(sup))))  # type: ignore[arg-type]
    seeds += _projected_seeds(per_state, cols, stacked, where)
    finals: dict[tuple[int, ...], float] = {}
    for seed_support in seeds:
        sup, score = problem.improve(list(seed_support))
        finals.setdefault(tuple(sorted(sup)), score)
    out: list[tuple[dict[str, SparseModel], float]] = []
    rng = np.random.default_rng(seed)
    for sup, _ in sorted(finals.items(), key=lambda e: e[1]):
        ts = [stacked[j] for j in sup]
        if all(t.role == "own" for t in ts):
            continue  # an uncoupled support: per-state selection already ranks those
        _, coef, rss = problem.fit(list(sup))
        m = SparseModel(tuple(ts), tuple(float(c) for c in coef), rss, problem.score(sup),
                        problem.stability(list(sup), rng, bootstrap))
        m = _refine_k(m, stack)
        split = _split(m, cols, blocks, target, rows, stack.matrix)
        if split is not None:
            out.append(split)
        if len(out) >= top:
            break
    out.sort(key=lambda e: e[1])
    return out


def _independent_supports(per_state: Mapping[str, Sequence[SparseModel]],
                          cols: Sequence[str]) -> list[list[tuple[str, Term]]]:
    """Starting points of the coupled search: the per-state best models together, and each
    state's runners-up swapped in (a coupling often completes a second-best support)."""
    best = {c: per_state[c][0] for c in cols if per_state.get(c)}
    if len(best) != len(cols):
        return []
    out = [[(c, t) for c in cols for t in best[c].terms]]
    for c in cols:
        for alt in list(per_state[c])[1:3]:
            pick = {**best, c: alt}
            out.append([(k, t) for k in cols for t in pick[k].terms])
    return out


def _projected_seeds(per_state: Mapping[str, Sequence[SparseModel]], cols: Sequence[str],
                     stacked: Sequence[StackedTerm], where: Mapping[StackedTerm, int]
                     ) -> list[tuple[int, ...]]:
    """Seeds that read one state's best model as couplings and leave the other states to
    the search: its ``-u * x`` becomes the shared dilution, each gain ``f`` that vanishes
    with another state A a flow ``A -> x`` (one seed per yield), other terms stay its own.
    A well-identified state (biomass in a chemostat) thereby hands its mechanism to a
    poorly identified one (the substrate), which per-state seeds cannot do."""
    out: list[tuple[int, ...]] = []
    for c in cols:
        if not per_state.get(c):
            continue
        fixed: list[int] = []
        flows: list[list[int]] = []
        for term, coef in zip(per_state[c][0].terms, per_state[c][0].coefficients,
                              strict=True):
            if term.kind == "product" and coef < 0 and len(term.variables) == 2 \
                    and term.variables[1] == c:
                dil = StackedTerm.dilution(term.variables[0])
                if dil in where:
                    fixed.append(where[dil])
                    continue
            options = [j for j, s in enumerate(stacked) if s.role == "flow" and coef > 0
                       and s.target == c and s.base == term]
            if options:
                flows.append(options)
                continue
            own = StackedTerm.own(term, c)
            if own in where:
                fixed.append(where[own])
        if not flows:
            continue
        for options in flows:  # one flow at a time, every yield of it
            for j in options:
                out.append(tuple(sorted({*fixed, j})))
    return out


class _Problem:
    """The stacked least-squares problem and the stepwise search on it.

    A support is scored by AICc on the stacked residuals of its sign-constrained refit,
    with one parameter per coefficient, per half-saturation constant and per yield other
    than 1. The search moves (drop a term, add a column, swap a term for a column) and
    keeps the best improving move until none improves: the sparse path proposes supports,
    this completes them; coupling columns are what it adds that per-state selection could
    not. A support may not hold one base term twice in one state's equation.
    """

    def __init__(self, big: np.ndarray, target: np.ndarray, sign: Sequence[int],
                 terms: Sequence[StackedTerm], max_size: int) -> None:
        self.big, self.target, self.sign = big, target, list(sign)
        self._terms, self.max_size = list(terms), max_size
        self._states = sorted({t.state for t in terms if t.role == "own"})
        self._cache: dict[tuple[int, ...], float] = {}

    def fit(self, sup: list[int]) -> tuple[list[int], np.ndarray, float]:
        return refit(self.big, self.target, sup, self.sign)

    def k(self, sup: Sequence[int]) -> int:
        return sum(n_parameters_of(self._terms[j]) for j in sup)

    def score(self, sup: Sequence[int]) -> float:
        key = tuple(sorted(sup))
        if key not in self._cache:
            kept, _, rss = self.fit(list(key))
            self._cache[key] = (information_criterion(rss, self.target.size, self.k(key))
                                if len(kept) == len(key) else math.inf)
        return self._cache[key]

    def _places(self, j: int) -> set[tuple[str, str]]:
        """(equation, base term) pairs a column writes: a support may hold each once."""
        t = self._terms[j]
        if t.base is None:  # dilution: u * x in every state's equation
            return {(c, Term("product", (t.input, c)).label) for c in self._states}
        eqs = [t.state] + ([t.target] if t.role == "flow" else [])
        return {(c, t.base.label) for c in eqs}

    def _valid(self, sup: Sequence[int]) -> bool:
        seen: set[tuple[str, str]] = set()
        for j in sup:
            places = self._places(j)
            if places & seen:
                return False
            seen |= places
        return True

    def _merge(self, sup: Sequence[int], j: int) -> list[int]:
        """``sup`` with column ``j`` added and every column writing the same term into the
        same equation removed: a coupling column replaces the separate terms it unites."""
        places = self._places(j)
        return [*(k for k in sup if not self._places(k) & places), j]

    def _scored(self, trials: Sequence[list[int]]) -> list[tuple[float, list[int]]]:
        out = [(self.score(t), t) for t in trials if t and self._valid(t)]
        return sorted(out, key=lambda e: e[0])

    def _descend(self, sup: list[int], current: float) -> tuple[list[int], float]:
        """Drop terms while that improves the score (a merged coupling column often makes
        separate terms of the other state redundant only together)."""
        while len(sup) > 1:
            drops = self._scored([[*sup[:i], *sup[i + 1:]] for i in range(len(sup))])
            if not drops or drops[0][0] >= current - 1e-9:
                break
            current, sup = drops[0]
        return sup, current

    def improve(self, sup: list[int], max_moves: int = 40,
                lookahead: int = 16) -> tuple[list[int], float]:
        """Best-improvement stepwise search from ``sup``. Moves: drop a term; add a column
        (a coupling column replacing the separate terms it unites), judged after dropping
        what it made redundant, for the ``lookahead`` most promising additions; swap one
        term for another column only when nothing else improves."""
        if not self._valid(sup):
            sup = [j for j in sup if self._terms[j].role == "own"]
        current = self.score(sup)
        n_cols = len(self._terms)
        for _ in range(max_moves):
            drops = self._scored([[*sup[:i], *sup[i + 1:]] for i in range(len(sup))])
            merged = (self._merge(sup, j) for j in range(n_cols) if j not in sup)
            adds = self._scored([m for m in merged if len(m) <= self.max_size])
            options = drops[:1] + [self._descend(t, sc)[::-1] for sc, t in adds[:lookahead]]
            options = [o for o in options if o[0] < current - 1e-9]
            if not options:
                options = self._scored([[*sup[:i], j, *sup[i + 1:]] for i in range(len(sup))
                                        for j in range(n_cols) if j not in sup])[:1]
                options = [o for o in options if o[0] < current - 1e-9]
            if not options:
                break
            current, sup = min(options, key=lambda e: e[0])
        return sup, current

    def stability(self, sup: list[int], rng: np.random.Generator,
                  n: int) -> tuple[float, ...]:
        """Per term, the fraction of row resamples (bagging) on which removing the term
        makes the AICc worse: how firmly the data hold it in the support."""
        if n <= 0:
            return tuple(1.0 for _ in sup)
        hits = np.zeros(len(sup))
        rows = self.target.size
        for _ in range(n):
            idx = rng.integers(0, rows, rows)
            sub = _Problem(self.big[idx], self.target[idx], self.sign, self._terms,
                           self.max_size)
            full = sub.score(sup)
            for i in range(len(sup)):
                reduced = [*sup[:i], *sup[i + 1:]]
                if not reduced or sub.score(reduced) > full:
                    hits[i] += 1
        return tuple(float(h / n) for h in hits)


@dataclass
class _Stack:
    """The stacked problem's columns, for supports whose K or yield moved off the grid:
    read from ``big`` when the term is one of the library's, rebuilt (weak form, then
    stacked) otherwise, each rebuilt base column computed once per problem."""

    stacked: Sequence[StackedTerm]
    big: np.ndarray
    target: np.ndarray
    sign: Sequence[int]
    blocks: _Blocks
    ok: np.ndarray
    columns: Callable[[Sequence[Term]], np.ndarray]
    where: dict[StackedTerm, int] = field(init=False)
    _bases: dict[Term, np.ndarray] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.where = {s: j for j, s in enumerate(self.stacked)}

    def matrix(self, ts: Sequence[StackedTerm]) -> np.ndarray:
        out = []
        for t in ts:
            j = self.where.get(t)
            if j is not None:
                out.append(self.big[:, j])
                continue
            if t.base not in self._bases:
                self._bases[t.base] = np.asarray(self.columns([t.base]))[:, 0][self.ok]
            out.append(self.blocks.column(t, self._bases[t.base], {}))
        return np.column_stack(out)


def _refine_k(m: SparseModel, stack: _Stack) -> SparseModel:
    """Each K and each flow's yield by a bounded search on its log (a factor 2 either side,
    about the grids' spacing, as the per-state refinement does), the support and its signs
    kept; then a refit."""
    from scipy.optimize import minimize_scalar

    ts = list(m.terms)
    if not any(t.K is not None or t.role == "flow" for t in ts):
        return m
    target = stack.target
    signs = [stack.sign[stack.where[t]] for t in ts]
    worst = 10.0 * float(target @ target) + 1.0

    def rss_of(trial: Sequence[StackedTerm]) -> float:
        a = stack.matrix(trial)
        if not np.isfinite(a).all():
            return worst
        kept, _, rss = refit(a, target, list(range(len(trial))), signs)
        return rss if len(kept) == len(trial) else worst

    for i in range(len(ts)):
        for what in ("K", "yield"):
            term = ts[i]
            if (what == "K" and term.K is None) or (what == "yield" and (
                    term.role != "flow" or term.yield_ == 1.0)):  # 1: a conversion, kept
                continue
            x0 = math.log(term.K if what == "K" else term.yield_)

            def make(logx: float, term: StackedTerm = term, what: str = what) -> StackedTerm:
                return term.with_k(math.exp(logx)) if what == "K" else \
                    term.with_yield(math.exp(logx))

            def loss(logx: float, i: int = i, make: Callable = make) -> float:
                return rss_of([*ts[:i], make(logx), *ts[i + 1:]])

            res = minimize_scalar(loss, bounds=(x0 - math.log(2), x0 + math.log(2)),
                                  method="bounded", options={"xatol": 1e-3})
            if float(res.fun) < min(loss(x0), worst):
                ts[i] = make(float(res.x))
    kept, coef, rss = refit(stack.matrix(ts), target, list(range(len(ts))), signs)
    if len(kept) != len(ts):
        return m
    return SparseModel(tuple(ts), tuple(float(c) for c in coef), rss, m.score, m.stability)


def _split(m: SparseModel, cols: Sequence[str], blocks: _Blocks, target: np.ndarray,
           rows: int, columns_of: Callable[[Sequence[StackedTerm]], np.ndarray]
           ) -> tuple[dict[str, SparseModel], float] | None:
    """Per-state models of one stacked support and the system score (shared
    coefficients counted once)."""
    pred = columns_of(m.terms) @ np.asarray(m.coefficients)
    resid = target - pred
    per: dict[str, tuple[list[Term], list[float], list[float]]] = {c: ([], [], [])
                                                                  for c in cols}
    for t, coef, stab in zip(m.terms, m.coefficients, m.stability, strict=True):
        if t.role == "own":
            per[t.state][0].append(t.base)
            per[t.state][1].append(coef)
            per[t.state][2].append(stab)
        elif t.role == "flow":
            per[t.state][0].append(t.base)
            per[t.state][1].append(-coef)
            per[t.state][2].append(stab)
            per[t.target][0].append(t.base)
            per[t.target][1].append(coef * t.yield_)
            per[t.target][2].append(stab)
        else:
            for c in cols:
                per[c][0].append(Term("product", (t.input, c)))
                per[c][1].append(-coef)
                per[c][2].append(stab)
    eqs: dict[str, SparseModel] = {}
    rss_norm: dict[str, float] = {}
    for b, c in enumerate(cols):
        ts, cs, ss = per[c]
        if not ts:
            return None
        r = resid[b * rows:(b + 1) * rows]
        rss_n = float(r @ r) / rows  # mean square, the target block has unit RMS
        rss_norm[c] = float(r @ r)
        w = blocks.weights[c]
        eqs[c] = SparseModel(tuple(ts), tuple(float(v) for v in cs),
                             float(r @ r) / w**2, information_criterion(rss_n, rows,
                                                                        len(ts)),
                             tuple(ss))
    k = sum(n_parameters_of(t) for t in m.terms)
    return eqs, system_score(rss_norm, {c: rows for c in cols}, k)
