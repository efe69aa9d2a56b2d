"""Epidemics: under-reporting, a reporting delay, and an age-structured outbreak.

Counts are negative binomial around the reported incidence (new cases per day, read as
the instantaneous rate). Reported cases are new symptom onsets times a reporting
fraction; with a delay, the reported onsets first wait in a two-stage queue (an Erlang
delay) before they appear in the published series. Days are the unit throughout.
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask, Counterfactual
from mechanistic import Fixed, LogUniform, Model, NegBinomial, Uniform
from mechanistic.interventions import Scale, SetValue, Transfer

__all__ = ["tasks", "town_epidemic_truth"]


# ------------------------------------------------------------------- SEIR town
def town_epidemic_truth() -> Model:
    """The SEIR town's true structure (wide priors); also the truth of the library agent's
    synthetic-task benchmark (``benchmarks/synthetic_tasks.py``)."""
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


def _sir_wrong(pop: float, columns: dict[str, float], beta: str = "b_contact",
               distancing: bool = False) -> Model:
    """The misspecified structure for the epidemics: SIR (no latent period, no delay, one
    homogeneous population); each observed column is a fixed share of reported infections.

    ``beta`` and ``distancing`` give it the names the truth's what-if questions act on, so
    the question can be put to the wrong structure too (it then answers wrongly: a cut in
    school transmission becomes a cut in everyone's)."""
    m = Model("SIR, no latent period", time_unit="day")
    sus, inf, rem = m.states("sus infective rem")
    b = m.param(beta, LogUniform(0.05, 3.0))
    if distancing:
        b = (1 - m.control("distancing", 0.0)) * b
    k_rec = m.param("k_recover", LogUniform(0.03, 1.0))
    i0 = m.param("inf0", LogUniform(0.1, 1000.0))
    disp = m.param("disp", LogUniform(0.5, 1000.0))
    m.flow(sus, inf, b * sus * inf / (sus + inf + rem), name="infection")
    m.flow(inf, rem, k_rec * inf, name="removal")
    m.init(sus=pop - i0, infective=i0, rem=0)
    for name, kind in columns.items():
        share = m.param(f"q_{name}", Uniform(0.001, 1.0))
        if kind:  # a prevalence column
            m.observe(name, share * inf, noise=NegBinomial(disp))
        else:
            m.observe(name, share * b * sus * inf / (sus + inf + rem), noise=NegBinomial(disp))
    return m


def seir_town() -> BenchTask:
    """The seed task of ``benchmarks/synthetic_tasks.py``: SEIR seen only through reports."""
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
        truth_model=town_epidemic_truth(),
        truth_params={"b_contact": 0.5, "k_latent": 1 / 3.5, "k_recover": 1 / 5.0,
                      "q_report": 0.35, "lat0": 20.0, "disp": 30.0},
        conditions=(),
        counterfactuals=(Counterfactual(
            "From day 40 on, 2% of susceptible people are vaccinated each day.",
            (Transfer("sus", "rem", 0.02, 40.0),), 40.0),),
        recover={"transmission_rate": "b_contact", "incubation_rate": "k_latent",
                 "recovery_rate": "k_recover", "reporting_fraction": "q_report"},
        wrong_model=_sir_wrong(60_000.0, {"reported_cases": 0.0}),
        noise_seed=7,
    )


# --------------------------------------------------- SEIR with a reporting delay
_REGION = 250_000.0


def _delayed(survey: bool) -> Model:
    m = Model("SEIR with under-reporting and a reporting delay", time_unit="day")
    s, e, i, r = m.states("s e i r")
    q1, q2 = m.states("queue1 queue2")
    beta = m.param("beta", LogUniform(0.1, 2.0), doc="transmission rate")
    sigma = m.param("sigma", LogUniform(0.1, 1.0), doc="rate of becoming infectious")
    gamma = m.param("gamma", LogUniform(0.05, 1.0), doc="recovery rate")
    rho = m.param("rho", Uniform(0.01, 1.0), doc="fraction of infections reported")
    k_rep = m.param("k_report", LogUniform(0.1, 3.0), doc="rate of each reporting stage")
    e0 = m.param("e0", LogUniform(1.0, 1000.0), doc="exposed on day 0")
    phi = m.param("phi", LogUniform(1.0, 200.0), doc="dispersion of reports")
    distancing = m.control("distancing", 0.0, doc="fraction of contacts avoided")
    m.flow(s, e, (1 - distancing) * beta * s * i / (s + e + i + r), name="infection")
    m.flow(e, i, sigma * e, name="onset")
    m.flow(i, r, gamma * i, name="recovery")
    # Reports are not people: the queue is a count of onsets awaiting publication.
    m.flow(None, q1, rho * sigma * e, name="tested")
    m.flow(q1, q2, k_rep * q1, name="processing")
    m.flow(q2, None, k_rep * q2, name="published")
    m.init(s=_REGION - e0, e=e0, i=0, r=0, queue1=0, queue2=0)
    m.observe("reported_cases", k_rep * q2, noise=NegBinomial(phi),
              doc="cases published per day")
    if survey:
        psi = m.param("psi", LogUniform(1.0, 200.0), doc="dispersion of the survey")
        m.observe("infectious_survey", i, noise=NegBinomial(psi),
                  doc="currently infectious people, estimated by a random testing survey")
    return m


_DELAY_TEXT = (
    "An influenza-like illness is spreading through a region of 250,000 people with no prior "
    "immunity. Infected people incubate the virus for a few days before they become "
    "infectious; they recover after several days and stay immune. Only a fraction of "
    "infections are ever tested and reported, and cases are reported with a delay of several "
    "days after symptom onset because tests are processed in batches. The public health "
    "agency publishes the number of new cases reported each day.")


def seir_delay(full: bool) -> BenchTask:
    observed = ("reported_cases", "infectious_survey") if full else ("reported_cases",)
    extra = (" In addition, a random testing survey estimates every day how many people in "
             "the region are currently infectious.") if full else ""
    params = {"beta": 0.62, "sigma": 1 / 3.0, "gamma": 1 / 4.0, "rho": 0.25,
              "k_report": 0.5, "e0": 30.0, "phi": 25.0}
    if full:
        params["psi"] = 40.0
    return BenchTask(
        name=f"epi-seir-delay-{'full' if full else 'partial'}",
        domain="epidemiology",
        difficulty="medium" if full else "hard",
        tags=("seir", "under-reporting", "reporting-delay", "distancing", "counts"),
        variant="full" if full else "partial",
        description=_DELAY_TEXT + extra,
        time_unit="day",
        times=np.arange(0.0, 141.0),
        train_until=50.0,
        validate_until=65.0,
        observed=observed,
        hidden=("s", "e", "r", "queue1", "queue2") + (() if full else ("i",)),
        truth_model=_delayed(full),
        truth_params=params,
        conditions=(),
        counterfactuals=(Counterfactual(
            "From day 45 until day 85, people avoid 40% of their contacts (schools closed and "
            "distancing rules). How many cases would have been reported?",
            (SetValue("distancing", 0.4, 45.0, 85.0),), 45.0),),
        recover={"transmission_rate": "beta", "incubation_rate": "sigma",
                 "recovery_rate": "gamma", "reporting_fraction": "rho"},
        wrong_model=_sir_wrong(_REGION, {c: float(c == "infectious_survey") for c in observed},
                               distancing=True),
        noise_seed=101,
    )


# ------------------------------------------------------- two age groups mixing
_CHILDREN, _ADULTS = 25_000.0, 75_000.0
_Q_CHILD, _Q_ADULT = 0.15, 0.3


def _age(by_group: bool) -> Model:
    m = Model("SEIR in children and adults", time_unit="day")
    sc, ec, ic, rc = m.states("s_child e_child i_child r_child")
    sa, ea, ia, ra = m.states("s_adult e_adult i_adult r_adult")
    b_cc = m.param("b_cc", LogUniform(0.1, 3.0), doc="transmission among children")
    b_mix = m.param("b_mix", LogUniform(0.01, 1.0), doc="transmission between the groups")
    b_aa = m.param("b_aa", LogUniform(0.05, 2.0), doc="transmission among adults")
    sigma = m.param("sigma", LogUniform(0.1, 1.0), doc="rate of becoming infectious")
    gamma = m.param("gamma", LogUniform(0.05, 1.0), doc="recovery rate")
    # known from a serological survey (the description says so): without it, mixing
    # between the groups and the adults' reporting fraction trade off against each other
    q_c = m.param("q_child", Fixed(_Q_CHILD), doc="fraction of child infections reported")
    q_a = m.param("q_adult", Fixed(_Q_ADULT), doc="fraction of adult infections reported")
    e0 = m.param("e0_child", LogUniform(1.0, 1000.0), doc="exposed children on day 0")
    phi = m.param("phi", LogUniform(1.0, 200.0), doc="dispersion of reports")
    nc = sc + ec + ic + rc
    na = sa + ea + ia + ra
    m.flow(sc, ec, sc * (b_cc * ic / nc + b_mix * ia / na), name="infection_child")
    m.flow(sa, ea, sa * (b_mix * ic / nc + b_aa * ia / na), name="infection_adult")
    m.flow(ec, ic, sigma * ec, name="onset_child")
    m.flow(ea, ia, sigma * ea, name="onset_adult")
    m.flow(ic, rc, gamma * ic, name="recovery_child")
    m.flow(ia, ra, gamma * ia, name="recovery_adult")
    m.init(s_child=_CHILDREN - e0, e_child=e0, i_child=0, r_child=0,
           s_adult=_ADULTS, e_adult=0, i_adult=0, r_adult=0)
    if by_group:
        m.observe("cases_children", q_c * sigma * ec, noise=NegBinomial(phi))
        m.observe("cases_adults", q_a * sigma * ea, noise=NegBinomial(phi))
    else:
        m.observe("reported_cases", q_c * sigma * ec + q_a * sigma * ea, noise=NegBinomial(phi))
    return m


def age_groups(full: bool) -> BenchTask:
    observed = ("cases_children", "cases_adults") if full else ("reported_cases",)
    split = ("The health office reports new cases each day separately for children (under "
             "18) and for adults.") if full else (
             "The health office publishes the total number of new cases reported each day.")
    return BenchTask(
        name=f"epi-age-{'full' if full else 'partial'}",
        domain="epidemiology",
        difficulty="medium" if full else "hard",
        tags=("seir", "age-structured", "under-reporting", "school-closure", "counts"),
        variant="full" if full else "partial",
        description=(
            "A new influenza strain arrives in a town of 100,000 people: 25,000 children and "
            "75,000 adults, none of them immune. Children mix intensely at school and "
            "spread the virus among themselves much more than adults do; children and adults "
            "also infect each other at home. Infected people incubate for about two days, "
            "are infectious for a few days and then stay immune. Children with mild illness "
            "are tested less often than adults: a serological survey after earlier seasons "
            "showed that about 15% of infections in children and 30% of infections in adults "
            "are reported. " + split),
        time_unit="day",
        times=np.arange(0.0, 101.0),
        train_until=35.0,
        validate_until=45.0,
        observed=observed,
        hidden=("s_child", "e_child", "i_child", "r_child", "s_adult", "e_adult", "i_adult",
                "r_adult"),
        truth_model=_age(full),
        truth_params={"b_cc": 0.85, "b_mix": 0.1, "b_aa": 0.15, "sigma": 0.5, "gamma": 1 / 3.0,
                      "q_child": _Q_CHILD, "q_adult": _Q_ADULT, "e0_child": 10.0, "phi": 30.0},
        conditions=(),
        counterfactuals=(Counterfactual(
            "Schools close on day 18 for the rest of the season, which cuts transmission among "
            "children by 80% while contacts at home and among adults stay the same.",
            (Scale("b_cc", 0.2, 18.0),), 18.0),),
        recover={"incubation_rate": "sigma", "recovery_rate": "gamma"},
        wrong_model=_sir_wrong(_CHILDREN + _ADULTS, {c: 0.0 for c in observed}, beta="b_cc"),
        noise_seed=202,
    )


def tasks() -> list[BenchTask]:
    return [seir_town(), seir_delay(True), seir_delay(False), age_groups(True),
            age_groups(False)]
