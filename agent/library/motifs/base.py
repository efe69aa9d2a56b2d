"""The motif record and the small builder motifs use to assemble a :class:`ModelSpec`.

A motif is a textbook structure plus the observable *slots* it can explain (``cases``,
``prey``, ``concentration``...). Columns are matched to slots by name, then by order; the
observable takes the column's exact name and a noise model chosen by the column's kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.library.profile import ColumnProfile, DataProfile
from agent.library.spec import (
    ConstSpec,
    ControlSpec,
    FlowSpec,
    LetSpec,
    ModelSpec,
    ObsSpec,
    ParamSpec,
    PriorSpec,
    StateSpec,
    rename,
)

__all__ = ["Builder", "Motif", "Slot", "assign_columns", "noise_for"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Slot:
    """Something a motif can be observed through, and the column names that suggest it."""

    key: str
    keywords: tuple[str, ...]


Build = Callable[[DataProfile, Mapping[str, ColumnProfile]], ModelSpec]


@dataclass(frozen=True)
class Motif:
    """A textbook structure: ``build(profile, {slot: column})`` renders it for a task."""

    name: str
    domain: str
    title: str
    keywords: tuple[str, ...]
    slots: tuple[Slot, ...]
    build: Build
    prior: float = 0.0  # preference among motifs of one domain when nothing else decides


def assign_columns(motif: Motif, profile: DataProfile) -> dict[str, ColumnProfile] | None:
    """Map each observed column to a slot: by keyword first, then in order of the slots.

    None when the motif has fewer slots than there are columns (it cannot explain them).
    """
    columns = list(profile.columns)
    if len(columns) > len(motif.slots):
        return None
    out: dict[str, ColumnProfile] = {}
    left = []
    for col in columns:
        low = col.name.lower()
        slot = next((s for s in motif.slots if s.key not in out
                     and any(k in low for k in s.keywords)), None)
        if slot is None:
            left.append(col)
        else:
            out[slot.key] = col
    free = [s for s in motif.slots if s.key not in out]
    for col, slot in zip(left, free, strict=False):
        out[slot.key] = col
    return out


def noise_for(col: ColumnProfile) -> tuple[str, ParamSpec]:
    """Counts -> negative binomial; positive continuous -> log-normal; else Gaussian."""
    if col.kind == "count":
        p = ParamSpec(f"phi_{col.name}", PriorSpec("LogUniform", (0.5, 1000.0)),
                      f"negative binomial dispersion of {col.name}")
        return f"NegBinomial({p.name})", p
    if col.kind == "positive":
        p = ParamSpec(f"sd_{col.name}", PriorSpec("LogUniform", (0.01, 2.0)),
                      f"log-scale noise of {col.name}")
        return f"LogNormalNoise({p.name})", p
    scale = max(col.spread, abs(col.mean), 1e-6)
    p = ParamSpec(f"sd_{col.name}", PriorSpec("LogUniform", (scale * 1e-3, scale * 3.0)),
                  f"measurement noise of {col.name}")
    return f"Gaussian({p.name})", p


def avoid_column_clashes(spec: ModelSpec) -> ModelSpec:
    """Observables must carry the columns' exact names; a parameter, flow or helper of the
    motif with one of those names is renamed instead (a state may share it)."""
    for o in spec.observes:
        declared = {x.name for group in (spec.params, spec.constants, spec.controls, spec.lets,
                                          spec.neurals, spec.flows) for x in group}
        if o.name in declared:
            spec = rename(spec, o.name, spec.fresh(f"{o.name}_m"))
    return spec


def around(value: float, fold: float = 10.0) -> tuple[float, float]:
    """A log-uniform range ``fold``-wide either side of a positive value."""
    v = value if math.isfinite(value) and value > 0 else 1.0
    return v / fold, v * fold


class Builder:
    """Mutable scratch pad for one motif; ``build()`` freezes it into a ModelSpec."""

    def __init__(self, title: str, motif: str, profile: DataProfile, doc: str = "") -> None:
        self.title, self.motif, self.profile, self.doc = title, motif, profile, doc
        self.states: list[StateSpec] = []
        self.params: list[ParamSpec] = []
        self.constants: list[ConstSpec] = []
        self.controls: list[ControlSpec] = []
        self.lets: list[LetSpec] = []
        self.flows: list[FlowSpec] = []
        self.inits: list[tuple[str, str]] = []
        self.observes: list[ObsSpec] = []
        self.roles: dict[str, str] = {}

    def state(self, name: str, doc: str = "") -> str:
        self.states.append(StateSpec(name, doc))
        return name

    def param(self, name: str, kind: str, args: tuple[float, ...], doc: str = "",
              unit: str = "") -> str:
        self.params.append(ParamSpec(name, PriorSpec(kind, args), doc, unit))
        return name

    def rate_param(self, name: str, lo: float, hi: float, native: str, doc: str = "") -> str:
        """A rate whose prior is written per ``native`` time unit, converted to the task's."""
        f = self.profile.rate_factor(native)
        return self.param(name, "LogUniform", (lo * f, hi * f), doc,
                          f"1/{self.profile.time_unit}")

    def constant(self, name: str, value: float, doc: str = "") -> str:
        self.constants.append(ConstSpec(name, value, doc))
        return name

    def control(self, name: str, default: float = 0.0, doc: str = "") -> str:
        self.controls.append(ControlSpec(name, default, doc))
        return name

    def let(self, name: str, expr: str) -> str:
        self.lets.append(LetSpec(name, expr))
        return name

    def flow(self, source: str | None, target: str | None, rate: str, name: str,
             saturating_in: str | None = None) -> str:
        self.flows.append(FlowSpec(source, target, rate, name, saturating_in))
        return name

    def init(self, **values: str | float) -> None:
        self.inits.extend((k, str(v)) for k, v in values.items())

    def observe(self, col: ColumnProfile, quantity: str, scale: str = "", doc: str = "") -> None:
        noise, p = noise_for(col)
        self.params.append(p)
        self.observes.append(ObsSpec(col.name, quantity, noise, scale, doc))

    def role(self, **roles: str) -> None:
        self.roles.update(roles)

    def build(self) -> ModelSpec:
        """Freeze, dropping parameters nothing reads (e.g. a reporting fraction when only
        deaths are observed): the checks reject unused parameters as unidentifiable."""
        texts = [f.rate for f in self.flows] + [v for _, v in self.inits] + [
            x for o in self.observes for x in (o.quantity, o.scale, o.noise)] + [
            let.expr for let in self.lets]
        used = {tok for text in texts for tok in _IDENT.findall(text)}
        used |= {f.saturation for f in self.flows if f.saturation}
        params = tuple(p for p in self.params if p.name in used)
        dropped = {p.name for p in self.params} - used
        roles = tuple((k, v) for k, v in self.roles.items() if v and v not in dropped)
        spec = ModelSpec(
            title=self.title, motif=self.motif, time_unit=self.profile.time_unit, doc=self.doc,
            states=tuple(self.states), params=params,
            constants=tuple(self.constants), controls=tuple(self.controls),
            lets=tuple(self.lets), flows=tuple(self.flows), inits=tuple(self.inits),
            observes=tuple(self.observes), roles=roles)
        return avoid_column_clashes(spec)
