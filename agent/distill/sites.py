"""Where a model misses, and the hybrid that lets a network learn what it misses.

Works on the :class:`Model` itself (rebuilt from a node's model JSON), never on a proposer's
own spec, so any candidate gets it: the offline library's, discovery's, or an LLM's
free-form module.

* A *site* is one place a rate is written: a flow, or a direct rate term ``m.rate``.
  Sites whose rates are a state-free multiple of each other (predation and the predator
  births it feeds, ``beta*H*P`` and ``eps*beta*H*P``; substrate uptake and biomass growth
  with a yield) describe one event, so they are *coupled*: they get one learned factor and
  later one closed form.
* :func:`misfit` reads a fitted node's residuals and says, per observed series, whether the
  misfit is systematic (the rule is on :class:`MisfitRule`); :func:`suspect_sites` turns that
  into a ranking of the sites to blame.
* :func:`hybrid_of` multiplies the suspect rate by ``exp(g(inputs))``, a neural term over the
  states and controls the rate reads. A fresh network outputs exactly 0, so the hybrid starts
  as the mechanistic model and the fit learns only the missing factor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from mechanistic.expr import expr_to_json
from mechanistic.model import Flow, Model, RateTerm
from mechanistic.serialize import model_from_dict, model_to_dict

__all__ = [
    "MisfitRule",
    "RateSite",
    "SeriesMisfit",
    "coupled_sites",
    "fresh_name",
    "hybrid_of",
    "misfit",
    "proportionality",
    "rate_sites",
    "reads",
    "runs_z",
    "site_of",
    "skeleton",
    "suspect_sites",
]


@dataclass(frozen=True)
class RateSite:
    """One written rate: flow ``name`` or the ``index``-th direct rate term.

    ``key`` is how callers name it (the flow's name, or ``rate[i]``); ``slug`` is the same as
    an identifier, for naming new parameters and neural terms.
    """

    kind: str  # "flow" | "rate"
    index: int
    key: str
    slug: str
    expr: sp.Expr
    changes: tuple[str, ...]  # the states whose dX/dt it enters

    def with_expr(self, data: dict[str, Any], expr: sp.Basic, neural: Sequence[str]) -> None:
        """Write ``expr`` into this site's place in a model dict."""
        node = expr_to_json(expr, neural)
        if self.kind == "flow":
            data["flows"][self.index]["rate"] = node
        else:
            data["rates"][self.index]["expr"] = node


def rate_sites(model: Model) -> list[RateSite]:
    """Every flow, then every direct rate term, in declaration order."""
    out = []
    for i, f in enumerate(model.flows):
        changes = tuple(s for s in (f.source, f.target) if s is not None)
        out.append(RateSite("flow", i, f.name, f.name, f.rate, changes))
    for i, r in enumerate(model.rates):
        out.append(RateSite("rate", i, f"rate[{i}]", f"{r.state}_rate{i}", r.expr, (r.state,)))
    return out


def site_of(model: Model, flow_or_rate: str | int | Flow | RateTerm) -> RateSite:
    """The site a caller names: a flow (by name or object), ``rate[i]`` or a RateTerm."""
    sites = rate_sites(model)
    if isinstance(flow_or_rate, Flow):
        flow_or_rate = flow_or_rate.name
    elif isinstance(flow_or_rate, RateTerm):
        flow_or_rate = f"rate[{model.rates.index(flow_or_rate)}]"
    elif isinstance(flow_or_rate, int) and not isinstance(flow_or_rate, bool):
        flow_or_rate = f"rate[{flow_or_rate}]"
    for site in sites:
        if site.key == flow_or_rate:
            return site
    raise ValueError(f"{model.name!r} has no flow or rate term {flow_or_rate!r}; sites: "
                     f"{[s.key for s in sites]}")


def skeleton(expr: sp.Basic) -> sp.Basic:
    """``expr`` with every neural term set to 0: ``r*exp(g)`` becomes ``r``, ``r + g``
    becomes ``r`` (the mechanism a fresh network starts from)."""
    calls = sp.sympify(expr).atoms(AppliedUndef)
    return sp.sympify(expr).xreplace({c: sp.Integer(0) for c in calls}) if calls else expr


def _dynamic_names(model: Model) -> set[str]:
    return {*model.states_, *model.controls_, "t"}


def reads(model: Model, expr: sp.Basic) -> list[str]:
    """States, then controls, that ``expr`` reads, in declaration order."""
    names = {s.name for s in sp.sympify(expr).free_symbols}
    return [n for n in (*model.states_, *model.controls_) if n in names]


def coupled_sites(model: Model, site: RateSite) -> list[tuple[RateSite, sp.Expr]]:
    """Other sites whose (skeleton) rate is ``rho * rate`` with ``rho`` free of states,
    controls and time, with their ``rho``: the same event seen from another state."""
    out = []
    for other in rate_sites(model):
        if other.key == site.key:
            continue
        rho = proportionality(model, skeleton(other.expr), skeleton(site.expr))
        if rho is not None:
            out.append((other, rho))
    return out


def proportionality(model: Model, rate: sp.Basic, base: sp.Basic) -> sp.Expr | None:
    """``rho`` with ``rate = rho * base`` and ``rho`` free of states, controls, time and
    neural terms, or None."""
    if rate == 0 or base == 0:
        return None
    dynamic = _dynamic_names(model)
    rho = rate / base  # a Mul cancels common factors by itself
    if {s.name for s in rho.free_symbols} & dynamic:
        rho = sp.cancel(rho)  # rational functions (``S*I/N`` over ``beta*S*I/N``)
    if rho == 0 or {s.name for s in rho.free_symbols} & dynamic or rho.atoms(AppliedUndef):
        return None
    return rho


def fresh_name(model: Model, base: str, taken: set[str] | None = None) -> str:
    """``base``, or ``base_2``, ``base_3``, ... : a name no declaration of ``model`` uses."""
    used = {*model.symbols, *model.functions, *model.observables_, *(taken or set())}
    if base not in used:
        return base
    i = 2
    while f"{base}_{i}" in used:
        i += 1
    return f"{base}_{i}"


def hybrid_of(model: Model, flow_or_rate: str | int | Flow | RateTerm, *,
              hidden: Sequence[int] = (16, 16)) -> Model:
    """The model with the suspect rate ``r`` replaced by ``r * exp(g(inputs))``.

    ``g`` is a new neural term over the states and controls ``r`` reads (a rate that reads
    none, such as an unregulated production, gets every state, up to three, since what it
    should depend on is the unknown). Coupled sites (:func:`coupled_sites`) get the same
    factor, so the event stays one event. Raises ValueError when the site already has a
    neural term.
    """
    site = site_of(model, flow_or_rate)
    if site.expr.atoms(AppliedUndef):
        raise ValueError(f"{site.key} already has a neural term")
    inputs = reads(model, site.expr)
    if not inputs:
        states = list(model.states_)
        inputs = states if len(states) <= 3 else list(site.changes)
    name = fresh_name(model, f"g_{site.slug}")
    g = sp.Function(name)(*[sp.Symbol(x) for x in inputs])
    neural = [*model.neural_, name]
    data = model_to_dict(model)
    data["neural"].append({
        "name": name, "inputs": [expr_to_json(sp.Symbol(x)) for x in inputs],
        "hidden": [int(h) for h in hidden], "activation": "tanh",
        "doc": f"learned factor exp({name}) on {site.key} (distillation hybrid)",
    })
    for s in [site, *(other for other, _ in coupled_sites(model, site))]:
        if s.expr.atoms(AppliedUndef):
            continue
        s.with_expr(data, s.expr * sp.exp(g), neural)
    return model_from_dict(data)


# ------------------------------------------------------------------ residual reading
@dataclass(frozen=True)
class MisfitRule:
    """When a fitted node's residuals show a *systematic* misfit (not just noise).

    A series misfits when either

    * its residual signs form too few runs: the Wald-Wolfowitz z of the signs of
      ``observed - predicted`` over the training and validation windows is at most
      ``runs_z`` (needs the fitted model in memory and ``min_points`` values). Noise flips
      the sign at random; a missing mechanism leaves long stretches on one side. This is the
      main test, and it does not care how large the noise is; or
    * on the validation window (the training one if there is none), the normalised RMSE is
      at least ``nrmse`` *and* the bias is at least ``bias_ratio`` of the RMSE: a forecast
      that drifts off to one side. Large noise alone gives a large nrmse with a small bias,
      so it does not count.
    """

    runs_z: float = -2.5
    nrmse: float = 0.15
    bias_ratio: float = 0.5
    min_points: int = 10

    def __post_init__(self) -> None:
        if not (math.isfinite(self.runs_z) and self.runs_z < 0):
            raise ValueError(f"MisfitRule.runs_z must be a negative number, got {self.runs_z}")
        if not (math.isfinite(self.nrmse) and self.nrmse > 0):
            raise ValueError(f"MisfitRule.nrmse must be positive, got {self.nrmse}")
        if not 0 < self.bias_ratio <= 1:
            raise ValueError(f"MisfitRule.bias_ratio must be in (0, 1], got {self.bias_ratio}")
        if not isinstance(self.min_points, int) or self.min_points < 4:
            raise ValueError(f"MisfitRule.min_points must be an integer >= 4, "
                             f"got {self.min_points!r}")


@dataclass(frozen=True)
class SeriesMisfit:
    """One observed series: its residual statistics and the verdict."""

    name: str
    nrmse: float
    bias_ratio: float
    runs_z: float | None
    systematic: bool

    @property
    def severity(self) -> float:
        """Both signals in units of their thresholds (default rule), for ranking sites."""
        runs = max(0.0, -(self.runs_z or 0.0)) / 2.5
        return runs + self.nrmse / 0.15 * (0.5 + self.bias_ratio)


def runs_z(residuals: np.ndarray) -> float | None:
    """Wald-Wolfowitz runs test on the signs of ``residuals`` (zeros and NaN dropped): the
    z-score of the number of runs, negative when there are too few. None when one sign is
    missing or there are too few values to say."""
    r = np.asarray(residuals, dtype=float)
    signs = np.sign(r[np.isfinite(r) & (r != 0)])
    n = signs.size
    n1, n2 = int((signs > 0).sum()), int((signs < 0).sum())
    if n < 4 or n1 == 0 or n2 == 0:
        return None
    runs = 1 + int((signs[1:] != signs[:-1]).sum())
    mean = 2.0 * n1 * n2 / n + 1
    var = 2.0 * n1 * n2 * (2.0 * n1 * n2 - n) / (n * n * (n - 1))
    return float((runs - mean) / math.sqrt(var)) if var > 0 else None


def misfit(fit: Mapping[str, Any] | None, series_residuals: Mapping[str, np.ndarray] | None,
           rule: MisfitRule | None = None) -> dict[str, SeriesMisfit]:
    """Per observed series, from a node's fit dict (the summaries) and, when the fitted model
    is at hand, the residual series ``observed - predicted`` over train and validation."""
    rule = rule or MisfitRule()
    fit = fit or {}
    summaries = fit.get("validation_residuals") or fit.get("train_residuals") or {}
    names = list(dict.fromkeys([*summaries, *(series_residuals or {})]))
    out = {}
    for name in names:
        s = summaries.get(name) or {}
        nrmse = float(s.get("nrmse") or 0.0)
        rmse = float(s.get("rmse") or 0.0)
        ratio = abs(float(s.get("bias") or 0.0)) / rmse if rmse > 0 else 0.0
        z = None
        series = (series_residuals or {}).get(name)
        if series is not None and np.isfinite(series).sum() >= rule.min_points:
            z = runs_z(series)
        systematic = (z is not None and z <= rule.runs_z) or (
            math.isfinite(nrmse) and nrmse >= rule.nrmse and ratio >= rule.bias_ratio)
        out[name] = SeriesMisfit(name, nrmse if math.isfinite(nrmse) else 1e3, ratio, z,
                                 bool(systematic))
    return out


def suspect_sites(model: Model, misfits: Mapping[str, SeriesMisfit]) -> list[RateSite]:
    """Sites to blame, most suspect first; only sites without a neural term, one per
    coupled group (its first member).

    A site is scored by the severity of the systematically misfit series whose states it
    changes (its own and its coupled sites' sources and targets): a site that moves two
    misfit series explains more than one that moves one. Ties go to a rate with a single
    state factor (``k*C`` rather than a constant inflow or a product), the classic shape of
    a missed saturation, whose learned correction is best determined.
    """
    bad = {n: m for n, m in misfits.items() if m.systematic}
    if not bad:
        return []
    reads_obs: dict[str, set[str]] = {
        o.name: {s.name for s in o.expr.free_symbols} & set(model.states_)
        for o in model.observables_.values()}
    grouped: set[str] = set()
    scored = []
    for order, site in enumerate(rate_sites(model)):
        if site.key in grouped or site.expr.atoms(AppliedUndef):
            continue
        group = [site, *(other for other, _ in coupled_sites(model, site))]
        grouped |= {s.key for s in group}
        changes = {x for s in group for x in s.changes}
        score = sum(m.severity for n, m in bad.items() if reads_obs.get(n, set()) & changes)
        if score <= 0:
            continue
        n_states = len([x for x in reads(model, site.expr) if x in model.states_])
        shape = 0 if n_states == 1 else 1 if n_states == 0 else 2
        scored.append((-score, shape, order, site))
    return [s for *_, s in sorted(scored, key=lambda item: item[:3])]
