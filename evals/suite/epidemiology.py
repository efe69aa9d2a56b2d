"""Epidemics: under-reporting, reporting delay, and an age-structured outbreak.

Counts are negative binomial around the reported incidence. Reported cases per day are
new onsets (or onsets passed through a delay chain) times a reporting fraction; days are
the unit throughout. Vaccination questions move susceptibles to the immune compartment.
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask, Counterfactual
from mechanistic import LogUniform, Model, NegBinomial, Uniform
from mechanistic.interventions import Transfer

__all__ = ["tasks"]


# ------------------------------------------------------------------- SEIR town
def _town(observed: tuple[str, ...] = ("reported_cases",)) -> Model:
    m = Model("true epidemic", time_unit="day")
    sus, lat, inf, rem = m.states("sus lat infective rem")
    b = m.param("b_contact", LogUniform(0.05, 3.0))
    k_lat = m.param("k_latent", LogUniform(0.05, 2.0))
    k_rec = m.param("k_recover", LogUniform(0.03, 1.0))
    q = m.param("q_report", Uniform(0.01, 1.0))
    lat0 = m.param("lat0", LogUniform(0.1, 1000.0))
    disp = m.param("disp", LogUniform(0.5, 1000.0))
    pop = 60_000.0
    m.flow(sus, lat, b * sus * inf / (sus + lat + inf + rem), name="exposure")
    m.flow(lat, inf, k_lat * lat, name="onset")
    m.flow(inf, rem, k_rec * inf, name="removal")
    m.init(sus=pop - lat0, lat=lat0, infective=0, rem=0)
    m.observe("reported_cases", q * k_lat * lat, noise=NegBinomial(disp))
    return m


def _town_sir() -> Model:
    """The wrong structure: no latent period."""
    m = Model("SIR town", time_unit="day")
    sus, inf, rem = m.states("sus infective rem")
    b = m.param("b_contact", LogUniform(0.05, 3.0))
    k_rec = m.param("k_recover", LogUniform(0.03, 1.0))
    q = m.param("q_report", Uniform(0.01, 1.0))
    i0 = m.param("inf0", LogUniform(0.1, 1000.0))
    disp = m.param("disp", LogUniform(0.5, 1000.0))
    m.flow(sus, inf, b * sus * inf / (sus + inf + rem), name="infection")
    m.flow(inf, rem, k_rec * inf, name="removal")
    m.init(sus=60_000.0 - i0, infective=i0, rem=0)
    m.observe("reported_cases", q * b * sus * inf / (sus + inf + rem), noise=NegBinomial(disp))
    return m


def seir_town() -> BenchTask:
    return BenchTask(
        name="epi-seir-town-partial",
        domain="epidemiology",
        difficulty="easy",
        tags=("seir", "under-reporting", "vaccination", "counts"),
        variant="partial",
        description=(
            "A respiratory virus is spreading through a town of 60,000 people with no prior "
            "immunity. After being infected, people carry the virus for a few days before they "
            "become infectious and can pass it on; they recover and stay immune. The health "
            "office publishes the number of new cases reported each day, but only a fraction "
            "of infections are ever tested and reported."),
        time_unit="day",
        times=np.arange(0.0, 121.0),
        train_until=45.0,
        validate_until=60.0,
        observed=("reported_cases",),
        hidden=("sus", "lat", "infective", "rem"),
        truth_model=_town(),
        truth_params={"b_contact": 0.5, "k_latent": 1 / 3.5, "k_recover": 1 / 5.0,
                      "q_report": 0.35, "lat0": 20.0, "disp": 30.0},
        conditions=(),
        counterfactuals=(Counterfactual(
            "From day 40 on, 2% of susceptible people are vaccinated each day.",
            (Transfer("sus", "rem", 0.02, 40.0),), 40.0),),
        recover={"transmission_rate": "b_contact", "incubation_rate": "k_latent",
                 "recovery_rate": "k_recover", "reporting_fraction": "q_report"},
        wrong_model=_town_sir(),
        noise_seed=7,
    )


def tasks() -> list[BenchTask]:
    return [seir_town()]
