"""Population dynamics: logistic growth, Lotka-Volterra, Rosenzweig-MacArthur (logistic
prey, Holling II predation) and a three-level food chain.

Rates are written per year (the natural unit of field census data) and converted to the
task's unit; interaction rates are scaled by the observed population sizes so the priors
cover the truth whatever units the counts are in. Every population has a harvest control
(default 0) so culling or fishing questions map onto the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from agent.library.motifs.base import Builder, Motif, Slot, around
from agent.library.profile import ColumnProfile, DataProfile
from agent.library.refine import saturate
from agent.library.spec import ModelSpec

__all__ = ["MOTIFS"]

_KEYWORDS = ("predator", "prey", "population", "species", "hare", "lynx", "wolves", "wolf",
             "fish", "plankton", "food chain", "carrying capacity", "harvest", "ecosystem",
             "animals", "pelts", "census", "abundance", "biomass", "ecolog", "moose",
             "rabbits", "foxes", "herbivore", "grazing", "density")
_PREY = ("prey", "hare", "rabbit", "deer", "moose", "aphid", "phyto", "algae", "resource",
         "herbiv", "vole", "mouse", "mice")
_PRED = ("predator", "pred", "lynx", "fox", "wolf", "wolves", "shark", "owl", "coyote",
         "ladybird", "cat", "zoo", "consumer")


def _size(cols: Mapping[str, ColumnProfile], slot: str, default: float = 10.0) -> float:
    return cols[slot].typical if slot in cols else default


def _harvest(b: Builder, state: str, label: str, *also: str) -> None:
    """A removal control on ``state``; ``also`` names further roles it plays (the top of a
    food chain is "the predator" to a question about predators)."""
    u = b.control(f"{label}_harvest", 0.0, f"fraction of {label} removed per unit time")
    b.flow(state, None, f"{u} * {state}", f"{label}_removal")
    b.role(**{f"{name}_harvest_control": u for name in (label, *also)})


def _logistic(profile: DataProfile, cols: Mapping[str, ColumnProfile]) -> ModelSpec:
    b = Builder("Logistic growth", "logistic", profile, "one population limited by crowding")
    X = b.state("X", "population")
    size = _size(cols, "population")
    top = max(cols["population"].maximum, size) if "population" in cols else size
    r = b.rate_param("r", 0.05, 10.0, "year", "intrinsic growth rate")
    K = b.param("K", "LogUniform", (top / 2, top * 50), "carrying capacity")
    x0 = b.param("X0", "LogUniform", around(size, 5), "initial population")
    b.flow(None, X, f"{r} * {X}", "births")
    b.flow(X, None, f"{r} * {X} * {X} / {K}", "crowding")
    _harvest(b, X, "population")
    b.init(X=x0)
    if "population" in cols:
        b.observe(cols["population"], X, doc="population size")
    b.role(population=X, growth_rate=r, carrying_capacity=K, dose_target=X, main_flow="births")
    return b.build()


def _predator_prey(profile: DataProfile, cols: Mapping[str, ColumnProfile], *,
                   logistic_prey: bool, holling: bool, name: str, title: str) -> ModelSpec:
    b = Builder(title, name, profile, "prey eaten by predators; predators grow on prey eaten")
    H = b.state("prey", "prey population")
    P = b.state("predator", "predator population")
    h, p = _size(cols, "prey"), _size(cols, "predator")
    f = profile.rate_factor("year")
    alpha = b.rate_param("alpha", 0.05, 5.0, "year", "prey growth rate")
    beta = b.param("beta", "LogUniform", (0.005 * f / p, 5.0 * f / p), "predation rate")
    delta = b.param("delta", "LogUniform", (0.005 * f / h, 5.0 * f / h),
                    "predator growth per prey eaten")
    gamma = b.rate_param("gamma", 0.05, 5.0, "year", "predator death rate")
    h0 = b.param("prey0", "LogUniform", around(h, 5), "initial prey")
    p0 = b.param("predator0", "LogUniform", around(p, 5), "initial predators")
    b.flow(None, H, f"{alpha} * {H}", "prey_births")
    if logistic_prey:
        top = max(cols["prey"].maximum, h) if "prey" in cols else h
        K = b.param("K", "LogUniform", (top / 2, top * 50), "prey carrying capacity")
        b.flow(H, None, f"{alpha} * {H} * {H} / {K}", "prey_crowding")
        b.role(carrying_capacity=K)
    b.flow(H, None, f"{beta} * {H} * {P}", "predation", saturating_in=H)
    b.flow(None, P, f"{delta} * {H} * {P}", "predator_births", saturating_in=H)
    b.flow(P, None, f"{gamma} * {P}", "predator_deaths")
    _harvest(b, H, "prey")
    _harvest(b, P, "predator")
    b.init(prey=h0, predator=p0)
    if "prey" in cols:
        b.observe(cols["prey"], H, doc="prey abundance")
    if "predator" in cols:
        b.observe(cols["predator"], P, doc="predator abundance")
    b.role(prey=H, predator=P, prey_growth=alpha, predation_rate=beta, conversion_rate=delta,
           predator_death_rate=gamma, main_flow="predation", dose_target=H)
    spec = b.build()
    if holling:  # built in, not an edit: the motif itself is the saturating one
        spec = replace(saturate(spec, H) or spec, edits=())
    return spec


def _lv(profile: DataProfile, cols: Mapping[str, ColumnProfile]) -> ModelSpec:
    return _predator_prey(profile, cols, logistic_prey=False, holling=False,
                          name="Lotka-Volterra", title="Lotka-Volterra predator-prey")


def _rm(profile: DataProfile, cols: Mapping[str, ColumnProfile]) -> ModelSpec:
    return _predator_prey(profile, cols, logistic_prey=True, holling=True,
                          name="Rosenzweig-MacArthur",
                          title="Rosenzweig-MacArthur (logistic prey, Holling II predation)")


def _food_chain(profile: DataProfile, cols: Mapping[str, ColumnProfile]) -> ModelSpec:
    b = Builder("Three-level food chain", "food-chain", profile,
                "resource, consumer and top predator with saturating feeding")
    R, C, P = (b.state("resource", "basal resource"), b.state("consumer", "consumer"),
               b.state("top", "top predator"))
    sizes = {k: _size(cols, k) for k in ("resource", "consumer", "top")}
    f = profile.rate_factor("year")
    r = b.rate_param("r", 0.05, 10.0, "year", "resource growth rate")
    top_r = max(cols["resource"].maximum, sizes["resource"]) if "resource" in cols \
        else sizes["resource"]
    K = b.param("K", "LogUniform", (top_r / 2, top_r * 50), "resource carrying capacity")
    a1 = b.param("a1", "LogUniform", (0.005 * f / sizes["consumer"], 5 * f / sizes["consumer"]),
                 "consumption rate of resource")
    e1 = b.param("e1", "LogUniform", (0.005 * f / sizes["resource"], 5 * f / sizes["resource"]),
                 "consumer growth per resource eaten")
    a2 = b.param("a2", "LogUniform", (0.005 * f / sizes["top"], 5 * f / sizes["top"]),
                 "predation rate on consumers")
    e2 = b.param("e2", "LogUniform", (0.005 * f / sizes["consumer"], 5 * f / sizes["consumer"]),
                 "top predator growth per consumer eaten")
    d1 = b.rate_param("d1", 0.05, 5.0, "year", "consumer death rate")
    d2 = b.rate_param("d2", 0.02, 5.0, "year", "top predator death rate")
    inits = {k: b.param(f"{k}0", "LogUniform", around(v, 5), f"initial {k}")
             for k, v in sizes.items()}
    b.flow(None, R, f"{r} * {R}", "resource_growth")
    b.flow(R, None, f"{r} * {R} * {R} / {K}", "resource_crowding")
    b.flow(R, None, f"{a1} * {R} * {C}", "grazing", saturating_in=R)
    b.flow(None, C, f"{e1} * {R} * {C}", "consumer_births", saturating_in=R)
    b.flow(C, None, f"{d1} * {C}", "consumer_deaths")
    b.flow(C, None, f"{a2} * {C} * {P}", "predation", saturating_in=C)
    b.flow(None, P, f"{e2} * {C} * {P}", "top_births", saturating_in=C)
    b.flow(P, None, f"{d2} * {P}", "top_deaths")
    _harvest(b, P, "top", "predator")
    b.init(**{k: v for k, v in inits.items()})
    for key, state in (("resource", R), ("consumer", C), ("top", P)):
        if key in cols:
            b.observe(cols[key], state, doc=f"{key} abundance")
    b.role(prey=C, predator=P, resource=R, consumer=C, top_predator=P, prey_growth=r,
           predation_rate=a2, predator_death_rate=d2, main_flow="predation", dose_target=R)
    return b.build()


_PP_SLOTS = (Slot("prey", _PREY), Slot("predator", _PRED))
MOTIFS = (
    Motif("Lotka-Volterra", "ecology", "Lotka-Volterra predator-prey",
          _KEYWORDS + ("cycle", "oscillat", "lotka", "volterra"), _PP_SLOTS, _lv, prior=0.3),
    Motif("Rosenzweig-MacArthur", "ecology", "logistic prey with Holling II predation",
          _KEYWORDS + ("saturat", "handling", "holling", "satiat", "functional response"),
          _PP_SLOTS, _rm, prior=0.2),
    Motif("logistic", "ecology", "logistic growth",
          _KEYWORDS + ("carrying capacity", "single species", "bacteria", "yeast", "colony",
                       "logistic", "growth curve"),
          (Slot("population", ("pop", "count", "density", "biomass", "abundance", "size",
                               "cells", "od", "number")),), _logistic, prior=0.1),
    Motif("food-chain", "ecology", "three-level food chain",
          _KEYWORDS + ("three", "top predator", "chain", "trophic", "zooplankton",
                       "phytoplankton"),
          (Slot("resource", ("resource", "plant", "phyto", "algae", "grass", "nutrient")),
           Slot("consumer", ("consumer", "herbiv", "zoo", "intermediate", *_PREY[:-1])),
           Slot("top", ("top", "carniv", "fish", *_PRED[:-2]))), _food_chain, prior=0.0),
)
