"""Bioprocess: a chemostat whose dilution rate the operator sets, a system no library motif
covers (Monod growth on a substrate fed at a known, changing rate).

The dilution rate is a known input (``dilution_rate``, per hour), handed to agents as such:
it is what the operator dialled in, not a measurement. Glucose and biomass are measured
off-line with a few per cent of log-normal assay error.
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask, Counterfactual, TaskInput
from mechanistic import LogNormalNoise, LogUniform, Model
from mechanistic.interventions import SetValue

__all__ = ["tasks"]

_S_IN = 10.0  # g/L glucose in the feed, stated in the description


def dilution_schedule(times: np.ndarray) -> np.ndarray:
    """Step changes the operator made (per hour); the last one falls in the test window."""
    return np.select([times < 30, times < 60, times < 85, times < 120],
                     [0.1, 0.35, 0.15, 0.25], 0.4)


def _chemostat(full: bool, monod: bool = True) -> Model:
    m = Model("chemostat, Monod growth", time_unit="hour")
    s, x = m.states("glucose biomass")
    d = m.control("dilution_rate", default=0.1, doc="feed and outflow rate over volume",
                  unit="1/hour")
    feed = m.constant("s_in", _S_IN, doc="glucose in the feed", unit="g/L")
    mu_max = m.param("mu_max", LogUniform(0.05, 3.0), doc="maximal growth rate", unit="1/hour")
    yield_ = m.param("yield_xs", LogUniform(0.05, 2.0), doc="biomass per glucose")
    if monod:
        ks = m.param("k_s", LogUniform(0.01, 20.0), doc="glucose at half-maximal growth")
        growth = mu_max * s / (ks + s) * x
    else:  # the wrong structure: growth proportional to glucose (no saturation)
        growth = mu_max * s * x
    s0 = m.param("glucose0", LogUniform(0.5, 50.0))
    x0 = m.param("biomass0", LogUniform(0.005, 5.0))
    m.flow(None, s, d * feed, name="feed")
    m.flow(s, None, d * s, name="glucose_outflow")
    m.flow(s, None, growth / yield_, name="uptake")
    m.flow(None, x, growth, name="growth")
    m.flow(x, None, d * x, name="washout")
    m.init(glucose=s0, biomass=x0)
    m.observe("biomass_g_per_l", x, noise=LogNormalNoise(m.param("sd_x", LogUniform(0.01, 1.0))))
    if full:
        m.observe("glucose_g_per_l", s,
                  noise=LogNormalNoise(m.param("sd_s", LogUniform(0.01, 1.0))))
    return m


def chemostat(full: bool) -> BenchTask:
    times = np.arange(0.0, 150.5, 1.0)
    params = {"mu_max": 0.6, "yield_xs": 0.5, "k_s": 0.8, "glucose0": 10.0, "biomass0": 0.1,
              "sd_x": 0.05}
    if full:
        params["sd_s"] = 0.06
    seen = ("Biomass (g/L dry weight) and residual glucose (g/L) were assayed every hour."
            if full else "Biomass (g/L dry weight) was measured every hour; glucose was not.")
    return BenchTask(
        name=f"bio-chemostat-{'full' if full else 'partial'}",
        domain="bioprocess",
        difficulty="medium" if full else "hard",
        tags=("discovery", "inputs", "monod", "chemostat"),
        variant="full" if full else "partial",
        description=(
            "A continuous culture of yeast in a stirred bioreactor. Fresh medium holding "
            "10 g/L glucose is pumped in and culture is drawn off at the same rate, so the "
            "volume stays constant; the operator sets the dilution rate (pump rate over "
            "volume, per hour) and changed it several times. The yeast grows on the glucose, "
            "and its growth slows when glucose runs short. The run started from fresh medium "
            "with a small inoculum. " + seen),
        time_unit="hour",
        times=times,
        train_until=90.0,
        validate_until=110.0,
        observed=("biomass_g_per_l", "glucose_g_per_l") if full else ("biomass_g_per_l",),
        hidden=() if full else ("glucose",),
        truth_model=_chemostat(full),
        truth_params=params,
        conditions=(),
        counterfactuals=(Counterfactual(
            "What if the dilution rate had been raised to 0.5 per hour from hour 100 on?",
            (SetValue("dilution_rate", 0.5, 100.0),), 100.0),),
        recover={},
        wrong_model=_chemostat(full, monod=False),
        noise_seed=701,
        inputs=(TaskInput("dilution_rate", tuple(dilution_schedule(times)), "previous",
                          "dilution rate set by the operator (1/hour)"),),
    )


def tasks() -> list[BenchTask]:
    return [chemostat(True), chemostat(False)]
