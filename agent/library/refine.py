"""Atomic refinements: one structural edit of a :class:`ModelSpec` each.

The search loop refines good nodes where their residuals say the structure misses
something. Every edit here adds exactly one mechanism (a hidden compartment on a path, a
reporting-delay chain, a peripheral compartment, a saturating term, waning immunity, or a
learned factor on one rate), keeps every name the counterfactual roles point to, and
returns None when it does not apply, so the caller can simply try them in order.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.library.profile import days_per
from agent.library.spec import (
    FlowSpec,
    LetSpec,
    ModelSpec,
    NeuralSpec,
    ParamSpec,
    PriorSpec,
    StateSpec,
)

__all__ = [
    "Refinement",
    "add_delay_chain",
    "add_neural",
    "add_peripheral",
    "add_waning",
    "insert_stage",
    "refinements",
    "saturate",
]

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Refinement:
    kind: str
    spec: ModelSpec
    note: str


def _factor(spec: ModelSpec, native: str) -> float:
    task, base = days_per(spec.time_unit), days_per(native)
    return 1.0 if task is None or base is None else task / base


def _rate_prior(spec: ModelSpec, lo: float, hi: float, native: str) -> PriorSpec:
    f = _factor(spec, native)
    return PriorSpec("LogUniform", (lo * f, hi * f))


def _tokens(expr: str) -> set[str]:
    return set(_TOKEN.findall(expr))


def _scale_of(spec: ModelSpec, state: str) -> float:
    """A typical size of ``state`` from its initial condition (for new priors)."""
    init = dict(spec.inits).get(state, "")
    for token in _TOKEN.findall(init):
        p = spec.param(token)
        if p is not None and p.prior.kind == "LogUniform":
            return math.sqrt(p.prior.args[0] * p.prior.args[1])
        c = next((c for c in spec.constants if c.name == token), None)
        if c is not None and c.value > 0:
            return c.value
    try:
        value = float(init)
    except ValueError:
        value = 0.0
    return value if value > 0 else 1.0


def _grow_totals(spec: ModelSpec, near: str, new: str) -> tuple[LetSpec, ...]:
    """Helper sums over the population (``N = S + I + R``) include a new compartment."""
    states = set(spec.state_names)
    out = []
    for let in spec.lets:
        toks = _tokens(let.expr)
        if len(toks) >= 2 and toks <= states and near in toks:
            out.append(LetSpec(let.name, f"{let.expr} + {new}"))
        else:
            out.append(let)
    return tuple(out)


def insert_stage(spec: ModelSpec, flow_name: str) -> ModelSpec | None:
    """A hidden compartment on the path of a flow into a state: ``A -> H -> B``.

    For an infection flow this is the exposed (latent) stage; for births a juvenile stage;
    for absorption a transit compartment. What was observed as the flow into B is now the
    flow out of H, so reported incidence stays incidence into B.
    """
    f = spec.flow(flow_name)
    if f is None or f.target is None:
        return None
    roles = spec.role_map
    epi = roles.get("infectious") == f.target
    hidden = spec.fresh("E" if epi and "E" not in spec.state_names else f"{f.target}_stage")
    k = spec.fresh(f"k_{hidden}")
    exit_name = spec.fresh(f"{hidden}_exit")
    prior = _rate_prior(spec, 1 / 14, 2.0, "day") if epi else PriorSpec("LogUniform", (0.01, 10))
    flows = []
    for g in spec.flows:
        if g.name == flow_name:
            flows.append(replace(g, target=hidden))
            flows.append(FlowSpec(hidden, f.target, f"{k} * {hidden}", exit_name))
        elif g.rate == flow_name:  # e.g. the entry of a reporting-delay chain
            flows.append(replace(g, rate=exit_name))
        else:
            flows.append(g)
    observes = tuple(replace(o, quantity=exit_name) if o.quantity == flow_name else o
                     for o in spec.observes)
    new_roles: dict[str, str] = {"hidden_state": hidden}
    if roles.get("incidence_flow") == flow_name:
        new_roles["incidence_flow"] = exit_name
    if epi:
        new_roles.update(exposed=hidden, incubation_rate=k)
    out = replace(
        spec, states=(*spec.states, StateSpec(hidden, f"hidden stage before {f.target}")),
        params=(*spec.params, ParamSpec(k, prior, f"rate of leaving {hidden}")),
        lets=_grow_totals(spec, f.target, hidden), flows=tuple(flows),
        inits=(*spec.inits, (hidden, "0")), observes=observes)
    return out.with_roles(**new_roles).with_edit(f"stage {hidden} before {f.target}")


def add_delay_chain(spec: ModelSpec, stages: int = 2) -> ModelSpec | None:
    """Reports lag incidence: an Erlang chain of ``stages`` compartments between the
    incidence and the reported count, with a fitted mean delay."""
    roles = spec.role_map
    source = roles.get("incidence_flow")
    if source is None or "reported_flow" in roles or stages < 1:
        return None
    if not any(o.quantity == source for o in spec.observes):
        return None
    tau = spec.fresh("tau_report")
    states = [spec.fresh(f"D{i + 1}") for i in range(stages)]
    flows = [FlowSpec(None, states[0], source, spec.fresh("report_entry"))]
    for a, b in itertools.pairwise(states):
        flows.append(FlowSpec(a, b, f"{stages} / {tau} * {a}", spec.fresh(f"{a}_to_{b}")))
    reporting = spec.fresh("reporting")
    flows.append(FlowSpec(states[-1], None, f"{stages} / {tau} * {states[-1]}", reporting))
    days = days_per(spec.time_unit) or 1.0
    observes = tuple(replace(o, quantity=reporting) if o.quantity == source else o
                     for o in spec.observes)
    out = replace(
        spec, states=(*spec.states, *(StateSpec(s, "reporting pipeline") for s in states)),
        params=(*spec.params, ParamSpec(tau, PriorSpec("LogUniform", (0.5 / days, 21 / days)),
                                        "mean reporting delay", spec.time_unit)),
        flows=(*spec.flows, *flows), inits=(*spec.inits, *((s, "0") for s in states)),
        observes=observes)
    return out.with_roles(reported_flow=reporting, reporting_delay=tau).with_edit(
        f"reporting delay ({stages} stages)")


def add_peripheral(spec: ModelSpec, state: str | None = None) -> ModelSpec | None:
    """A peripheral compartment exchanging with ``state`` (default: the central one)."""
    state = state or spec.role_map.get("central")
    if state is None or state not in spec.state_names:
        return None
    p = spec.fresh("peripheral")
    k12, k21 = spec.fresh(f"k_to_{p}"), spec.fresh(f"k_from_{p}")
    prior = _rate_prior(spec, 0.01, 10.0, "hour")
    out = replace(
        spec, states=(*spec.states, StateSpec(p, f"peripheral compartment of {state}")),
        params=(*spec.params, ParamSpec(k12, prior, f"distribution rate {state} -> {p}"),
                ParamSpec(k21, prior, f"redistribution rate {p} -> {state}")),
        flows=(*spec.flows, FlowSpec(state, p, f"{k12} * {state}", spec.fresh("distribution")),
               FlowSpec(p, state, f"{k21} * {p}", spec.fresh("redistribution"))),
        inits=(*spec.inits, (p, "0")))
    return out.with_roles(peripheral=p).with_edit(f"peripheral compartment {p}")


def saturate(spec: ModelSpec, state: str) -> ModelSpec | None:
    """Mass action in ``state`` becomes saturating: r -> r / (1 + state / K)
    (Holling type II predation, Michaelis-Menten elimination, saturating incidence)."""
    targets = [f for f in spec.flows if f.saturating_in == state and f.saturation is None]
    if not targets:
        return None
    k = spec.fresh(f"K_{state}")
    scale = _scale_of(spec, state)
    new = spec
    for f in targets:
        new = new.replace_flow(f.name, replace(f, saturation=k))
    prior = PriorSpec("LogUniform", (scale / 100, scale * 100))
    new = replace(new, params=(*new.params,
                               ParamSpec(k, prior, f"half-saturation level of {state}")))
    return new.with_roles(**{f"saturation_{state}": k}).with_edit(f"saturating in {state}")


def add_waning(spec: ModelSpec) -> ModelSpec | None:
    """Immunity wanes: recovered return to susceptible at a fitted rate."""
    roles = spec.role_map
    s, r = roles.get("susceptible"), roles.get("recovered")
    if s is None or r is None or "waning_rate" in roles:
        return None
    omega = spec.fresh("omega")
    out = replace(spec, params=(*spec.params, ParamSpec(
        omega, _rate_prior(spec, 1 / 1000, 1 / 30, "day"), "waning immunity rate")),
        flows=(*spec.flows, FlowSpec(r, s, f"{omega} * {r}", spec.fresh("waning"))))
    return out.with_roles(waning_rate=omega).with_edit("waning immunity")


def add_neural(spec: ModelSpec, flow_name: str) -> ModelSpec | None:
    """A learned factor exp(g(states)) on one flow's rate: a fresh network gives g = 0,
    so the refinement starts from the mechanistic fit and learns only what it misses."""
    f = spec.flow(flow_name)
    if f is None or f.neural is not None:
        return None
    inputs = [s for s in spec.state_names if s in _tokens(f.rate)][:2] or \
        [f.source or f.target or spec.state_names[0]]
    g = spec.fresh(f"g_{flow_name}")
    out = replace(spec, neurals=(*spec.neurals, NeuralSpec(
        g, tuple(inputs), (8, 8), f"learned correction of {flow_name}")))
    out = out.replace_flow(flow_name, replace(f, neural=g))
    return out.with_roles(neural_term=g).with_edit(f"neural factor on {flow_name}")


def _stage_flows(spec: ModelSpec) -> list[str]:
    main = spec.role_map.get("main_flow")
    pipeline = {s.name for s in spec.states if s.doc == "reporting pipeline"}
    inner = [f.name for f in spec.flows if f.source and f.target and f.name != main
             and not {f.source, f.target} & pipeline]
    observed = {o.quantity for o in spec.observes}
    into_obs = [f.name for f in spec.flows if f.source is None and f.target in observed]
    return [n for n in ([main] if main else []) + inner + into_obs if n]


# Mechanisms a scientist names in the description: stronger evidence for an edit than a
# residual pattern, so an edit the description names is tried first.
_NAMED = {"saturation": ("saturat", "levels off", "level off", "michaelis", "holling",
                         "so many", "capacity-limited", "handling time"),
          "delay": ("reporting delay", "delayed report", "reported with a delay", "lag"),
          "hidden_compartment": ("incubat", "latent", "not yet infectious", "exposed"),
          "waning": ("waning", "wanes", "immunity fades", "lose their immunity",
                     "immunity is lost", "temporary immunity"),
          "peripheral": ("peripheral", "distributes into", "tissue", "biphasic",
                         "two-compartment")}


def refinements(spec: ModelSpec, critique: str = "",
                description: str = "") -> list[Refinement]:
    """Every applicable atomic edit, most promising first: those the task's description
    names (``_NAMED``), then those the critique's words hint at, then the rest."""
    text = critique.lower()
    told = " ".join(description.lower().split())
    options: list[tuple[str, Callable[[], ModelSpec | None], str]] = []
    stage = _stage_flows(spec)
    if stage:
        options.append(("hidden_compartment", lambda: insert_stage(spec, stage[0]),
                        f"add a hidden compartment before the target of {stage[0]}"))
    options.append(("delay", lambda: add_delay_chain(spec, 2),
                     "add a two-stage reporting delay between incidence and reports"))
    options.append(("peripheral", lambda: add_peripheral(spec),
                    "add a peripheral compartment exchanging with the central one"))
    for state in dict.fromkeys(f.saturating_in for f in spec.flows if f.saturating_in):
        options.append(("saturation", lambda s=state: saturate(spec, s),
                        f"make the mass-action terms in {state} saturating"))
    options.append(("waning", lambda: add_waning(spec), "add waning immunity (R -> S)"))
    main = spec.role_map.get("main_flow") or (spec.flows[0].name if spec.flows else "")
    options.append(("neural", lambda: add_neural(spec, main),
                    f"multiply the {main} rate by a learned factor exp(g)"))
    hints = {"delay": ("delay", "lag", "late", "shift", "early"),
             "hidden_compartment": ("delay", "lag", "late", "shift", "hidden", "latent"),
             "saturation": ("peak", "saturat", "overshoot", "too high", "plateau", "level"),
             "waning": ("rebound", "second wave", "resurg", "endemic", "recurr", "wave"),
             "peripheral": ("biphasic", "tail", "terminal", "slow phase", "distribution")}
    def rank(item: tuple[str, Callable[[], ModelSpec | None], str]) -> int:
        if any(re.search(rf"\b{re.escape(w)}", told) for w in _NAMED.get(item[0], ())):
            return 0
        return 1 if any(w in text for w in hints.get(item[0], ())) else 2
    out = []
    for kind, make, note in sorted(options, key=rank):
        new = make()
        if new is not None:
            out.append(Refinement(kind, new, note))
    return out
