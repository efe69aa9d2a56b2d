"""An identified structure as a library :class:`ModelSpec`, hence as module source.

Rendering through the spec (not text templates) embeds the structural description in the
module, so the library's repairs and any spec-level refinement work on discovered models.

Reading the selected terms as mechanisms:

* a term that is a **loss** of state A (negative in dA/dt) and a **gain** of state B
  (positive in dB/dt), of the same kind and variables, with coefficients within a factor
  ``FLOW_RATIO`` of each other, becomes one flow ``A -> B``; with coefficients further apart
  it becomes a flow out of A plus an inflow of B at ``yield * (that flow)``, the yield a
  parameter (a chemostat's biomass yield on substrate);
* other positive terms are inflows ``None -> X``; negative terms outflows ``X -> None``
  (they vanish at X = 0: the sign constraints of the identification made sure), or a
  ``RateSpec`` when X can be negative and the term does not vanish there.

Every coefficient is a parameter with a LogUniform prior a factor 10 either side of its
identified magnitude, every half-saturation constant one a factor 5 either side of its value
(the fit refines both), initial conditions a factor 3 around the first observation; known
inputs are controls with their first value as default; noise follows the column's kind.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from agent.core import Task
from agent.discovery.identify import Identification, Structure
from agent.discovery.terms import Term
from agent.library.motifs.base import avoid_column_clashes, noise_for
from agent.library.profile import DataProfile
from agent.library.spec import (
    ControlSpec,
    FlowSpec,
    ModelSpec,
    ObsSpec,
    ParamSpec,
    PriorSpec,
    RateSpec,
    StateSpec,
)

__all__ = ["FLOW_RATIO", "render_structure", "state_names"]

FLOW_RATIO = 1.5
COEF_FOLD = 10.0
K_FOLD = 5.0
INIT_FOLD = 3.0
_WORD = re.compile(r"[^0-9A-Za-z_]+")


def _ident(text: str) -> str:
    out = _WORD.sub("_", text).strip("_") or "x"
    return f"v_{out}" if out[0].isdigit() else out


def state_names(columns: list[str], taken: set[str]) -> dict[str, str]:
    """Column -> a state name of its own (``substrate`` -> ``substrate_s``): the observable
    keeps the column's exact name, the state must not collide with it or with an input."""
    out: dict[str, str] = {}
    used = set(taken) | set(columns)
    for c in columns:
        stem = f"{_ident(c)}_s"
        name, i = stem, 2
        while name in used:
            name, i = f"{stem}{i}", i + 1
        used.add(name)
        out[c] = name
    return out


@dataclass
class _Entry:
    column: str
    index: int
    term: Term
    coef: float


def _family(term: Term) -> tuple[object, ...]:
    return (term.kind, term.variables, term.n)


def _prior(value: float, fold: float) -> PriorSpec:
    v = abs(value) if math.isfinite(value) and value != 0 else 1.0
    return PriorSpec("LogUniform", (v / fold, v * fold))


def render_structure(task: Task, ident: Identification, structure: Structure,
                     title: str | None = None) -> ModelSpec:
    """The spec of one identified structure (module docstring). Render with ``.render()``."""
    profile = DataProfile.from_task(task)
    cols = list(structure.equations)
    inputs = list(ident.inputs)
    names = state_names(cols, set(inputs))
    var_map = {**names, **{u: u for u in inputs}}
    params: list[ParamSpec] = []
    flows: list[FlowSpec] = []
    rates: list[RateSpec] = []
    counter: dict[str, int] = {}

    def fresh(stem: str) -> str:
        counter[stem] = counter.get(stem, 0) + 1
        return stem if counter[stem] == 1 else f"{stem}_{counter[stem]}"

    def expr_of(term: Term, K: float | None, who: str) -> str:
        renamed = Term(term.kind, tuple(var_map[v] for v in term.variables), term.K, term.n)
        if K is None:
            return renamed.expression()
        kname = fresh(f"K_{who}")
        params.append(ParamSpec(kname, _prior(K, K_FOLD), f"half-saturation constant "
                                f"of {renamed.label.split(' [')[0]}"))
        return renamed.expression(K=kname)

    entries = [_Entry(c, j, t, float(k)) for c in cols
               for j, (t, k) in enumerate(zip(structure.equations[c].terms,
                                              structure.equations[c].coefficients,
                                              strict=True))]
    used: set[int] = set()
    # losses of one state that are gains of another: flows between them
    for a_i, a in enumerate(entries):
        if a_i in used or a.coef >= 0 or not a.term.vanishes_when_zero(a.column):
            continue
        best = None
        for b_i, b in enumerate(entries):
            if b_i in used or b.column == a.column or b.coef <= 0:
                continue
            if _family(b.term) != _family(a.term):
                continue
            if a.term.K is not None and b.term.K is not None and \
                    max(a.term.K, b.term.K) / min(a.term.K, b.term.K) > 2.0:
                continue
            ratio = b.coef / abs(a.coef)
            if best is None or abs(math.log(ratio)) < abs(math.log(best[1])):
                best = (b_i, ratio)
        if best is None:
            continue
        b = entries[best[0]]
        used |= {a_i, best[0]}
        src, dst = names[a.column], names[b.column]
        K = math.sqrt(a.term.K * b.term.K) if a.term.K and b.term.K else None
        flow = fresh(f"{src}_to_{dst}")
        ratio = best[1]
        body = expr_of(a.term, K, flow)
        if 1 / FLOW_RATIO <= ratio <= FLOW_RATIO:
            c = fresh(f"r_{flow}")
            params.append(ParamSpec(c, _prior(math.sqrt(abs(a.coef) * b.coef), COEF_FOLD),
                                    f"rate of the flow {src} -> {dst}"))
            flows.append(FlowSpec(names[a.column], names[b.column], f"{c} * {body}", flow))
        else:
            c = fresh(f"r_{flow}")
            y = fresh(f"yield_{flow}")
            params.append(ParamSpec(c, _prior(abs(a.coef), COEF_FOLD),
                                    f"rate at which {src} is consumed"))
            params.append(ParamSpec(y, _prior(ratio, COEF_FOLD),
                                    f"{dst} gained per {src} consumed (yield)"))
            flows.append(FlowSpec(src, None, f"{c} * {body}", flow))
            flows.append(FlowSpec(None, dst, f"{y} * {flow}", fresh(f"{dst}_from_{src}")))
    for e_i, e in enumerate(entries):
        if e_i in used:
            continue
        x = names[e.column]
        stem = f"{'in' if e.coef > 0 else 'out'}_{x}"
        name = fresh(stem)
        c = fresh(f"r_{name}")
        params.append(ParamSpec(c, _prior(e.coef, COEF_FOLD),
                                f"coefficient of {e.term.label.split(' [')[0]} in d{x}/dt"))
        body = expr_of(e.term, e.term.K, name)
        if e.coef > 0:
            flows.append(FlowSpec(None, x, f"{c} * {body}", name))
        elif e.term.vanishes_when_zero(e.column):
            flows.append(FlowSpec(x, None, f"{c} * {body}", name))
        else:
            rates.append(RateSpec(x, f"-{c} * {body}"))

    inits, observes = [], []
    for c in cols:
        x = names[c]
        v0 = float(ident.first.get(c, profile.column(c).typical))
        p0 = fresh(f"{x}0")
        if v0 > 0:
            prior = PriorSpec("LogUniform", (v0 / INIT_FOLD, v0 * INIT_FOLD))
        else:
            spread = max(profile.column(c).spread, abs(v0), 1e-6)
            prior = PriorSpec("Uniform", (v0 - spread, v0 + spread))
        params.append(ParamSpec(p0, prior, f"initial {c}"))
        inits.append((x, p0))
        noise, p = noise_for(profile.column(c))
        params.append(p)
        observes.append(ObsSpec(c, x, noise, doc=f"observed {c}"))
    for d in ident.derived:
        quantity = Term(d.term.kind, tuple(var_map[v] for v in d.term.variables)).expression()
        k = fresh(f"k_{_ident(d.column)}")
        params.append(ParamSpec(k, _prior(d.coefficient, COEF_FOLD),
                                f"{d.column} per unit of {d.term.label}"))
        noise, p = noise_for(profile.column(d.column))
        params.append(p)
        observes.append(ObsSpec(d.column, quantity, noise, scale=k,
                                doc=f"{d.column}, read off the states ({d.term.label})"))
    controls = []
    for u in inputs:
        series = next(i for i in task.inputs if i.name == u)
        controls.append(ControlSpec(u, float(series.values[0]),
                                    series.doc or f"known input {u} (observed schedule)"))
    roles = [(f"input:{u}", u) for u in inputs] + [(c.lower(), names[c]) for c in cols]
    doc = "; ".join([*structure.describe(), *(d.describe() for d in ident.derived)])
    spec = ModelSpec(
        title=title or f"Discovered dynamics of {', '.join(cols)}", motif="discovered",
        time_unit=profile.time_unit, doc=doc[:600],
        states=tuple(StateSpec(names[c], f"{c} (observed directly)") for c in cols),
        params=tuple(params), controls=tuple(controls), flows=tuple(flows),
        rates=tuple(rates), inits=tuple(inits), observes=tuple(observes),
        roles=tuple(roles), edits=(f"{structure.n_terms} terms",))
    return avoid_column_clashes(spec)
