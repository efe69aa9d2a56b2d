"""Glucose and insulin after an intravenous glucose bolus (an IV glucose tolerance test),
after Bergman's minimal model.

Glucose (mg/dL) is produced by the liver and taken up at a rate set by glucose itself
(glucose effectiveness) and by insulin acting from a remote compartment. The pancreas
secretes insulin (µU/mL) in proportion to glucose's excess over basal, less than basal
when glucose undershoots, and insulin is cleared first-order. The remote action only
grows with insulin above basal, so every state stays non-negative and the basal state
(Gb, Ib, no action) is a steady state. Minutes are the unit, as in the clinical test.
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask, Counterfactual
from mechanistic import LogNormalNoise, LogUniform, Max, Model
from mechanistic.interventions import Dose, Scale

__all__ = ["tasks"]

_BOLUS = 220.0  # mg/dL rise from a 0.3 g/kg bolus in an adult
_SAMPLES = (0, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 19, 22, 25, 30, 40, 50, 60, 70, 80, 90, 100,
            120, 140, 160, 180, 210, 240)


def _minimal(full: bool, remote: bool = True) -> Model:
    m = Model("glucose-insulin minimal model" if remote else "insulin acts at once",
              time_unit="minute")
    g, x, ins = m.states("gluc action ins")
    p1 = m.param("p1", LogUniform(0.002, 0.1), doc="glucose effectiveness", unit="1/min")
    p2 = m.param("p2", LogUniform(0.002, 0.2), doc="decay of insulin action", unit="1/min")
    p3 = m.param("p3", LogUniform(1e-6, 1e-4), doc="gain of insulin action")
    n = m.param("n_clear", LogUniform(0.02, 1.0), doc="insulin clearance", unit="1/min")
    gam = m.param("gam", LogUniform(0.003, 0.3), doc="insulin secretion per mg/dL of glucose")
    gb = m.param("gb", LogUniform(50.0, 200.0), doc="basal glucose", unit="mg/dL")
    ib = m.param("ib", LogUniform(1.0, 50.0), doc="basal insulin", unit="µU/mL")
    sd_g = m.param("sd_glucose", LogUniform(0.005, 1.0))
    m.flow(None, g, p1 * gb, name="hepatic_production")
    m.flow(g, None, p1 * g, name="insulin_independent_uptake")
    if remote:
        m.flow(g, None, x * g, name="insulin_dependent_uptake")
        m.flow(None, x, p3 * Max(ins - ib, 0), name="action_onset")
        m.flow(x, None, p2 * x, name="action_decay")
    else:  # the wrong structure: insulin acts on uptake without delay, no remote action
        m.flow(g, None, (p3 / p2) * Max(ins - ib, 0) * g, name="insulin_dependent_uptake")
        m.rate(x, -p2 * x)
    # secretion follows glucose both ways: it rises above basal with glucose and is
    # suppressed below basal when glucose undershoots (never negative)
    m.flow(None, ins, Max(n * ib + gam * (g - gb), 0), name="secretion")
    m.flow(ins, None, n * ins, name="insulin_clearance")
    m.init(gluc=gb, action=0, ins=ib)
    m.observe("glucose", g, noise=LogNormalNoise(sd_g), unit="mg/dL")
    if full:
        sd_i = m.param("sd_insulin", LogUniform(0.005, 1.0))
        m.observe("insulin", ins, noise=LogNormalNoise(sd_i), unit="µU/mL")
    return m


def ivgtt(full: bool) -> BenchTask:
    params = {"p1": 0.02, "p2": 0.02, "p3": 1.3e-5, "n_clear": 0.1, "gam": 0.03,
              "gb": 90.0, "ib": 8.0, "sd_glucose": 0.03}
    if full:
        params["sd_insulin"] = 0.12
    seen = ("Plasma glucose (mg/dL) and insulin (µU/mL) were measured" if full else
            "Plasma glucose (mg/dL) was measured (insulin was not assayed)")
    return BenchTask(
        name=f"phys-ivgtt-{'full' if full else 'partial'}",
        domain="physiology",
        difficulty="easy" if full else "medium",
        tags=("glucose-insulin", "ivgtt", "minimal-model", "concentrations"),
        variant="full" if full else "partial",
        description=(
            "A healthy adult volunteer had an intravenous glucose tolerance test after an "
            "overnight fast: at minute 0 a glucose bolus of 0.3 g/kg was injected over one "
            "minute, raising plasma glucose by about 220 mg/dL. Glucose is taken up by "
            "tissues on its own and, more strongly, under the action of insulin, which works "
            "through tissue insulin receptors with some delay; the pancreas secretes more insulin "
            "the higher glucose is above its fasting level (and less when it falls below), and "
            "the liver clears insulin within minutes. " + seen +
            " right after the injection and then at minutes 2 to 240 on the usual frequent "
            "sampling schedule."),
        time_unit="minute",
        times=np.array(_SAMPLES, dtype=float),
        train_until=60.0,
        validate_until=100.0,
        observed=("glucose", "insulin") if full else ("glucose",),
        hidden=("action",) if full else ("action", "ins"),
        truth_model=_minimal(full),
        truth_params=params,
        conditions=(Dose("gluc", _BOLUS, (0.0,)),),
        counterfactuals=(
            Counterfactual(
                "What if an insulin dose of 300 µU/mL (the rise in plasma insulin it causes) "
                "had been injected at minute 20, as in an insulin-modified test?",
                (Dose("ins", 300.0, (20.0,)),), 20.0),
            Counterfactual(
                "What if the volunteer's insulin sensitivity were halved, as in insulin "
                "resistance?",
                (Scale("p3", 0.5),), 0.0),
        ),
        # without insulin data only glucose's own effectiveness is identifiable
        recover=({"glucose_effectiveness": "p1", "insulin_sensitivity": "p3",
                  "insulin_clearance": "n_clear", "secretion_rate": "gam"} if full else
                 {"glucose_effectiveness": "p1"}),
        wrong_model=_minimal(full, remote=False),
        noise_seed=707,
    )


def tasks() -> list[BenchTask]:
    return [ivgtt(True), ivgtt(False)]
