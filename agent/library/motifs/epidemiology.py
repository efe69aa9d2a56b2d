"""Compartmental epidemics: SIR, SEIR and SIRS with under-reporting and an optional
reporting delay.

Reported cases are the incidence into I (or into E->I for SEIR) times a reporting
fraction and the sampling interval, because a count column holds cases per interval,
not per unit time. Population size comes from the description when it says one ('a town
of 50,000 people'); otherwise it is a parameter scaled from the reported totals. A
``contact_reduction`` control is always present so distancing questions have a handle.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.library.motifs.base import Builder, Motif, Slot
from agent.library.profile import ColumnProfile, DataProfile, parse_population
from agent.library.refine import add_delay_chain
from agent.library.spec import ModelSpec

__all__ = ["MOTIFS"]

_SLOTS = (
    Slot("cases", ("case", "incid", "report", "new", "confirm", "notif", "count", "onset")),
    Slot("prevalence", ("prevalen", "infected", "active", "current", "infectious", "sick")),
    Slot("deaths", ("death", "mortal", "fatal", "died")),
)
_KEYWORDS = ("epidemic", "outbreak", "infection", "infectious", "disease", "cases",
             "incidence", "transmission", "virus", "influenza", "flu", "covid", "measles",
             "vaccin", "susceptible", "recovered", "contact", "pandemic", "pathogen",
             "reported", "immunity", "sir", "seir", "spread", "r0", "attack rate")


def _delay_wanted(profile: DataProfile) -> bool:
    text = profile.description.lower()
    return any(k in text for k in ("reporting delay", "delayed report", "reporting lag",
                                   "delay in reporting", "reported with a delay"))


def _epidemic(profile: DataProfile, cols: Mapping[str, ColumnProfile], *, exposed: bool,
              waning: bool, name: str, title: str) -> ModelSpec:
    b = Builder(title, name, profile,
                "compartmental epidemic with under-reporting and a contact-reduction control")
    S = b.state("S", "susceptible")
    E = b.state("E", "exposed (infected, not yet infectious)") if exposed else None
    Inf = b.state("I", "infectious")
    R = b.state("R", "recovered and immune")
    beta = b.rate_param("beta", 0.05, 3.0, "day", "transmission rate")
    sigma = b.rate_param("sigma", 1 / 14, 1.0, "day", "rate of becoming infectious") \
        if exposed else None
    gamma = b.rate_param("gamma", 1 / 21, 1 / 2, "day", "recovery rate")
    omega = b.rate_param("omega", 1 / 1000, 1 / 30, "day", "waning immunity rate") \
        if waning else None
    rho = b.param("rho", "Uniform", (0.01, 1.0), "reporting fraction")
    reference = next(iter(cols.values()), None)
    total = max(reference.total if reference else 100.0, 10.0)
    start = max(reference.typical if reference else 1.0, 1.0)
    population = parse_population(profile.description)
    if population is not None:
        npop = b.constant("N_pop", population, "population size (from the description)")
        i_hi = max(population / 20, 1.0)
    else:
        npop = b.param("N_pop", "LogUniform", (max(10 * total, 100.0), max(10 * total, 100.0)
                                               * 1e3), "population size")
        i_hi = max(10 * total, 100.0) / 10
    i_lo, i_hi = min(start / 10, i_hi / 10), min(start * 100, i_hi)
    i0 = b.param("I0", "LogUniform", (max(i_lo, 1e-3), i_hi), "infectious at the first time")
    u = b.control("contact_reduction", 0.0, "fraction of contacts avoided")
    b.let("N", " + ".join(s for s in (S, E, Inf, R) if s))
    into = E or Inf
    b.flow(S, into, f"(1 - {u}) * {beta} * {S} * {Inf} / N", "infection", saturating_in=Inf)
    if exposed:
        b.flow(E, Inf, f"{sigma} * {E}", "onset")
    b.flow(Inf, R, f"{gamma} * {Inf}", "recovery")
    if waning:
        b.flow(R, S, f"{omega} * {R}", "waning")
    b.init(**{S: f"{npop} - {i0}", **({E: "0"} if E else {}), Inf: i0, R: "0"})
    incidence = "onset" if exposed else "infection"
    interval = ""
    if abs(profile.spacing - 1.0) > 1e-9:
        interval = b.constant("report_interval", profile.spacing,
                              "time between reports: counts are per interval")
    scale = f"{rho} * {interval}" if interval else rho
    if "cases" in cols:
        b.observe(cols["cases"], incidence, scale, "reported new cases per interval")
    if "prevalence" in cols:
        b.observe(cols["prevalence"], Inf, rho, "reported currently infectious")
    if "deaths" in cols:
        ifr = b.param("ifr", "LogUniform", (1e-4, 0.3), "infection fatality ratio")
        b.observe(cols["deaths"], "recovery", f"{ifr} * {interval}" if interval else ifr,
                  "deaths per interval")
    b.role(susceptible=S, infectious=Inf, recovered=R, vaccinated=R, transmission_rate=beta,
           recovery_rate=gamma, reporting_fraction=rho, contact_control=u,
           incidence_flow=incidence, main_flow="infection", population="N_pop")
    if E:
        b.role(exposed=E, incubation_rate=sigma or "")
    if omega:
        b.role(waning_rate=omega)
    spec = b.build()
    if _delay_wanted(profile) and "cases" in cols:
        spec = add_delay_chain(spec, stages=2)
    return spec


def _sir(profile: DataProfile, cols: Mapping[str, ColumnProfile]) -> ModelSpec:
    return _epidemic(profile, cols, exposed=False, waning=False, name="SIR",
                     title="SIR with under-reporting")


def _seir(profile: DataProfile, cols: Mapping[str, ColumnProfile]) -> ModelSpec:
    return _epidemic(profile, cols, exposed=True, waning=False, name="SEIR",
                     title="SEIR with under-reporting")


def _sirs(profile: DataProfile, cols: Mapping[str, ColumnProfile]) -> ModelSpec:
    return _epidemic(profile, cols, exposed=False, waning=True, name="SIRS",
                     title="SIRS (waning immunity) with under-reporting")


MOTIFS = (
    Motif("SEIR", "epidemiology", "SEIR with under-reporting",
          _KEYWORDS + ("incubation", "latent", "exposed", "seir"), _SLOTS, _seir, prior=0.3),
    Motif("SIR", "epidemiology", "SIR with under-reporting", _KEYWORDS, _SLOTS, _sir, prior=0.2),
    Motif("SIRS", "epidemiology", "SIRS with waning immunity",
          _KEYWORDS + ("waning", "wane", "reinfect", "endemic", "seasonal", "recurrent"),
          _SLOTS, _sirs, prior=0.1),
)
