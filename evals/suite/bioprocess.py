"""Bioprocess: continuous cultures whose feed the operator sets, systems no library motif
covers.

* ``bio-chemostat-full`` / ``-partial``: Monod growth on a substrate fed at a known,
  changing dilution rate (``dilution_rate``, per hour);
* ``bio-lactate-full``: a lactic acid fermenter whose growth is inhibited by high glucose
  (Haldane: mu_max S / (K_s + S + S^2 / K_i)) and whose lactate is made both with growth
  and by standing biomass (Luedeking-Piret: (alpha mu + beta) X); the feed pump flow
  (``feed_flow``, L/hour, over a 2 L volume) is the known input. Written before any tuning
  of the discovery proposer and kept aside from it (tag ``held-out``).

The inputs are handed to agents as such: they are what the operator dialled in, not
measurements. Glucose, biomass and lactate are measured off-line with a few per cent of
log-normal assay error.
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


# ------------------------- continuous fermentation, substrate-inhibited growth, a product
_VOLUME = 2.0  # L of broth, held constant by the level controller; in the description
_S_FEED = 30.0  # g/L glucose in the feed medium, in the description


def feed_pump(times: np.ndarray) -> np.ndarray:
    """Feed pump flow (L/hour) as the operator set it; the last change falls in the test
    window."""
    return np.select([times < 36, times < 54, times < 72, times < 100], [0.2, 0.5, 0.3, 0.56],
                     0.24)


def _fermenter(haldane: bool = True) -> Model:
    m = Model("continuous fermentation, substrate-inhibited growth, mixed-growth product",
              time_unit="hour")
    x, s, p = m.states("biomass glucose lactate")
    flow = m.control("feed_flow", default=0.2, doc="feed pump flow (outflow matches it)",
                     unit="L/hour")
    vol = m.constant("volume", _VOLUME, doc="broth volume", unit="L")
    s_feed = m.constant("s_feed", _S_FEED, doc="glucose in the feed medium", unit="g/L")
    d = flow / vol
    mu_max = m.param("mu_max", LogUniform(0.05, 3.0), doc="maximal growth rate", unit="1/hour")
    ks = m.param("k_s", LogUniform(0.01, 20.0), doc="glucose at half-maximal growth "
                 "(without inhibition)", unit="g/L")
    if haldane:
        ki = m.param("k_i", LogUniform(1.0, 500.0), doc="glucose inhibition constant",
                     unit="g/L")
        mu = mu_max * s / (ks + s + s**2 / ki)
    else:  # the wrong structure: growth saturates in glucose but is never inhibited
        mu = mu_max * s / (ks + s)
    yield_ = m.param("yield_xs", LogUniform(0.02, 1.0), doc="biomass made per glucose used")
    alpha = m.param("alpha_p", LogUniform(0.01, 20.0), doc="lactate made per biomass grown "
                    "(growth-associated)")
    beta = m.param("beta_p", LogUniform(1e-4, 2.0), doc="lactate made per biomass per hour "
                   "(non-growth-associated)", unit="1/hour")
    m.flow(None, x, mu * x, name="growth")
    m.flow(x, None, d * x, name="biomass_outflow")
    m.flow(None, s, d * s_feed, name="feed")
    m.flow(s, None, d * s, name="glucose_outflow")
    m.flow(s, None, mu * x / yield_, name="uptake")
    m.flow(None, p, (alpha * mu + beta) * x, name="production")
    m.flow(p, None, d * p, name="lactate_outflow")
    m.init(biomass=m.param("biomass0", LogUniform(0.005, 5.0)),
           glucose=m.param("glucose0", LogUniform(0.5, 100.0)),
           lactate=m.param("lactate0", LogUniform(0.01, 50.0)))
    m.observe("biomass_g_per_l", x, unit="g/L",
              noise=LogNormalNoise(m.param("sd_x", LogUniform(0.005, 1.0))))
    m.observe("glucose_g_per_l", s, unit="g/L",
              noise=LogNormalNoise(m.param("sd_s", LogUniform(0.005, 1.0))))
    m.observe("lactate_g_per_l", p, unit="g/L",
              noise=LogNormalNoise(m.param("sd_p", LogUniform(0.005, 1.0))))
    return m


def fermenter() -> BenchTask:
    """The held-out continuous fermentation: growth that glucose itself inhibits at high
    levels, and a product made both by growing and by standing cells."""
    times = np.arange(0.0, 120.5, 1.0)
    return BenchTask(
        name="bio-lactate-full",
        domain="bioprocess",
        difficulty="medium",
        tags=("discovery", "inputs", "substrate-inhibition", "continuous-culture", "product",
              "held-out"),
        variant="full",
        description=(
            "A continuous culture of a lactic acid bacterium in a 2 L stirred fermenter. "
            "Medium holding 30 g/L glucose is pumped in and broth is drawn off at the same "
            "flow, so the volume stays at 2 L; the operator set the feed pump (L per hour) "
            "and changed it four times. The bacteria grow on the glucose and grow more "
            "slowly when it runs short, but glucose is also osmotically stressful: at high "
            "levels it slows their growth again, so they grow fastest at a moderate level. "
            "They make lactate as they grow and, more slowly, even when they are not "
            "growing; lactate leaves only with the outflow. The run started from fresh "
            "medium inoculated with a small amount of culture and a little carried-over "
            "lactate. Biomass (g/L dry weight), glucose (g/L) and lactate (g/L) were assayed "
            "every hour."),
        time_unit="hour",
        times=times,
        train_until=84.0,
        validate_until=96.0,
        observed=("biomass_g_per_l", "glucose_g_per_l", "lactate_g_per_l"),
        hidden=(),
        truth_model=_fermenter(),
        truth_params={"mu_max": 0.6, "k_s": 5.0, "k_i": 20.0, "yield_xs": 0.12,
                      "alpha_p": 3.0, "beta_p": 0.3, "biomass0": 0.05, "glucose0": 30.0,
                      "lactate0": 0.2, "sd_x": 0.05, "sd_s": 0.06, "sd_p": 0.04},
        conditions=(),
        counterfactuals=(
            Counterfactual("What if the feed pump had been turned up to 0.7 L per hour from "
                           "hour 100 on?", (SetValue("feed_flow", 0.7, 100.0),), 100.0),
            Counterfactual("What if the feed pump had been left at 0.56 L per hour after "
                           "hour 100 instead of being turned down?",
                           (SetValue("feed_flow", 0.56, 100.0),), 100.0),
        ),
        recover={},
        wrong_model=_fermenter(haldane=False),
        noise_seed=733,
        inputs=(TaskInput("feed_flow", tuple(feed_pump(times)), "previous",
                          "feed pump flow set by the operator (L/hour); outflow matches it"),),
    )


def tasks() -> list[BenchTask]:
    return [chemostat(True), chemostat(False), fermenter()]
