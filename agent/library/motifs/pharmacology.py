"""Pharmacokinetics: one, two and three compartments, oral absorption from a gut depot,
and saturable (Michaelis-Menten) elimination.

The dose is read from the description when it names one ('a 100 mg oral dose'); then the
amount is a constant and the volume is identifiable from the concentrations. Otherwise
the initial amount is a parameter. The route is oral when the description says so (oral,
tablet, capsule, absorption), else an intravenous bolus into the central compartment.
Rates are per hour, converted to the task's unit; concentration is amount / volume.

A repeated oral regimen named in the description ('250 mg every 12 hours, 7 doses',
'at hours 0, 12 and 24') is part of the model: the first dose starts in the gut depot and
each later dose is absorbed from its own depot, integrated exactly
(``ka * dose * exp(-ka (t - t_k))`` from ``t_k`` on), so the state-space model stays an
ODE while the gut state remains the handle for extra doses in a what-if question.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from agent.library.motifs.base import Build, Builder, Motif, Slot, noise_for
from agent.library.profile import ColumnProfile, DataProfile, parse_amount
from agent.library.questions import dose_schedule
from agent.library.refine import add_peripheral, saturate
from agent.library.spec import ModelSpec, ObsSpec, ParamSpec, PriorSpec

__all__ = ["MOTIFS"]

_KEYWORDS = ("dose", "drug", "plasma", "concentration", "mg", "clearance", "infusion",
             "pharmacokinetic", "pk", "compartment", "elimination", "half-life", "bolus",
             "serum", "administered", "pharmaco", "metabolism", "renal")
_ORAL = ("oral", "tablet", "capsule", "absorption", "swallow", "by mouth", "ingest")
_CONC = Slot("concentration", ("conc", "plasma", "cp", "level", "serum", "blood", "drug"))
_PERI = Slot("peripheral", ("tissue", "periph", "effect", "csf"))


def _oral(profile: DataProfile) -> bool:
    text = profile.description.lower()
    return any(k in text for k in _ORAL)


def _pk(profile: DataProfile, cols: Mapping[str, ColumnProfile], *, compartments: int,
        oral: bool, michaelis: bool, name: str, title: str) -> ModelSpec:
    b = Builder(title, name, profile, "drug amounts in compartments; concentration = amount/V")
    gut = b.state("gut", "drug in the gut depot") if oral else None
    central = b.state("central", "drug amount in plasma")
    conc = cols.get("concentration")
    cmax = max(conc.maximum, 1e-6) if conc else 1.0
    dose = parse_amount(profile.description)
    V = b.param("V", "LogUniform", (0.5, 500.0), "central volume of distribution")
    if dose is not None:
        amount = b.constant("dose", dose, "dose amount (from the description)")
    else:
        amount = b.param("A0", "LogUniform", (cmax * 0.5, cmax * 1000.0), "initial dose amount")
    k_el = b.rate_param("k_el", 0.005, 5.0, "hour", "elimination rate constant")
    first = amount
    if oral:
        ka = b.rate_param("ka", 0.05, 10.0, "hour", "absorption rate constant")
        b.flow(gut, central, f"{ka} * {gut}", "absorption")
        b.role(absorption_rate=ka)
        later = _later_doses(profile, b, amount, ka)
        if later:
            first, terms = later
            b.flow(None, central, f"{ka} * {amount} * ({terms})", "scheduled_absorption")
    b.flow(central, None, f"{k_el} * {central}", "elimination", saturating_in=central)
    b.init(**({"gut": first, "central": "0"} if oral else {"central": amount}))
    if conc is not None:
        b.observe(conc, central, f"1 / {V}", "plasma concentration")
    b.role(central=central, elimination_rate=k_el, volume=V, dose_target=gut or central,
           main_flow="elimination")
    spec = b.build()
    for _ in range(compartments - 1):
        spec = add_peripheral(spec, central) or spec
    if michaelis:
        spec = saturate(spec, central) or spec
    spec = replace(spec, edits=())
    if "peripheral" in cols and compartments >= 2:
        # the peripheral slot is observed as a concentration in the first peripheral volume
        noise, p = noise_for(cols["peripheral"])
        v2 = ParamSpec(spec.fresh("V2"), PriorSpec("LogUniform", (0.5, 1000.0)),
                       "peripheral volume")
        spec = replace(spec, params=(*spec.params, v2, p), observes=(*spec.observes, ObsSpec(
            cols["peripheral"].name, spec.role_map["peripheral"], noise, f"1 / {v2.name}",
            "peripheral concentration")))
    return spec


def _later_doses(profile: DataProfile, b: Builder, amount: str,
                 ka: str) -> tuple[str, str] | None:
    """A repeated regimen in the description: the initial gut content (doses at or
    before the first observation) and the sum of exact depot terms for later doses;
    None for a single dose."""
    times = dose_schedule(profile.description, profile.time_unit)
    if len(times) < 2:
        return None
    early = sum(1 for x in times if x <= profile.t0)
    later = [x for x in times if x > profile.t0]
    if not later:
        return None
    t = b.let("t", "model.t")
    terms = " + ".join(f"exp(-{ka} * Max({t} - {x:g}, 0)) * Heaviside({t} - {x:g})"
                       for x in later)
    first = amount if early == 1 else (f"{early} * {amount}" if early else "0")
    return first, terms


def _make(compartments: int, oral: bool | None, michaelis: bool, name: str,
          title: str) -> Build:
    def build(profile: DataProfile, cols: Mapping[str, ColumnProfile]) -> ModelSpec:
        route = _oral(profile) if oral is None else oral
        return _pk(profile, cols, compartments=compartments, oral=route, michaelis=michaelis,
                   name=name, title=title + (", oral" if route else ", IV bolus"))
    return build


MOTIFS = (
    Motif("pk-1cpt", "pharmacology", "one-compartment PK", _KEYWORDS + ("one-compartment",),
          (_CONC,), _make(1, False, False, "pk-1cpt", "One-compartment PK"), prior=0.3),
    Motif("pk-oral", "pharmacology", "one-compartment PK with oral absorption",
          _KEYWORDS + _ORAL, (_CONC,),
          _make(1, True, False, "pk-oral", "One-compartment PK"), prior=0.25),
    Motif("pk-2cpt", "pharmacology", "two-compartment PK",
          _KEYWORDS + ("two-compartment", "biphasic", "peripheral", "tissue", "distribution"),
          (_CONC, _PERI), _make(2, None, False, "pk-2cpt", "Two-compartment PK"), prior=0.2),
    Motif("pk-3cpt", "pharmacology", "three-compartment PK",
          _KEYWORDS + ("three-compartment", "triphasic", "deep tissue"),
          (_CONC, _PERI), _make(3, None, False, "pk-3cpt", "Three-compartment PK"), prior=0.0),
    Motif("pk-michaelis-menten", "pharmacology", "saturable (Michaelis-Menten) elimination",
          _KEYWORDS + ("saturable", "michaelis", "menten", "nonlinear", "enzyme",
                       "capacity-limited", "saturation"),
          (_CONC,), _make(1, None, True, "pk-michaelis-menten", "Michaelis-Menten PK"),
          prior=0.1),
)
