"""A structural description of a library model that renders to DSL module source.

Motifs build a :class:`ModelSpec`; refinements and repairs edit the spec (add a state, a
flow, a saturation or a neural factor) and re-render it, so no edit ever pattern-matches
generated text. The spec travels inside the rendered module as a one-line JSON comment,
which lets the proposer refine or repair a candidate it wrote in an earlier process (a
resumed run) without keeping state of its own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mechanistic.untrusted import parse_json

__all__ = [
    "SPEC_MARKER",
    "ConstSpec",
    "ControlSpec",
    "FlowSpec",
    "LetSpec",
    "ModelSpec",
    "NeuralSpec",
    "ObsSpec",
    "ParamSpec",
    "PriorSpec",
    "RateSpec",
    "StateSpec",
    "rename",
    "spec_from_source",
]

SPEC_MARKER = "# mmw-library-spec: "
_PRIOR_KINDS = ("Uniform", "LogUniform", "Normal", "LogNormal", "HalfNormal", "Fixed")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _num(value: float) -> str:
    """A number as short, exact-enough source text (repr keeps round-trips lossless)."""
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value)) if abs(value) < 1e6 else f"{value:.6g}"
    return f"{value:.6g}"


@dataclass(frozen=True)
class PriorSpec:
    kind: str
    args: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in _PRIOR_KINDS:
            raise ValueError(f"unknown prior kind {self.kind!r}")
        object.__setattr__(self, "args", tuple(float(a) for a in self.args))

    def render(self) -> str:
        return f"{self.kind}({', '.join(_num(a) for a in self.args)})"

    def narrowed(self, factor: float = 0.5) -> PriorSpec:
        """The same centre, a range ``factor`` as wide (in log space for LogUniform):
        the repair for fits that wander into regions where the simulation diverges."""
        if self.kind == "LogUniform":
            lo, hi = math.log(self.args[0]), math.log(self.args[1])
            mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * factor
            return PriorSpec("LogUniform", (math.exp(mid - half), math.exp(mid + half)))
        if self.kind == "Uniform":
            lo, hi = self.args
            mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * factor
            return PriorSpec("Uniform", (mid - half, mid + half))
        if self.kind in ("Normal", "LogNormal"):
            return PriorSpec(self.kind, (self.args[0], self.args[1] * factor))
        if self.kind == "HalfNormal":
            return PriorSpec(self.kind, (self.args[0] * factor,))
        return self


@dataclass(frozen=True)
class StateSpec:
    name: str
    doc: str = ""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    prior: PriorSpec
    doc: str = ""
    unit: str = ""


@dataclass(frozen=True)
class ConstSpec:
    name: str
    value: float
    doc: str = ""


@dataclass(frozen=True)
class ControlSpec:
    name: str
    default: float = 0.0
    doc: str = ""


@dataclass(frozen=True)
class LetSpec:
    """A helper expression bound to a Python name (e.g. ``N = S + I + R``)."""

    name: str
    expr: str


@dataclass(frozen=True)
class NeuralSpec:
    name: str
    inputs: tuple[str, ...]
    hidden: tuple[int, ...] = (8, 8)
    doc: str = ""


@dataclass(frozen=True)
class FlowSpec:
    """A flow whose rate is bound to a Python variable named like the flow, so
    observables and other flows can read it (``rho * infection``).

    ``saturating_in``: the state in whose density this rate may saturate (the saturating
    refinement turns ``r`` into ``r / (1 + X/K)``, Holling II / Michaelis-Menten);
    ``saturation``: the parameter K once it has. ``neural``: a learned factor
    ``exp(g(...))`` multiplying the rate (a fresh network outputs 0, so the factor starts
    at 1 and the mechanistic model is the starting point).
    """

    source: str | None
    target: str | None
    rate: str
    name: str
    saturating_in: str | None = None
    saturation: str | None = None
    neural: str | None = None

    def expr(self) -> str:
        rate = self.rate
        if self.saturation:
            rate = f"({rate}) / (1 + {self.saturating_in} / {self.saturation})"
        if self.neural:
            rate = f"({rate}) * exp({self.neural})"
        return rate


@dataclass(frozen=True)
class RateSpec:
    state: str
    expr: str


@dataclass(frozen=True)
class ObsSpec:
    """An observable ``scale * quantity``; ``quantity`` is a state, flow or expression,
    kept apart from ``scale`` so a reporting-delay edit can swap what is measured."""

    name: str
    quantity: str
    noise: str
    scale: str = ""
    doc: str = ""

    def expr(self) -> str:
        return f"{self.scale} * {self.quantity}" if self.scale else self.quantity


@dataclass(frozen=True)
class ModelSpec:
    title: str
    motif: str
    time_unit: str
    doc: str = ""
    states: tuple[StateSpec, ...] = ()
    params: tuple[ParamSpec, ...] = ()
    constants: tuple[ConstSpec, ...] = ()
    controls: tuple[ControlSpec, ...] = ()
    lets: tuple[LetSpec, ...] = ()
    neurals: tuple[NeuralSpec, ...] = ()
    flows: tuple[FlowSpec, ...] = ()
    rates: tuple[RateSpec, ...] = ()
    inits: tuple[tuple[str, str], ...] = ()
    observes: tuple[ObsSpec, ...] = ()
    roles: tuple[tuple[str, str], ...] = ()
    edits: tuple[str, ...] = field(default=())

    # ----------------------------------------------------------------- queries
    @property
    def role_map(self) -> dict[str, str]:
        return dict(self.roles)

    @property
    def state_names(self) -> list[str]:
        return [s.name for s in self.states]

    @property
    def structure(self) -> str:
        """A short label: motif plus the edits applied, for the ranked table."""
        return " + ".join([self.motif, *self.edits])

    def names(self) -> set[str]:
        """Every Python name the rendered module binds (to avoid collisions)."""
        out = {"model", "Model", "N"} | _FUNCTIONS | _NOISES | set(_PRIOR_KINDS)
        for group in (self.states, self.params, self.constants, self.controls, self.lets,
                      self.neurals, self.flows):
            out |= {item.name for item in group}
        return out

    def fresh(self, stem: str) -> str:
        """``stem`` or ``stem_2``, ``stem_3``, ... whichever is not taken."""
        taken = self.names() | {o.name for o in self.observes}
        if stem not in taken:
            return stem
        i = 2
        while f"{stem}_{i}" in taken:
            i += 1
        return f"{stem}_{i}"

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    def flow(self, name: str) -> FlowSpec | None:
        return next((f for f in self.flows if f.name == name), None)

    # ------------------------------------------------------------------ edits
    def with_roles(self, **roles: str) -> ModelSpec:
        merged = {**self.role_map, **roles}
        return replace(self, roles=tuple(merged.items()))

    def with_edit(self, label: str) -> ModelSpec:
        return replace(self, edits=(*self.edits, label))

    def replace_flow(self, name: str, new: FlowSpec) -> ModelSpec:
        return replace(self, flows=tuple(new if f.name == name else f for f in self.flows))

    # ---------------------------------------------------------------- render
    def render(self) -> str:
        """The DSL module: imports only from ``mechanistic``, one ``Model`` named model."""
        return "\n".join(self._lines())

    def _lines(self) -> list[str]:
        body: list[str] = []
        body.append(f"model = Model({self.title!r}, time_unit={self.time_unit!r},")
        body.append(f"              doc={self.doc!r})")
        if self.states:
            names = " ".join(s.name for s in self.states)
            lhs = ", ".join(s.name for s in self.states)
            comma = "," if len(self.states) == 1 else ""
            body.append(f"{lhs}{comma} = model.states({names!r})")
        for p in self.params:
            extra = f", unit={p.unit!r}" if p.unit else ""
            body.append(f"{p.name} = model.param({p.name!r}, {p.prior.render()}, "
                        f"doc={p.doc!r}{extra})")
        for c in self.constants:
            body.append(f"{c.name} = model.constant({c.name!r}, {_num(c.value)}, doc={c.doc!r})")
        for c in self.controls:
            body.append(f"{c.name} = model.control({c.name!r}, default={_num(c.default)}, "
                        f"doc={c.doc!r})")
        for let in self.lets:
            body.append(f"{let.name} = {let.expr}")
        for n in self.neurals:
            body.append(f"{n.name} = model.neural({n.name!r}, inputs=[{', '.join(n.inputs)}], "
                        f"hidden={n.hidden!r}, doc={n.doc!r})")
        for f in self.flows:
            body.append(f"{f.name} = {f.expr()}")
        for f in self.flows:
            body.append(f"model.flow({f.source}, {f.target}, {f.name}, name={f.name!r})")
        for r in self.rates:
            body.append(f"model.rate({r.state}, {r.expr})")
        if self.inits:
            body.append("model.init(" + ", ".join(f"{k}={v}" for k, v in self.inits) + ")")
        for o in self.observes:
            body.append(f"model.observe({o.name!r}, {o.expr()}, noise={o.noise}, doc={o.doc!r})")
        used = {tok for line in body for tok in _IDENT.findall(line)}
        imports = sorted(({"Model"} | _FUNCTIONS | set(_PRIOR_KINDS) | _NOISES) & used)
        header = [f'"""{self.title}: {self.doc or self.motif} (mmw library motif {self.motif}'
                  + (f"; edits: {', '.join(self.edits)}" if self.edits else "") + ')."""',
                  "", f"from mechanistic import {', '.join(imports)}", ""]
        return [*header, *body, "", SPEC_MARKER + json.dumps(spec_to_dict(self)), ""]


_NOISES = {"Gaussian", "LogNormalNoise", "NegBinomial", "Poisson", "PropAdd"}
_FUNCTIONS = {"exp", "log", "Max", "Min", "sqrt", "tanh", "Heaviside"}


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    return asdict(spec)


def spec_from_dict(data: Mapping[str, Any]) -> ModelSpec:
    """Rebuild a spec from its JSON form (lists back to tuples, nested records)."""
    def many(cls: type, key: str) -> tuple[Any, ...]:
        return tuple(cls(**_tuples(item)) for item in data.get(key, ()))

    params = tuple(ParamSpec(p["name"], PriorSpec(p["prior"]["kind"], tuple(p["prior"]["args"])),
                             p.get("doc", ""), p.get("unit", "")) for p in data.get("params", ()))
    return ModelSpec(
        title=data["title"], motif=data["motif"], time_unit=data["time_unit"],
        doc=data.get("doc", ""), states=many(StateSpec, "states"), params=params,
        constants=many(ConstSpec, "constants"), controls=many(ControlSpec, "controls"),
        lets=many(LetSpec, "lets"), neurals=many(NeuralSpec, "neurals"),
        flows=many(FlowSpec, "flows"), rates=many(RateSpec, "rates"),
        inits=tuple(tuple(x) for x in data.get("inits", ())),  # type: ignore[misc]
        observes=many(ObsSpec, "observes"),
        roles=tuple(tuple(x) for x in data.get("roles", ())),  # type: ignore[misc]
        edits=tuple(data.get("edits", ())),
    )


def _tuples(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}


def spec_from_source(source: str) -> ModelSpec | None:
    """The spec embedded in a module this library rendered; None for any other source."""
    for line in reversed(source.splitlines()):
        if line.startswith(SPEC_MARKER):
            try:
                # the source may be an LLM's, with a forged marker line: bounded parse
                return spec_from_dict(parse_json(line[len(SPEC_MARKER):], "the spec line"))
            except (ValueError, KeyError, TypeError):
                return None
    return None


def rename(spec: ModelSpec, old: str, new: str) -> ModelSpec:
    """Rename one module name everywhere it is read or declared (whole tokens only).

    Used when a data column's name collides with a parameter or helper of the motif
    (a column called ``beta``): the observable must keep the column's name.
    """
    pattern = re.compile(rf"\b{re.escape(old)}\b")

    def sub(text: str | None) -> str | None:
        return None if text is None else pattern.sub(new, text)

    def named(item: Any) -> Any:
        return replace(item, name=new) if getattr(item, "name", None) == old else item

    flows = tuple(replace(named(f), source=new if f.source == old else f.source,
                          target=new if f.target == old else f.target, rate=sub(f.rate),
                          saturating_in=sub(f.saturating_in), saturation=sub(f.saturation),
                          neural=sub(f.neural)) for f in spec.flows)
    return replace(
        spec, states=tuple(named(s) for s in spec.states),
        params=tuple(named(p) for p in spec.params),
        constants=tuple(named(c) for c in spec.constants),
        controls=tuple(named(c) for c in spec.controls),
        lets=tuple(replace(named(x), expr=sub(x.expr)) for x in spec.lets),
        neurals=tuple(replace(named(n), inputs=tuple(sub(i) for i in n.inputs))
                      for n in spec.neurals),
        flows=flows,
        rates=tuple(RateSpec(new if r.state == old else r.state, sub(r.expr) or "")
                    for r in spec.rates),
        inits=tuple((new if k == old else k, sub(v) or "") for k, v in spec.inits),
        observes=tuple(replace(o, quantity=sub(o.quantity), scale=sub(o.scale),
                               noise=sub(o.noise)) for o in spec.observes),
        roles=tuple((k, new if v == old else v) for k, v in spec.roles))
