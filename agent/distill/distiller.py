"""Symbolic distillation: from a misfit, through a hybrid, back to a mechanism.

Two refinements, both on the :class:`Model` (any proposer's candidate gets them):

1. a valid candidate whose residuals show a systematic misfit gets *hybrid* children:
   the suspect rate ``r`` becomes ``r * exp(g(inputs))`` (:func:`agent.distill.sites.
   hybrid_of`), which the search fits like any candidate (the fitter trains neural terms);
2. a fitted hybrid gets a *distilled* child: the learned rate (the whole rate expression,
   network included) is evaluated along the fitted trajectory over the training window,
   regressed on the term library (:mod:`agent.distill.closed_form`), and the closed form
   replaces the rate in the pre-neural model, with its constants as new parameters whose
   priors sit around the values found. The result is mechanistic again: equations a person
   can read, and counterfactuals that extrapolate where the network's would not.

How the closed form is written into the model, so that the child reads like the parent:
the skeleton rate ``r = C * M`` (``C`` the factors free of states and controls) keeps its
coefficient when ``C`` is one free parameter ``p`` (times a number) that nothing outside the
rate (and its coupled rates) reads: ``k*C`` becomes ``k*C/(K_C + C)``, with ``k``'s prior
re-centred on the new value (it is now the maximal rate). Otherwise a new coefficient
``v_<rate>`` replaces ``C``. Further terms enter as ``w_<rate>_<j>`` times the leading one,
so coupled rates (``rho * r``: the predator births a predation feeds) become ``rho`` times
the new rate and the event stays one event. Parameters nothing reads any more are dropped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
import torch
from sympy.core.function import AppliedUndef

from agent.core import Candidate, Task
from agent.distill.closed_form import ClosedForm, ClosedFormConfig, fit_closed_form, term_expr
from agent.distill.sites import (
    MisfitRule,
    RateSite,
    SeriesMisfit,
    fresh_name,
    hybrid_of,
    misfit,
    proportionality,
    rate_sites,
    reads,
    skeleton,
    suspect_sites,
)
from agent.evaluate import Node
from mechanistic.expr import free_names, neural_calls
from mechanistic.fit import FitResult
from mechanistic.interventions import Intervention
from mechanistic.model import Model
from mechanistic.priors import LogUniform, Normal, Prior, Uniform
from mechanistic.serialize import model_from_dict, model_from_json, model_to_dict
from mechanistic.to_source import model_to_source
from mechanistic.torch_expr import compile_program

__all__ = ["DistillConfig", "Distillation", "Distiller", "distill", "learned_rates"]

_DTYPE = torch.float64


@dataclass(frozen=True)
class DistillConfig:
    """Settings of both refinements; validated on construction.

    ``points``: grid of the learned rate over the training window (also what the review
    gets); ``trim``: the fraction of the window left out at each end, where the network's
    rate is pinned by data on one side only (measured on Michaelis-Menten: the learned rate
    11% off at t = 0, 1% by the tenth of the window; K from the whole window 10% off, 5%
    with 5% trimmed). ``prior_factor``: new coefficients and K get ``LogUniform(v/f, v*f)``;
    ``hill_prior_factor`` the same for Hill exponents (of order 1-4, a wide range only adds
    ways to diverge). ``min_r2``: a closed form that explains less of the learned rate than
    this is no distillation, and no child is proposed. ``inherit_fit``: the distilled child
    starts where the hybrid ended: every other free parameter of the dynamics and the
    observables' expressions (not the noise levels) with a (log-)uniform prior has its
    range narrowed to ``prior_factor`` around the hybrid's fitted value (never
    beyond the declared range), since the search refits the child from its priors' typical
    values, and from the declared ones it can land in a poorer optimum than the hybrid had
    found (measured: Holling II predation, a loglik of -529 against the hybrid's -164).
    """

    hidden: tuple[int, ...] = (16, 16)
    points: int = 200
    prior_factor: float = 5.0
    hill_prior_factor: float = 2.0
    min_r2: float = 0.9
    trim: float = 0.05
    inherit_fit: bool = True
    closed_form: ClosedFormConfig = field(default_factory=ClosedFormConfig)
    misfit: MisfitRule = field(default_factory=MisfitRule)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not self.hidden or not all(isinstance(h, int) and 1 <= h <= 1024
                                      for h in self.hidden):
            raise ValueError(f"DistillConfig.hidden must be layer sizes in 1..1024, "
                             f"got {self.hidden!r}")
        if not isinstance(self.points, int) or not 10 <= self.points <= 200:
            raise ValueError(f"DistillConfig.points must be an integer in 10..200, "
                             f"got {self.points!r}")
        for name in ("prior_factor", "hill_prior_factor"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 1):
                raise ValueError(f"DistillConfig.{name} must be > 1, got {value!r}")
        if not isinstance(self.inherit_fit, bool):
            raise ValueError(f"DistillConfig.inherit_fit must be True or False, "
                             f"got {self.inherit_fit!r}")
        if not (math.isfinite(self.trim) and 0 <= self.trim < 0.5):
            raise ValueError(f"DistillConfig.trim must be in [0, 0.5), got {self.trim!r}")
        if not 0 <= self.min_r2 < 1:
            raise ValueError(f"DistillConfig.min_r2 must be in [0, 1), got {self.min_r2!r}")


@dataclass(frozen=True)
class GroupForm:
    """One distilled event: the primary site, its coupled sites, the chosen closed form
    and the new rate expression written with parameters."""

    site: RateSite
    coupled: tuple[tuple[RateSite, sp.Expr], ...]
    variables: tuple[str, ...]
    form: ClosedForm
    alternatives: tuple[ClosedForm, ...]
    expr: sp.Expr
    learned: np.ndarray
    fitted: np.ndarray
    scale: tuple[str, float] = ("", 1.0)  # the leading coefficient: number * parameter


@dataclass(frozen=True)
class Distillation:
    """The distilled model and what the review shows about it."""

    model: Model
    groups: tuple[GroupForm, ...]
    params: dict[str, float]
    details: dict[str, Any]

    @property
    def r2(self) -> float:
        return min(g.form.r2 for g in self.groups)

    def describe(self) -> str:
        return "; ".join(f"{g.site.key} = {g.form.describe()}" for g in self.groups)


# ---------------------------------------------------------------- the learned rate
def _neural_call(networks: torch.nn.ModuleDict) -> Any:
    def call(name: str, inputs: Sequence[Any]) -> torch.Tensor:
        tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
        shape = torch.broadcast_shapes(*(x.shape for x in tensors)) if tensors else ()
        stacked = torch.stack([x.expand(shape) if isinstance(x, torch.Tensor)
                               else torch.full(shape, float(x), dtype=_DTYPE)
                               for x in inputs], dim=-1)
        return networks[name](stacked)
    return call


def learned_rates(model: Model, fit: FitResult, times: np.ndarray,
                  interventions: Sequence[Intervention] = ()
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The fitted model on ``times``: its states and controls (``env``), and every site's
    whole rate expression, networks included (by site key). NaN where the run failed."""
    if fit.compiled is None:
        raise ValueError("the fit carries no compiled model (networks)")
    with torch.no_grad():
        sim = fit.simulate(times, interventions=interventions)
        t = sim.t.to(_DTYPE)
        env: dict[str, Any] = {n: torch.tensor(v, dtype=_DTYPE) for n, v in fit.params.items()}
        env["t"] = t
        out_env: dict[str, np.ndarray] = {"t": t.numpy().copy()}
        for i, name in enumerate(sim.state_names):
            env[name] = sim.states[0, :, i]
            out_env[name] = env[name].numpy().copy()
        schedules = fit.controls or {}
        for name, control in model.controls_.items():
            sched = schedules.get(name)
            env[name] = torch.tensor([sched.value_at(float(x), control.default) if sched
                                      else control.default for x in t], dtype=_DTYPE)
            out_env[name] = env[name].numpy().copy()
        constants = {sp.Symbol(c.name): c.value for c in model.constants_.values()}
        sites = rate_sites(model)
        program = compile_program([s.expr for s in sites], _neural_call(fit.compiled.neural),
                                  constants)
        values = program(env)
    rates = {}
    for site, value in zip(sites, values, strict=True):
        v = value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        rates[site.key] = np.broadcast_to(np.asarray(v, dtype=float), t.shape).copy()
    return out_env, rates


# ---------------------------------------------------------------- model surgery
def _groups(model: Model) -> list[tuple[RateSite, list[tuple[RateSite, sp.Expr]]]] | None:
    """Sites that call a neural term, grouped by proportional skeletons; None when a
    neural term is used where distillation cannot replace it (an observable, an initial
    condition, another term's inputs)."""
    for o in model.observables_.values():
        if neural_calls(o.expr):
            return None
    for n in model.neural_.values():
        if any(neural_calls(x) for x in n.inputs):
            return None
    remaining = [s for s in rate_sites(model) if neural_calls(s.expr)]
    out = []
    while remaining:
        primary = remaining.pop(0)
        members = []
        for other in list(remaining):
            rho = proportionality(model, skeleton(other.expr), skeleton(primary.expr))
            if rho is not None:
                members.append((other, rho))
                remaining.remove(other)
        out.append((primary, members))
    return out


def _sig(x: float, digits: int = 4) -> float:
    """``x`` to ``digits`` significant digits: priors a person reads in the module."""
    return float(f"{x:.{digits}g}")


def _prior(value: float, factor: float) -> Prior:
    """Around a value found by distillation: ``LogUniform(v/f, v*f)`` (typical value v),
    or for a negative one a normal prior centred on it."""
    if value > 0:
        return LogUniform(_sig(value / factor), _sig(value * factor))
    return Normal(_sig(value), _sig(2 * abs(value)) if value else 1.0)


def _narrowed(prior: Prior, value: float | None, factor: float) -> Prior | None:
    """A positive interval prior narrowed to a factor around the hybrid's fitted value,
    never beyond the declared range; None for other priors (kept as declared)."""
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    if isinstance(prior, LogUniform | Uniform):
        lo = max(prior.low, _sig(value / factor))
        hi = min(prior.high, _sig(value * factor))
        if not 0 < lo < hi:
            return None
        return LogUniform(lo, hi) if isinstance(prior, LogUniform) else Uniform(lo, hi)
    return None


def _coefficient(expr: sp.Basic, model: Model) -> tuple[sp.Expr, sp.Expr]:
    """``expr = C * M`` with ``C`` the Mul factors free of states, controls and time."""
    dynamic = {*model.states_, *model.controls_, "t"}
    c, m = [], []
    for factor in sp.Mul.make_args(expr):
        (m if free_names(factor) & dynamic or factor.atoms(AppliedUndef) else c).append(factor)
    return sp.Mul(*c), sp.Mul(*m)


def _reusable(model: Model, coefficient: sp.Expr, group_keys: set[str]) -> tuple[
        str, float] | None:
    """``(p, number)`` when ``coefficient = number * p`` for one free parameter ``p`` that
    nothing outside the group reads."""
    names = free_names(coefficient)
    if len(names) != 1:
        return None
    (p,) = names
    if p not in model.params_ or model.params_[p].fixed:
        return None
    number = coefficient / sp.Symbol(p)
    if not number.is_number or number == 0:
        return None
    for site in rate_sites(model):
        if site.key not in group_keys and p in free_names(site.expr):
            return None
    elsewhere = [*model.inits.values(), *(o.expr for o in model.observables_.values()),
                 *(v for o in model.observables_.values() for v in o.noise.arguments().values()),
                 *(x for n in model.neural_.values() for x in n.inputs)]
    if any(p in free_names(e) for e in elsewhere):
        return None
    return p, float(number)


def _keep_ratios(model: Model, fitted: Mapping[str, float],
                 members: Sequence[tuple[RateSite, sp.Expr]], p: str,
                 value: float) -> dict[str, float] | None:
    """When the reused coefficient ``p`` takes ``value``, new values of other parameters
    such that every coupled rate's factor ``rho`` (``delta/beta`` for predator births fed by
    predation ``beta*H*P``) keeps the value it had in the hybrid's fit. One parameter per
    such ``rho`` is solved for: a free one that only this rate reads. ``{}`` when no ``rho``
    reads ``p``; None when one does and cannot be kept."""
    out: dict[str, float] = {}
    for member, rho in members:
        names = free_names(rho)
        if p not in names:
            continue
        others = [site for site in rate_sites(model) if site.key != member.key]
        elsewhere = set().union(*(free_names(s.expr) for s in others), *(
            free_names(e) for e in (*model.inits.values(),
                                    *(o.expr for o in model.observables_.values()))))
        free = [q for q in sorted(names - {p}) if q in model.params_
                and not model.params_[q].fixed and q not in elsewhere and q not in out]
        if not free:
            return None
        q = free[0]
        try:
            target = float(rho.subs({sp.Symbol(k): v for k, v in fitted.items()}))
            known = {sp.Symbol(k): v for k, v in fitted.items() if k != q}
            known[sp.Symbol(p)] = value
            roots = sp.solve(sp.Eq(rho.subs(known), target), sp.Symbol(q))
        except (TypeError, ValueError, NotImplementedError):
            return None
        real = [float(r) for r in roots if r.is_real and float(r) > 0]
        if not real:
            return None
        out[q] = min(real, key=lambda r: abs(math.log(r / max(fitted.get(q, r), 1e-300))))
    return out


def _rms(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def distill(model: Model, fit: FitResult, *, until: float | None = None,
            times: np.ndarray | None = None, interventions: Sequence[Intervention] = (),
            config: DistillConfig | None = None) -> Distillation | None:
    """Distil every neural term of a fitted hybrid into a closed form.

    The learned rates are read on ``times`` (default: ``config.points`` times over the
    training window, from the fit's ``t0`` to ``until`` or the fit's ``train_until``, less
    ``config.trim`` of it at each end).
    Returns None when the model's neural terms sit where they cannot be replaced, the
    fitted run fails, or a closed form explains less than ``config.min_r2`` of its rate.
    """
    cfg = config or DistillConfig()
    groups = _groups(model)
    if not groups:
        return None
    if times is None:
        end = until if until is not None else fit.train_until
        if end is None or not end > fit.t0:
            raise ValueError("distill needs the end of the training window (until=...)")
        margin = cfg.trim * (float(end) - fit.t0)
        times = np.linspace(fit.t0 + margin, float(end) - margin, cfg.points)
    env, rates = learned_rates(model, fit, np.asarray(times, dtype=float), interventions)
    if not all(np.isfinite(env[s]).all() for s in model.states_):
        return None
    data = model_to_dict(model)
    data["neural"] = []
    taken: set[str] = set()
    new_params: list[dict[str, Any]] = []
    values: dict[str, float] = {}
    reprior: dict[str, tuple[Prior, str]] = {}
    done: list[GroupForm] = []

    def fresh(base: str) -> str:
        name = fresh_name(model, base, taken)
        taken.add(name)
        return name

    def add_param(base: str, value: float, factor: float, doc: str) -> sp.Symbol:
        name = fresh(base)
        new_params.append({"name": name, "prior": _prior(value, factor).to_dict(),
                           "doc": doc, "unit": ""})
        values[name] = value
        return sp.Symbol(name)

    for primary, members in groups:
        variables = reads(model, primary.expr)
        states = [v for v in variables if v in model.states_]
        controls = [v for v in variables if v in model.controls_]
        target = rates[primary.key]
        # an outflow's closed form must vanish with its source (non-negative states)
        vanish = {model.flows[s.index].source for s in (primary, *(m for m, _ in members))
                  if s.kind == "flow"} - {None}
        if primary.kind == "rate" and np.nanmean(target) < 0:
            vanish |= set(primary.changes)
        vanish_in = [v for v in states if v in vanish]
        forms = fit_closed_form(env, target, states, controls, vanish=vanish_in,
                                nonnegative=primary.kind == "flow", config=cfg.closed_form)
        if not forms or forms[0].r2 < cfg.min_r2:
            return None
        form = forms[0]
        contributions = [abs(c) * _rms(t.evaluate(env)) for t, c in
                         zip(form.terms, form.coefficients, strict=True)]
        order = sorted(range(len(form.terms)), key=lambda j: -contributions[j])
        lead = order[0]
        c_lead = form.coefficients[lead]
        base = skeleton(primary.expr)
        coefficient, _ = _coefficient(base, model)
        keys = {primary.key, *(m.key for m, _ in members)}
        reuse = _reusable(model, coefficient, keys) if base != 0 else None
        rescaled: dict[str, float] = {}
        if reuse is not None:
            p, number = reuse
            v = c_lead / number
            if model.params_[p].prior.support.lower >= 0 and v <= 0:
                reuse = None
            else:
                kept = _keep_ratios(model, fit.params, members, p, v)
                if kept is None:
                    reuse = None
                else:
                    rescaled = kept
        if reuse is not None:
            p, number = reuse
            v = c_lead / number
            for q, q_value in rescaled.items():  # the coupled rates keep their size
                reprior[q] = (_prior(q_value, cfg.prior_factor), model.params_[q].doc)
                values[q] = q_value
            doc = model.params_[p].doc
            reprior[p] = (_prior(v, cfg.prior_factor),
                          (f"{doc}; " if doc else "") + f"distilled: the scale of "
                          f"{primary.key}")
            values[p] = v
            scale: sp.Expr = sp.Float(number) * sp.Symbol(p) if number != 1 else sp.Symbol(p)
            lead_param = (p, number)
        else:
            scale = add_param(f"v_{primary.slug}", c_lead, cfg.prior_factor,
                              f"scale of {primary.key} (distilled)")
            lead_param = (scale.name, 1.0)
        parts = []
        for rank, j in enumerate(order):
            term = form.terms[j]
            var = term.variables[0] if term.variables else "c"
            K = n = None
            if term.K is not None:
                K = add_param(f"K_{var}", float(term.K), cfg.prior_factor,
                              f"half-saturation level of {var} in {primary.key} (distilled)")
            if term.n is not None:
                n = add_param(f"n_{var}", float(term.n), cfg.hill_prior_factor,
                              f"Hill exponent of {var} in {primary.key} (distilled)")
            shape = term_expr(term, K, n)
            if rank == 0:
                parts.append(shape)
            else:
                w = add_param(f"w_{primary.slug}_{rank + 1}", form.coefficients[j] / c_lead,
                              cfg.prior_factor, f"weight of term {rank + 1} of {primary.key} "
                                                f"relative to the first (distilled)")
                parts.append(w * shape)
        new = scale * sp.Add(*parts)
        fitted = form.predict(env)
        done.append(GroupForm(primary, tuple(members), tuple(variables), form,
                              tuple(forms[1:4]), new, target, fitted, lead_param))
        primary.with_expr(data, new, ())
        for member, rho in members:
            member.with_expr(data, rho * new, ())

    # parameters: re-centred reused ones, new ones, and none that nothing reads any more;
    # the dynamics' parameters inherit the hybrid's fit (noise levels keep their priors: a
    # closed form can fit better than the hybrid did, and they are cheap to find anyway)
    dynamic_params = _symbols_in([data["flows"], data["rates"], data["init"],
                                  [o["expr"] for o in data["observables"]]])
    for entry in data["params"]:
        if entry["name"] in reprior:
            prior, doc = reprior[entry["name"]]
            entry["prior"], entry["doc"] = prior.to_dict(), doc
        elif cfg.inherit_fit and entry["name"] in dynamic_params:
            narrowed = _narrowed(model.params_[entry["name"]].prior,
                                 fit.params.get(entry["name"]), cfg.prior_factor)
            if narrowed is not None:
                entry["prior"] = narrowed.to_dict()
    data["params"] += new_params
    read = _symbols_in([data["flows"], data["rates"], data["init"], data["observables"]])
    data["params"] = [p for p in data["params"] if p["name"] in read]
    data["controls"] = [c for c in data["controls"] if c["name"] in read]
    data["constants"] = [c for c in data["constants"] if c["name"] in read]
    data["name"] = model.name if "(distilled)" in model.name else f"{model.name} (distilled)"
    distilled = model_from_dict(data)
    params = {n: v for n, v in values.items() if n in distilled.params_}
    return Distillation(distilled, tuple(done), params, _details(done, env, params))


def _symbols_in(node: Any) -> set[str]:
    """Every ``{"sym": name}`` in a piece of model JSON: what the expressions read."""
    if isinstance(node, dict):
        found = {node["sym"]} if isinstance(node.get("sym"), str) else set()
        return found.union(*(_symbols_in(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_symbols_in(v) for v in node))
    return set()


def _round(values: np.ndarray | Sequence[float], digits: int = 6) -> list[float | None]:
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None
            for v in np.asarray(values, dtype=float)]


def _details(groups: Sequence[GroupForm], env: Mapping[str, np.ndarray],
             params: Mapping[str, float]) -> dict[str, Any]:
    """What the review shows: the first event's learned and distilled rate on the grid
    (at most 200 points), the formula with and without numbers, and the alternatives."""
    first = groups[0]
    size = env["t"].size
    keep = np.unique(np.linspace(0, size - 1, min(size, 200)).round().astype(int))
    return {
        "rate": first.site.key,
        "expression": first.form.describe(),
        "formula": str(first.expr),
        "scale": {"param": first.scale[0], "factor": first.scale[1]},
        "params": {k: float(f"{v:.6g}") for k, v in params.items()},
        "inputs": list(first.variables),
        "t": _round(env["t"][keep]),
        "grid": {v: _round(env[v][keep]) for v in first.variables},
        "learned": _round(first.learned[keep]),
        "distilled": _round(first.fitted[keep]),
        "r2": float(first.form.r2),
        "terms": [{"kind": t.kind, "variables": list(t.variables), "K": t.K, "n": t.n,
                   "coefficient": float(c)}
                  for t, c in zip(first.form.terms, first.form.coefficients, strict=True)],
        "coupled": [m.key for m, _ in first.coupled],
        "alternatives": [{"expression": f.describe(), "r2": float(f.r2),
                          "constants": f.complexity} for f in first.alternatives],
        "others": [{"rate": g.site.key, "expression": g.form.describe(), "r2": float(g.form.r2),
                    "coupled": [m.key for m, _ in g.coupled]} for g in groups[1:]],
    }


# ------------------------------------------------------------------- the refinement
def _candidate_id(source: str) -> str:
    return "dst-" + hashlib.sha1(source.encode()).hexdigest()[:8]


def _residual_series(task: Task, node: Node) -> dict[str, np.ndarray] | None:
    """``observed - predicted`` per data column over the rows the agent may see."""
    fit = node.fit_result
    if fit is None:
        return None
    data = task.data
    if task.validate_until is not None:
        data, _ = data.split(task.validate_until)
    try:
        sim = fit.simulate(data.t)
    except Exception:  # a stale fit is no reason to fail the refinement
        return None
    out = {}
    for name in data.columns:
        if name in sim.observable_names:
            predicted = sim.observable(name)[0].detach().numpy()
            out[name] = np.asarray(data.values[name], dtype=float) - predicted
    return out


class Distiller:
    """The distillation refinement for any valid node (see the module docstring).

    ``refine`` returns hybrid children for a mechanistic node with a systematic misfit, a
    distilled child for a fitted hybrid, and nothing otherwise.
    """

    name = "distill"

    def __init__(self, config: DistillConfig | None = None) -> None:
        self.config = config or DistillConfig()

    def refine(self, task: Task, node: Node, n: int) -> list[Candidate]:
        """Up to ``n`` children of ``node``; [] when distillation has nothing to offer."""
        if not node.ok or n < 1:
            return []
        model = node.model
        if model is None and node.model_json is not None:
            model = model_from_json(node.model_json)
        if model is None:
            return []
        if model.neural_:
            child = self.distilled(task, node, model)
            return [child] if child is not None else []
        return self.hybrids(task, node, model, n)

    def misfits(self, task: Task, node: Node) -> dict[str, SeriesMisfit]:
        """The node's series and whether each misfits systematically (MisfitRule)."""
        return misfit(node.fit, _residual_series(task, node), self.config.misfit)

    def hybrids(self, task: Task, node: Node, model: Model, n: int) -> list[Candidate]:
        misfits = self.misfits(task, node)
        bad = [m for m in misfits.values() if m.systematic]
        if not bad:
            return []
        why = ", ".join(
            f"{m.name} (nrmse {m.nrmse:.3g}, bias/rmse {m.bias_ratio:.2f}"
            + (f", runs z {m.runs_z:.1f}" if m.runs_z is not None else "") + ")" for m in bad)
        out = []
        for site in suspect_sites(model, misfits)[:n]:
            try:
                hybrid = hybrid_of(model, site.key, hidden=self.config.hidden)
            except ValueError:  # a rate the model language cannot wrap: try the next one
                continue
            g = next(name for name in hybrid.neural_ if name not in model.neural_)
            inputs = ", ".join(str(x) for x in hybrid.neural_[g].inputs)
            source = model_to_source(hybrid)
            out.append(Candidate(
                id=_candidate_id(source), source=source,
                structure=f"{node.candidate.structure} + neural on {site.key}",
                origin="refine", parent=node.id, proposer=self.name,
                note=(f"systematic misfit in {why}: {site.key} gets a learned factor "
                      f"exp({g}({inputs})); once fitted, its learned rate is distilled "
                      f"into a closed form"),
                roles={**dict(node.candidate.roles), "neural_term": g}))
        return out

    def distilled(self, task: Task, node: Node, model: Model) -> Candidate | None:
        if node.fit_result is None:
            return None
        try:
            result = distill(model, node.fit_result, until=task.train_until,
                             config=self.config)
        except (ValueError, ArithmeticError):
            return None
        if result is None:
            return None
        source = model_to_source(result.model)
        details = {"distilled_from": node.id, **result.details}
        values = ", ".join(f"{k} = {v:.4g}" for k, v in result.params.items())
        note = (f"distilled {result.describe()} from the learned rate of {node.id} "
                f"(R^2 = {result.r2:.4f} along the fitted trajectory); as parameters: "
                f"{details['rate']} = {details['formula']} with {values}")
        structure = node.candidate.structure
        for g in result.groups:
            structure = structure.replace(f" + neural on {g.site.key}", "")
        kinds = ", ".join(f"{g.site.key}: " + " + ".join(t.kind.replace("_", " ")
                                                           for t in g.form.terms)
                          for g in result.groups)
        declared = {*result.model.symbols, *result.model.observables_,
                    *(f.name for f in result.model.flows)}
        roles = {k: v for k, v in node.candidate.roles.items()
                 if k != "neural_term" and v in declared}
        return Candidate(id=_candidate_id(source), source=source,
                         structure=f"{structure} + distilled ({kinds})", origin="refine",
                         parent=node.id, proposer=self.name, note=note, roles=roles,
                         details=details)
