"""Glucose-insulin regulation: Bergman's minimal model, written with flows.

Textbook form: dG/dt = -(p1 + X) G + p1 Gb, dX/dt = -p2 X + p3 (I - Ib),
dI/dt = -n (I - Ib) + g (G - h)+. Here the remote insulin action X is kept non-negative
(dX/dt = p3 I - p2 X) and hepatic production is raised to (p1 + p3 Ib / p2) Gb, which has
the same basal steady state G = Gb, I = Ib and the same response to insulin above basal,
while every state provably stays >= 0 (the structural checks pass). Rates per minute (the
unit of glucose tolerance tests), converted to the task's unit.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.library.motifs.base import Builder, Motif, Slot
from agent.library.profile import ColumnProfile, DataProfile
from agent.library.spec import ModelSpec

__all__ = ["MOTIFS"]

_KEYWORDS = ("glucose", "insulin", "blood sugar", "diabetes", "ivgtt", "ogtt",
             "tolerance test", "pancrea", "meal", "glycaemi", "glycemi", "beta cell",
             "minimal model", "bergman", "metabolic")


def _bergman(profile: DataProfile, cols: Mapping[str, ColumnProfile]) -> ModelSpec:
    b = Builder("Bergman minimal model", "glucose-insulin", profile,
                "glucose disposal, remote insulin action and insulin secretion")
    G, X, Ins = (b.state("G", "plasma glucose"), b.state("X", "remote insulin action"),
                 b.state("Ins", "plasma insulin"))
    f = profile.rate_factor("minute")
    g = cols.get("glucose")
    i = cols.get("insulin")
    g_low = g.minimum if g and g.minimum > 0 else 70.0
    g_typ = g.typical if g else 150.0
    i_low = i.minimum if i and i.minimum > 0 else 10.0
    i_typ = i.typical if i else 50.0
    p1 = b.rate_param("p1", 1e-3, 0.2, "minute", "glucose effectiveness")
    p2 = b.rate_param("p2", 1e-3, 0.5, "minute", "decay of remote insulin action")
    p3 = b.param("p3", "LogUniform", (1e-7 * f * f, 1e-3 * f * f),
                 "insulin action gain (p3/p2 is insulin sensitivity)")
    n = b.rate_param("n", 0.01, 1.0, "minute", "insulin clearance rate")
    gam = b.param("gam", "LogUniform", (1e-5 * f, 0.1 * f), "insulin secretion per glucose")
    Gb = b.param("Gb", "LogUniform", (g_low / 3, g_low * 2), "basal glucose")
    Ib = b.param("Ib", "LogUniform", (i_low / 5, i_low * 3), "basal insulin")
    h = b.param("h", "LogUniform", (g_low / 3, g_low * 3), "glucose threshold of secretion")
    g0 = b.param("G0", "LogUniform", (g_typ / 3, g_typ * 3), "initial glucose")
    i0 = b.param("Ins0", "LogUniform", (i_typ / 10, i_typ * 10), "initial insulin")
    b.flow(None, G, f"({p1} + {p3} * {Ib} / {p2}) * {Gb}", "glucose_production")
    b.flow(G, None, f"{p1} * {G}", "glucose_uptake")
    b.flow(G, None, f"{X} * {G}", "insulin_uptake", saturating_in=G)
    b.flow(None, X, f"{p3} * {Ins}", "insulin_action")
    b.flow(X, None, f"{p2} * {X}", "action_decay")
    b.flow(None, Ins, f"{n} * {Ib} + {gam} * Max({G} - {h}, 0)", "secretion")
    b.flow(Ins, None, f"{n} * {Ins}", "insulin_clearance")
    b.init(G=g0, X="0", Ins=i0)
    if g is not None:
        b.observe(g, G, doc="plasma glucose")
    if i is not None:
        b.observe(i, Ins, doc="plasma insulin")
    b.role(glucose=G, insulin=Ins, remote_insulin=X, glucose_effectiveness=p1,
           insulin_sensitivity=p3, insulin_clearance=n, secretion_rate=gam, dose_target=G,
           glucose_dose_target=G, insulin_dose_target=Ins, main_flow="insulin_uptake")
    return b.build()


MOTIFS = (
    Motif("glucose-insulin", "physiology", "Bergman minimal model", _KEYWORDS,
          (Slot("glucose", ("gluc", "sugar", "bg")), Slot("insulin", ("insul", "ins"))),
          _bergman, prior=0.3),
)
