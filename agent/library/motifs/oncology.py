"""Tumour growth: exponential, logistic and Gompertz laws, with drug kill (a PK compartment
whose amount drives a log-kill term) and radiation kill (a dose-rate control).

Growth is written as an inflow (growth) and outflows (crowding, kill) so each outflow is
proportional to the tumour size and the volume stays non-negative. Rates are per day.
The radiation control defaults to 0, so the fit describes the untreated course and a
question like 'irradiate at 2 Gy/day from day 10 to 15' switches it on.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.library.motifs.base import Build, Builder, Motif, Slot, around
from agent.library.profile import ColumnProfile, DataProfile, parse_amount
from agent.library.spec import ModelSpec

__all__ = ["MOTIFS"]

_KEYWORDS = ("tumour", "tumor", "cancer", "chemotherapy", "radiation", "radiotherapy",
             "xenograft", "mm3", "metasta", "oncolog", "carcinoma", "lesion", "neoplasm",
             "cells", "treatment", "growth")
_VOLUME = Slot("volume", ("vol", "size", "tumo", "burden", "diam", "cells", "mass", "mm"))
_DRUG = Slot("drug", ("drug", "conc", "plasma", "chemo"))


def _tumour(profile: DataProfile, cols: Mapping[str, ColumnProfile], *, law: str,
            drug: bool, radiation: bool, name: str, title: str) -> ModelSpec:
    b = Builder(title, name, profile, f"{law} tumour growth"
                + (" with drug kill" if drug else "") + (" with radiation kill" if radiation
                                                        else ""))
    V = b.state("V", "tumour size")
    vol = cols.get("volume")
    size = vol.typical if vol else 100.0
    top = max(vol.maximum, size) if vol else size
    r = b.rate_param("r", 0.002, 2.0, "day", "growth rate")
    v0 = b.param("V0", "LogUniform", around(size, 5), "initial tumour size")
    if law == "Gompertz":
        K = b.param("K", "LogUniform", (top, top * 100), "plateau size")
        b.flow(None, V, f"{r} * {V} * log({K} / ({V} + 1e-12))", "growth")
    else:
        b.flow(None, V, f"{r} * {V}", "growth")
    if law == "logistic":
        K = b.param("K", "LogUniform", (top / 2, top * 100), "carrying capacity")
        b.flow(V, None, f"{r} * {V} * {V} / {K}", "crowding", saturating_in=V)
    b.init(V=v0)
    b.role(tumour=V, growth_rate=r, main_flow="growth")
    if drug:
        C = b.state("C", "drug amount driving the kill")
        k_el = b.rate_param("k_el", 0.05, 20.0, "day", "drug elimination rate")
        amount = parse_amount(profile.description)
        if amount is not None:
            c0 = b.constant("dose", amount, "initial drug dose (from the description)")
        else:
            c0 = b.param("C0", "LogUniform", (0.01, 100.0), "initial drug amount")
        kill = b.param("kill", "LogUniform", (1e-4 * profile.rate_factor("day") / 10,
                                              10.0 * profile.rate_factor("day")),
                       "kill rate per unit drug")
        b.flow(C, None, f"{k_el} * {C}", "drug_elimination")
        b.flow(V, None, f"{kill} * {C} * {V}", "drug_kill", saturating_in=C)
        b.inits.append((C, c0))
        b.role(drug=C, kill_rate=kill, dose_target=C, drug_elimination_rate=k_el)
        if "drug" in cols:
            b.observe(cols["drug"], C, doc="drug level")
    if radiation:
        u = b.control("radiation", 0.0, "radiation dose rate (e.g. Gy per day)")
        a = b.param("alpha_rad", "LogUniform", (1e-3, 2.0), "kill per unit radiation dose")
        b.flow(V, None, f"{a} * {u} * {V}", "radiation_kill")
        b.role(radiation_control=u, radiation_sensitivity=a)
        b.roles.setdefault("kill_rate", a)
    if vol is not None:
        b.observe(vol, V, doc="tumour size")
    return b.build()


def _make(law: str, drug: bool, radiation: bool, name: str, title: str) -> Build:
    def build(profile: DataProfile, cols: Mapping[str, ColumnProfile]) -> ModelSpec:
        return _tumour(profile, cols, law=law, drug=drug, radiation=radiation, name=name,
                       title=title)
    return build


MOTIFS = (
    Motif("tumour-gompertz", "oncology", "Gompertz tumour growth",
          _KEYWORDS + ("gompertz", "decelerat", "plateau", "slowing"), (_VOLUME,),
          _make("Gompertz", False, False, "tumour-gompertz", "Gompertz tumour growth"),
          prior=0.3),
    Motif("tumour-logistic", "oncology", "logistic tumour growth",
          _KEYWORDS + ("logistic", "carrying capacity"), (_VOLUME,),
          _make("logistic", False, False, "tumour-logistic", "Logistic tumour growth"),
          prior=0.2),
    Motif("tumour-exponential", "oncology", "exponential tumour growth",
          _KEYWORDS + ("exponential", "early", "doubling"), (_VOLUME,),
          _make("exponential", False, False, "tumour-exponential",
                "Exponential tumour growth"), prior=0.15),
    Motif("tumour-drug", "oncology", "Gompertz growth with PK-driven drug kill",
          _KEYWORDS + ("drug", "chemotherapy", "chemo", "dose", "cytotoxic", "kill"),
          (_VOLUME, _DRUG),
          _make("Gompertz", True, False, "tumour-drug", "Tumour growth with drug kill"),
          prior=0.1),
    Motif("tumour-radiation", "oncology", "Gompertz growth with radiation kill",
          _KEYWORDS + ("radiation", "radiotherapy", "irradiat", "gy", "fraction"),
          (_VOLUME,),
          _make("Gompertz", False, True, "tumour-radiation", "Tumour growth with radiation"),
          prior=0.1),
)
