"""Chemistry: reactors with a known, changing feed, outside every library motif.

* ``chem-cstr-full``: a continuous stirred tank with consecutive first-order reactions
  A -> B -> C and a feed of A whose flow the operator changes;
* ``chem-enzyme-full``: a fed-batch enzyme reactor whose product inhibits the enzyme
  competitively (Michaelis-Menten with an inhibited half-saturation constant).

Both were written before any tuning of the discovery proposer and are kept aside from it
(tag ``held-out``): their figures are reported separately.
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask, Counterfactual, TaskInput
from mechanistic import LogNormalNoise, LogUniform, Model
from mechanistic.interventions import Scale, SetValue

__all__ = ["tasks"]


# ----------------------------------------------------------------- CSTR A -> B -> C
def feed_flow(times: np.ndarray) -> np.ndarray:
    """Feed flow over volume (per minute) as the operator set it."""
    return np.select([times < 60, times < 140, times < 220, times < 260],
                     [0.02, 0.06, 0.03, 0.05], 0.015)


def _cstr(first_order: bool = True) -> Model:
    m = Model("CSTR, consecutive reactions", time_unit="minute")
    a, b = m.states("reactant intermediate")
    q = m.control("feed_flow", default=0.02, doc="feed flow over volume", unit="1/minute")
    a_in = m.constant("a_in", 2.0, doc="reactant in the feed", unit="mol/L")
    k1 = m.param("k1", LogUniform(1e-3, 1.0), doc="A -> B rate constant", unit="1/minute")
    k2 = m.param("k2", LogUniform(1e-3, 1.0), doc="B -> C rate constant", unit="1/minute")
    a0 = m.param("reactant0", LogUniform(0.01, 10.0))
    b0 = m.param("intermediate0", LogUniform(1e-3, 10.0))
    m.flow(None, a, q * a_in, name="feed")
    m.flow(a, None, q * a, name="reactant_out")
    rate = k1 * a if first_order else k1 * a * a
    m.flow(a, b, rate, name="reaction_1")
    m.flow(b, None, k2 * b, name="reaction_2")
    m.flow(b, None, q * b, name="intermediate_out")
    m.init(reactant=a0, intermediate=b0)
    m.observe("reactant_mol_per_l", a,
              noise=LogNormalNoise(m.param("sd_a", LogUniform(0.005, 1.0))))
    m.observe("intermediate_mol_per_l", b,
              noise=LogNormalNoise(m.param("sd_b", LogUniform(0.005, 1.0))))
    return m


def cstr() -> BenchTask:
    times = np.arange(0.0, 300.5, 3.0)
    return BenchTask(
        name="chem-cstr-full",
        domain="chemistry",
        difficulty="easy",
        tags=("discovery", "inputs", "reaction-network", "held-out"),
        variant="full",
        description=(
            "A continuous stirred-tank reactor of constant volume is fed a solution of "
            "reactant A at 2 mol/L; the operator sets the feed flow (as flow over volume, per "
            "minute) and changed it four times. In the tank A converts to an intermediate "
            "B, which converts further to a product nobody measures; the outflow carries "
            "everything away at the feed rate. A and B are measured by in-line "
            "spectroscopy every 3 minutes, from a start with a little A and B in the tank."),
        time_unit="minute",
        times=times,
        train_until=180.0,
        validate_until=230.0,
        observed=("reactant_mol_per_l", "intermediate_mol_per_l"),
        hidden=(),
        truth_model=_cstr(),
        truth_params={"k1": 0.05, "k2": 0.02, "reactant0": 0.3, "intermediate0": 0.05,
                      "sd_a": 0.03, "sd_b": 0.03},
        conditions=(),
        counterfactuals=(Counterfactual(
            "What if the feed flow had been halved from minute 230 on?",
            (Scale("feed_flow", 0.5, 230.0),), 230.0),),
        recover={},
        wrong_model=_cstr(first_order=False),
        noise_seed=811,
        inputs=(TaskInput("feed_flow", tuple(feed_flow(times)), "previous",
                          "feed flow over volume set by the operator (1/minute)"),),
    )


# ------------------------------------------------ fed-batch enzyme, product inhibition
def substrate_feed(times: np.ndarray) -> np.ndarray:
    """Substrate fed per minute (mM/min): on, paused, then faster."""
    return np.select([times < 60, times < 90], [0.3, 0.0], 0.4)


def _enzyme(inhibited: bool = True) -> Model:
    m = Model("fed-batch enzyme reactor, product inhibition", time_unit="minute")
    s, p = m.states("substrate product")
    feed = m.control("substrate_feed", default=0.0, doc="substrate fed per minute",
                     unit="mM/minute")
    vmax = m.param("vmax", LogUniform(0.01, 10.0), doc="maximal rate", unit="mM/minute")
    km = m.param("km", LogUniform(0.05, 50.0), doc="Michaelis constant", unit="mM")
    if inhibited:
        ki = m.param("ki", LogUniform(0.05, 50.0), doc="product inhibition constant", unit="mM")
        rate = vmax * s / (km * (1 + p / ki) + s)
    else:  # the wrong structure: no inhibition
        rate = vmax * s / (km + s)
    s0 = m.param("substrate0", LogUniform(0.5, 50.0))
    m.flow(None, s, feed, name="feeding")
    m.flow(s, p, rate, name="conversion")
    m.init(substrate=s0, product=0)
    m.observe("substrate_mm", s, noise=LogNormalNoise(m.param("sd_s", LogUniform(0.005, 1.0))))
    m.observe("product_mm", p, noise=LogNormalNoise(m.param("sd_p", LogUniform(0.005, 1.0))))
    return m


def enzyme() -> BenchTask:
    times = np.arange(0.0, 180.5, 2.0)
    return BenchTask(
        name="chem-enzyme-full",
        domain="chemistry",
        difficulty="medium",
        tags=("discovery", "inputs", "enzyme-kinetics", "product-inhibition", "held-out"),
        variant="full",
        description=(
            "An immobilised enzyme converts a substrate into a product in a stirred batch "
            "reactor that starts with 10 mM substrate and no product. More substrate is fed "
            "by a pump whose rate (mM per minute) the experimenter set: on, paused, then "
            "faster. The product binds the enzyme's active site and slows the reaction as it "
            "accumulates. Substrate and product are measured by HPLC every 2 minutes."),
        time_unit="minute",
        times=times,
        train_until=110.0,
        validate_until=140.0,
        observed=("substrate_mm", "product_mm"),
        hidden=(),
        truth_model=_enzyme(),
        truth_params={"vmax": 0.5, "km": 2.0, "ki": 3.0, "substrate0": 10.0, "sd_s": 0.04,
                      "sd_p": 0.04},
        conditions=(),
        counterfactuals=(Counterfactual(
            "What if the substrate feed had been switched off from minute 140 on?",
            (SetValue("substrate_feed", 0.0, 140.0),), 140.0),),
        recover={},
        wrong_model=_enzyme(inhibited=False),
        noise_seed=823,
        inputs=(TaskInput("substrate_feed", tuple(substrate_feed(times)), "previous",
                          "substrate pump rate set by the experimenter (mM/minute)"),),
    )


def tasks() -> list[BenchTask]:
    return [cstr(), enzyme()]
