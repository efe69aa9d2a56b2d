"""The offline what-if mapper on a table of plain-language questions across domains.

Every expected intervention list below was written by hand from the question (the
arithmetic is in the comments), not produced by running the mapper. ``HELD_OUT`` was
written before the mapper was extended and its phrasings were not used to tune it; its
exact-match figure is reported separately (a miss is marked ``xfail(strict=True)``).

Role names are the motifs' own (``agent/library/motifs``); inputs are the kind a
bioprocess or reactor task names for its data-driven controls.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.library.counterfactual import translate, translate_question
from mechanistic.interventions import (
    Dose,
    Infusion,
    Intervention,
    Scale,
    SetValue,
    Transfer,
)

INF = math.inf

# ------------------------------------------------------------------ roles and inputs
PK_ORAL = {"central": "central", "elimination_rate": "k_el", "volume": "V", "dose_target": "gut",
           "absorption_rate": "ka", "main_flow": "elimination"}
PK_1CPT = {"central": "central", "elimination_rate": "k_el", "volume": "V",
           "dose_target": "central", "main_flow": "elimination"}
SEIR = {"susceptible": "S", "exposed": "E", "infectious": "I", "recovered": "R",
        "vaccinated": "R", "transmission_rate": "beta", "recovery_rate": "gamma",
        "incubation_rate": "sigma", "reporting_fraction": "rho",
        "contact_control": "contact_reduction", "incidence_flow": "infection",
        "main_flow": "infection", "population": "N_pop"}
SIR_NO_CONTROL = {"susceptible": "S", "infectious": "I", "recovered": "R", "vaccinated": "R",
                  "transmission_rate": "beta", "recovery_rate": "gamma"}
LV = {"prey": "prey", "predator": "predator", "prey_growth": "alpha", "predation_rate": "beta",
      "conversion_rate": "delta", "predator_death_rate": "gamma", "main_flow": "predation",
      "dose_target": "prey", "prey_harvest_control": "prey_harvest",
      "predator_harvest_control": "predator_harvest"}
LV_NO_HARVEST = {"prey": "prey", "predator": "predator"}  # infer_roles on a foreign model
FISHERY = {"population": "X", "growth_rate": "r", "carrying_capacity": "K", "dose_target": "X",
           "main_flow": "births", "population_harvest_control": "population_harvest"}
FOOD_CHAIN = {"prey": "consumer", "predator": "top", "resource": "resource",
              "consumer": "consumer", "top_predator": "top", "prey_growth": "r",
              "predation_rate": "a2", "predator_death_rate": "d2", "main_flow": "predation",
              "dose_target": "resource", "top_harvest_control": "top_harvest",
              "predator_harvest_control": "top_harvest"}
TUMOUR = {"tumour": "V", "growth_rate": "r", "main_flow": "growth", "drug": "C",
          "kill_rate": "kill", "dose_target": "C", "drug_elimination_rate": "k_el",
          "radiation_control": "radiation", "radiation_sensitivity": "alpha_rad"}
GLUCOSE = {"glucose": "G", "insulin": "Ins", "remote_insulin": "X",
           "glucose_effectiveness": "p1", "insulin_sensitivity": "p3",
           "insulin_clearance": "n", "secretion_rate": "gam", "dose_target": "G",
           "glucose_dose_target": "G", "insulin_dose_target": "Ins",
           "main_flow": "insulin_uptake"}
BIOPROCESS = {"biomass": "X", "substrate": "S"}
FEDBATCH_IN = {"feed_rate": "substrate feed pump rate",
               "temperature": "bioreactor temperature setpoint"}
CHEMOSTAT_IN = {"D": "dilution rate", "S_in": "substrate concentration in the feed"}
REACTOR_IN = {"T_jacket": "cooling jacket temperature", "F_in": "inlet flow of reactant A"}

# The study's own oral regimen: 250 mg every 12 hours, 7 doses from hour 0.
REGIMEN = (Dose("gut", 250.0, (0.0, 12.0, 24.0, 36.0, 48.0, 60.0, 72.0)),)


@dataclass(frozen=True)
class Case:
    id: str
    question: str
    roles: Mapping[str, str]
    unit: str | None
    want: Sequence[Intervention]
    replaces: bool = False
    replaces_from: float | None = None
    inputs: Mapping[str, str] | None = None
    regimen: Sequence[Dose] | None = None
    horizon: float | None = None
    marks: Sequence[Any] = field(default_factory=tuple)


# ---------------------------------------------------------------- held out (written first)
HELD_OUT: list[Case] = [
    Case("H1-instead-count-start", "What if the patient had taken 150 mg every 8 hours for 4 "
         "doses instead, starting at hour 2?", PK_ORAL, "hour",
         [Dose("gut", 150.0, (2.0, 10.0, 18.0, 26.0))], True, 2.0, regimen=REGIMEN),
    Case("H2-infused-over", "What if 400 mg had been infused over 2 hours starting at hour 1?",
         PK_1CPT, "hour", [Infusion("central", 200.0, 1.0, 3.0)]),  # 400 / 2 h
    Case("H3-contacts-cut", "What if contacts had been cut by 40% from day 30 to day 60?",
         SEIR, "day", [SetValue("contact_reduction", 0.4, 30.0, 60.0)]),
    Case("H4-dilution-throughout", "What if the dilution rate had been 0.15 throughout?",
         BIOPROCESS, "hour", [SetValue("D", 0.15, 0.0, INF)], inputs=CHEMOSTAT_IN),
    Case("H5-pump-off", "Suppose the feed pump had been turned off from hour 30.", BIOPROCESS,
         "hour", [SetValue("feed_rate", 0.0, 30.0, INF)], inputs=FEDBATCH_IN),
    Case("H6-fished-annually", "What if 15% of the stock had been fished annually starting in "
         "year 3?", FISHERY, "year", [SetValue("population_harvest", 0.15, 3.0, INF)]),
    Case("H7-twice-daily-window", "What if the patient had received 5 mg of the drug twice "
         "daily from day 2 until day 5?", TUMOUR, "day",
         [Dose("C", 5.0, (2.0, 2.5, 3.0, 3.5, 4.0, 4.5))]),  # every 0.5 day, 5 excluded
    Case("H8-insulin-rate", "What if insulin had been infused at 0.5 units per minute between "
         "minute 10 and minute 40?", GLUCOSE, "minute", [Infusion("Ins", 0.5, 10.0, 40.0)]),
    Case("H9-temperature-relative", "Had the temperature been raised by 10% after hour 12?",
         BIOPROCESS, "hour", [Scale("temperature", 1.1, 12.0, INF)], inputs=FEDBATCH_IN),
    Case("H10-rather-than-once-daily", "Rather than the current regimen, what if she had "
         "taken 100 mg once daily?", PK_ORAL, "hour",
         [Dose("gut", 100.0, (0.0, 24.0, 48.0, 72.0, 96.0))], True, 0.0, regimen=REGIMEN,
         horizon=120.0),  # doses before the horizon 120
]

# ------------------------------------------------------------------------ the table
CASES: list[Case] = [
    # --- pharmacology: regimens replaced
    Case("P1-instead-every-24h-horizon", "Had the patient instead taken 200 mg every 24 hours?",
         PK_ORAL, "hour", [Dose("gut", 200.0, (0.0, 24.0, 48.0, 72.0, 96.0, 120.0, 144.0))],
         True, 0.0, regimen=REGIMEN, horizon=168.0),
    Case("P2-instead-count", "What if she had taken 100 mg every 12 h for 5 doses instead?",
         PK_ORAL, "hour", [Dose("gut", 100.0, (0.0, 12.0, 24.0, 36.0, 48.0))], True, 0.0,
         regimen=REGIMEN),
    Case("P3-rather-than-clause", "Rather than 250 mg twice daily, what if the patient had "
         "taken 500 mg once daily?", PK_ORAL, "hour",
         [Dose("gut", 500.0, (0.0, 24.0, 48.0, 72.0))], True, 0.0, regimen=REGIMEN,
         horizon=96.0),
    Case("P4-replaced-until", "What if the regimen had been replaced by 150 mg every 8 hours "
         "from hour 4 until hour 48?", PK_ORAL, "hour",
         [Dose("gut", 150.0, (4.0, 12.0, 20.0, 28.0, 36.0, 44.0))], True, 4.0,
         regimen=REGIMEN),
    Case("P5-switch-three-times-a-day", "What if, from hour 24 on, the patient had switched to "
         "300 mg three times a day until hour 72?", PK_ORAL, "hour",
         [Dose("gut", 300.0, (24.0, 32.0, 40.0, 48.0, 56.0, 64.0))], True, 24.0,
         regimen=REGIMEN),
    Case("P13-infusion-instead", "What if an infusion of 2 mg/h had run continuously instead "
         "of the tablets?", PK_ORAL, "hour", [Infusion("central", 2.0, 0.0, INF)], True, 0.0,
         regimen=REGIMEN),
    Case("P18-same-dose-instead", "What if the patient had taken the same dose every 8 hours "
         "instead?", PK_ORAL, "hour",
         [Dose("gut", 250.0, (0.0, 8.0, 16.0, 24.0, 32.0, 40.0))], True, 0.0,
         regimen=REGIMEN, horizon=48.0),
    # --- pharmacology: the study regimen edited
    Case("P14-skip-at-time", "Had the patient skipped the dose at hour 24?", PK_ORAL, "hour",
         [Dose("gut", 250.0, (36.0, 48.0, 60.0, 72.0))], True, 24.0, regimen=REGIMEN),
    Case("P15-missed-ordinal", "What if the second dose had been missed?", PK_ORAL, "hour",
         [Dose("gut", 250.0, (24.0, 36.0, 48.0, 60.0, 72.0))], True, 12.0, regimen=REGIMEN),
    Case("P16-stopped-after-third", "What if treatment had been stopped after the third dose?",
         PK_ORAL, "hour", [], True, 36.0, regimen=REGIMEN),  # doses 0, 12, 24 kept
    Case("P17-doubled-from", "What if the dose had been doubled from hour 36?", PK_ORAL, "hour",
         [Dose("gut", 500.0, (36.0, 48.0, 60.0, 72.0))], True, 36.0, regimen=REGIMEN),
    # --- pharmacology: extra and one-off doses, repeated regimens
    Case("P6-extra-dose", "Give an extra dose of 250 mg at hour 54.", PK_ORAL, "hour",
         [Dose("gut", 250.0, (54.0,))], regimen=REGIMEN),
    Case("P7-at-list", "What if 50 mg had been given at 0, 12 and 24 hours?", PK_1CPT, "hour",
         [Dose("central", 50.0, (0.0, 12.0, 24.0))]),
    Case("P8-twice-daily-for-days", "What if the patient had been given 100 mg twice daily for "
         "3 days?", PK_ORAL, "hour",
         [Dose("gut", 100.0, (0.0, 12.0, 24.0, 36.0, 48.0, 60.0))]),
    Case("P9-minutes-model", "What if the patient had received 5 mg every 2 hours for 4 "
         "doses?", PK_1CPT, "minute", [Dose("central", 5.0, (0.0, 120.0, 240.0, 360.0))]),
    Case("P20-iv-bolus-oral-model", "What if an IV bolus of 100 mg had been given at t=6?",
         PK_ORAL, "hour", [Dose("central", 100.0, (6.0,))]),
    Case("P21-q8h-count-words", "Inject 20 mg q8h for three doses starting at hour 1.",
         PK_1CPT, "hour", [Dose("central", 20.0, (1.0, 9.0, 17.0))]),
    Case("P22-every-other-day", "What if 40 mg had been taken every other day from day 1 until "
         "day 7?", PK_ORAL, "hour", [Dose("gut", 40.0, (24.0, 72.0, 120.0))]),  # 24..168 h
    # --- pharmacology: infusions
    Case("P10-infusion-amount-window", "What if there had been an extra infusion of 300 units "
         "between minute 20 and 22?", PK_1CPT, "minute",
         [Infusion("central", 150.0, 20.0, 22.0)]),  # 300 / 2 min
    Case("P11-infusion-rate-converted", "What if the drug had been infused at 5 mg per hour "
         "from hour 2 to hour 6?", PK_1CPT, "minute",
         [Infusion("central", 5.0 / 60.0, 120.0, 360.0)]),
    Case("P12-infused-over-minutes", "Suppose 500 mg had been infused over 30 minutes starting "
         "at hour 4.", PK_ORAL, "hour", [Infusion("central", 1000.0, 4.0, 4.5)]),
    Case("P24-hour-long-infusion-at", "What if a 2-hour infusion of 400 mg had been started "
         "at hour 1?", PK_1CPT, "hour", [Infusion("central", 200.0, 1.0, 3.0)]),
    Case("P23-infusion-rate-and-total", "What if 100 mg had been infused at 5 mg per hour from "
         "hour 2?", PK_1CPT, "hour", [Infusion("central", 5.0, 2.0, 22.0)]),  # 100/5 = 20 h
    # --- pharmacology: rates
    Case("P19-clearance-doubled", "What if the clearance had been doubled?", PK_1CPT, "hour",
         [Scale("k_el", 2.0, 0.0, INF)]),
    # --- physiology (minutes)
    Case("G1-insulin-injection", "What if 10 units of insulin had been injected at t=20?",
         GLUCOSE, "minute", [Dose("Ins", 10.0, (20.0,))]),
    Case("G2-meal", "What if the patient had eaten a meal of 50 g glucose at minute 30?",
         GLUCOSE, "minute", [Dose("G", 50.0, (30.0,))]),
    # --- epidemiology (days)
    Case("E1-contacts-between", "What if contacts had been reduced by 30% between day 40 and "
         "80?", SEIR, "day", [SetValue("contact_reduction", 0.3, 40.0, 80.0)]),
    Case("E2-lockdown-to-percent", "What if a lockdown had cut contacts to 40% of normal from "
         "day 20?", SEIR, "day", [SetValue("contact_reduction", 0.6, 20.0, INF)]),
    Case("E3-schools-for-days", "Had schools closed, reducing contacts by a quarter for 30 days "
         "from day 50?", SEIR, "day", [SetValue("contact_reduction", 0.25, 50.0, 80.0)]),
    Case("E4-distancing-no-control", "What if social distancing had reduced contacts by 50% "
         "after day 15?", SIR_NO_CONTROL, "day", [Scale("beta", 0.5, 15.0, INF)]),
    Case("E5-vaccinated-per-day", "What if 1% of susceptibles had been vaccinated per day from "
         "day 70?", SEIR, "day", [Transfer("S", "R", 0.01, 70.0, INF)]),
    Case("E6-vaccinated-weekly-rate", "What if we had vaccinated 7% of the susceptible "
         "population each week starting on day 14?", SEIR, "day",
         [Transfer("S", "R", 0.01, 14.0, INF)]),  # 7% / 7 days
    Case("E7-halve-transmission", "What if transmission had been halved from day 50?", SEIR,
         "day", [Scale("beta", 0.5, 50.0, INF)]),
    Case("E8-recovery-higher", "What if the recovery rate had been 20% higher between day 10 "
         "and day 40?", SEIR, "day", [Scale("gamma", 1.2, 10.0, 40.0)]),
    Case("E9-immunised-daily", "What if 2% of susceptible people had been immunised daily from "
         "day 30 until day 90?", SEIR, "day", [Transfer("S", "R", 0.02, 30.0, 90.0)]),
    Case("E10-vaccination-weeks-model", "What if 1% of susceptibles had been vaccinated per day "
         "from week 2?", SEIR, "week", [Transfer("S", "R", 0.07, 2.0, INF)]),  # 1%/day = 7%/wk
    # --- ecology and fisheries (years)
    Case("F1-fish-per-year", "What if 10% of the fish had been harvested per year from year "
         "5?", FISHERY, "year", [SetValue("population_harvest", 0.1, 5.0, INF)]),
    Case("F2-fishery-annually", "What if the fishery had removed 20% of the stock annually?",
         FISHERY, "year", [SetValue("population_harvest", 0.2, 0.0, INF)]),
    Case("F3-deer-culled", "What if 30% of the deer had been culled each year starting from "
         "year 2?", LV, "year", [SetValue("prey_harvest", 0.3, 2.0, INF)]),
    Case("F4-hunted-at-a-rate", "What if predators had been hunted at a rate of 0.15 per year "
         "from year 10 to year 20?", LV, "year", [SetValue("predator_harvest", 0.15, 10.0, 20.0)]),
    Case("F5-prey-per-day-on-years", "What if 0.2 of the prey had been removed per day?", LV,
         "year", [SetValue("prey_harvest", 0.2 * 365.25, 0.0, INF)]),
    Case("F6-trapped-no-control", "What if 5% of the lynx had been trapped every year?",
         LV_NO_HARVEST, "year", [Transfer("predator", None, 0.05, 0.0, INF)]),
    Case("F7-top-predators", "What if 25% of top predators had been removed per year after "
         "year 3?", FOOD_CHAIN, "year", [SetValue("top_harvest", 0.25, 3.0, INF)]),
    Case("F8-predation-reduced", "What if the predation rate had been reduced by 40%?", LV,
         "year", [Scale("beta", 0.6, 0.0, INF)]),
    # --- oncology (days)
    Case("O1-irradiate", "What if the tumour had been irradiated at 2 Gy per day from day 10 to "
         "day 15?", TUMOUR, "day", [SetValue("radiation", 2.0, 10.0, 15.0)]),
    Case("O2-radiotherapy-daily", "What if radiotherapy of 1.8 Gy daily had been given between "
         "day 5 and day 12?", TUMOUR, "day", [SetValue("radiation", 1.8, 5.0, 12.0)]),
    Case("O3-drug-every-3-days", "What if the patient had received 10 mg of the drug every 3 "
         "days for 4 doses starting on day 1?", TUMOUR, "day",
         [Dose("C", 10.0, (1.0, 4.0, 7.0, 10.0))]),
    Case("O4-kill-rate-lower", "What if the drug's kill rate had been 50% lower?", TUMOUR,
         "day", [Scale("kill", 0.5, 0.0, INF)]),
    Case("O5-single-dose-on-day", "What if a single 20 mg dose of the drug had been given on "
         "day 7?", TUMOUR, "day", [Dose("C", 20.0, (7.0,))]),
    # --- bioprocess and chemistry inputs
    Case("B1-feed-raised-days-to-hours", "What if the feed rate had been raised to 0.3 from day "
         "10?", BIOPROCESS, "hour", [SetValue("feed_rate", 0.3, 240.0, INF)],
         inputs=FEDBATCH_IN),
    Case("B2-set-temperature", "Set the temperature to 30 from hour 5.", BIOPROCESS, "hour",
         [SetValue("temperature", 30.0, 5.0, INF)], inputs=FEDBATCH_IN),
    Case("B3-dilution-throughout", "What if the dilution rate had been 0.2 throughout?",
         BIOPROCESS, "day", [SetValue("D", 0.2, 0.0, INF)], inputs=CHEMOSTAT_IN),
    Case("B4-pump-switched-off", "Had the pump been switched off after t=40?", BIOPROCESS,
         "hour", [SetValue("feed_rate", 0.0, 40.0, INF)], inputs=FEDBATCH_IN),
    Case("B5-feed-by-percent", "What if we had increased the feed rate by 50%?", BIOPROCESS,
         "hour", [Scale("feed_rate", 1.5, 0.0, INF)], inputs=FEDBATCH_IN),
    Case("B6-dilution-halved", "What if the dilution rate had been halved from day 20?",
         BIOPROCESS, "day", [Scale("D", 0.5, 20.0, INF)], inputs=CHEMOSTAT_IN),
    Case("B7-short-name", "What if D had been set to 0.05 between day 3 and day 6?",
         BIOPROCESS, "day", [SetValue("D", 0.05, 3.0, 6.0)], inputs=CHEMOSTAT_IN),
    Case("B8-description-named", "What if the substrate concentration in the feed had been "
         "20 g/L from day 2?", BIOPROCESS, "day", [SetValue("S_in", 20.0, 2.0, INF)],
         inputs=CHEMOSTAT_IN),
    Case("C1-jacket-set", "What if the jacket temperature had been set to 290 from minute 30?",
         {}, "minute", [SetValue("T_jacket", 290.0, 30.0, INF)], inputs=REACTOR_IN),
    Case("C2-inlet-cut", "What if the inlet flow had been cut by 20% between minute 10 and "
         "minute 50?", {}, "minute", [Scale("F_in", 0.8, 10.0, 50.0)], inputs=REACTOR_IN),
    Case("C3-reactant-shut-off-at", "What if the reactant feed had been shut off at minute "
         "45?", {}, "minute", [SetValue("F_in", 0.0, 45.0, INF)], inputs=REACTOR_IN),
    Case("C5-off-then-restarted", "What if the feed had been stopped at hour 20 and restarted "
         "at hour 30?", BIOPROCESS, "hour", [SetValue("feed_rate", 0.0, 20.0, 30.0)],
         inputs=FEDBATCH_IN),
    Case("C4-raised-from-to", "What if the feed rate had been raised from 0.1 to 0.25 at hour "
         "8?", BIOPROCESS, "hour", [SetValue("feed_rate", 0.25, 8.0, INF)],
         inputs=FEDBATCH_IN),
]


@dataclass(frozen=True)
class Refusal:
    id: str
    question: str
    roles: Mapping[str, str]
    unit: str | None
    match: str  # a word the reason must contain
    inputs: Mapping[str, str] | None = None
    regimen: Sequence[Dose] | None = None
    horizon: float | None = None


# Found on the suite after the table was written (onc-lung-chemoradio: the listed days were
# read as "weekly from day 0 to the horizon", 18 doses); not counted in the table's rate.
LISTED_WITH_REPEAT_WORD = [
    Case("T1-weekly-listed-days", "What if chemotherapy had continued with three more "
         "weekly 90 mg doses of paclitaxel, at days 56, 63 and 70?", TUMOUR, "day",
         [Dose("C", 90.0, (56.0, 63.0, 70.0))]),
    Case("T2-daily-listed-hours", "What if she had taken 50 mg daily at hours 0, 24 and 48?",
         PK_1CPT, "hour", [Dose("central", 50.0, (0.0, 24.0, 48.0))]),
]

REFUSALS: list[Refusal] = [
    Refusal("weather", "What if the weather had been better?", SEIR, "day", "cannot map"),
    Refusal("vague-virus", "Had we done something about the virus?", SEIR, "day", "cannot map"),
    Refusal("dose-no-amount", "What if the patient had taken the drug every 12 hours instead?",
            PK_ORAL, "hour", "amount", regimen=REGIMEN, horizon=96.0),
    Refusal("regimen-no-end", "What if she had taken 200 mg every 24 hours instead?", PK_ORAL,
            "hour", "horizon", regimen=REGIMEN),
    Refusal("infusion-no-end", "What if 300 units had been infused from minute 20?", PK_1CPT,
            "minute", "how long"),
    Refusal("vaccinate-no-rate", "What if we had vaccinated people?", SEIR, "day", "rate"),
    Refusal("harvest-no-fraction", "What if the fish had been harvested more heavily?",
            FISHERY, "year", "fraction"),
    Refusal("replace-or-add", "What if the patient had taken 100 mg every 12 hours?", PK_ORAL,
            "hour", "replaces", regimen=REGIMEN, horizon=96.0),
    Refusal("absolute-increment", "Had the feed rate been raised by 0.1?", BIOPROCESS, "hour",
            "absolute", inputs=FEDBATCH_IN),
    Refusal("input-no-level", "What if the feed rate had been changed?", BIOPROCESS, "hour",
            "no new level", inputs=FEDBATCH_IN),
    Refusal("double-without-regimen", "What if the dose had been doubled?", PK_ORAL, "hour",
            "regimen"),
    Refusal("empty-window", "What if the temperature had been set to 30 from hour 5 to hour "
            "2?", BIOPROCESS, "hour", "empty", inputs=FEDBATCH_IN),
    Refusal("per-day-split", "What if 200 mg per day had been given?", PK_ORAL, "hour",
            "per day"),
    Refusal("two-inputs", "What if the dilution rate and the substrate concentration in the "
            "feed had both been doubled?", BIOPROCESS, "day", "inputs", inputs=CHEMOSTAT_IN),
    Refusal("two-amounts", "Give 100 mg at hour 0 and 50 mg at hour 12.", PK_1CPT, "hour",
            "several amounts"),
    Refusal("two-changes", "What if contacts had been reduced by 30% and 1% of susceptibles "
            "vaccinated per day?", SEIR, "day", "several changes"),
    Refusal("vaccinate-predators", "What if 1% of susceptibles had been vaccinated per day?",
            LV, "year", "vaccination"),
]


# ---------------------------------------------------------------------------- checks
def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, int | float):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want,
                                                                         strict=True))
    return got == want


def _exact(got: Sequence[Intervention], want: Sequence[Intervention]) -> bool:
    a, b = [g.to_dict() for g in got], [w.to_dict() for w in want]
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(_same(x[k], y[k]) for k in y) for x, y in zip(a, b,
                                                                                  strict=True))


def _ask(case: Case | Refusal) -> dict[str, Any]:
    return translate_question(case.question, case.roles, case.unit, inputs=case.inputs,
                              regimen=case.regimen, horizon=case.horizon)


def _names(item: Intervention) -> list[str]:
    d = item.to_dict()
    return [d[k] for k in ("target", "state", "source") if isinstance(d.get(k), str)]


def _param(cases: list[Case], xfail: Mapping[str, str] | None = None) -> list[Any]:
    xfail = xfail or {}
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=xfail[c.id])]
                         if c.id in xfail else []) for c in cases]


# Held-out questions the mapper does not get right (reported, not tuned away).
HELD_OUT_MISSES: dict[str, str] = {
    "H6-fished-annually": "'starting in year 3' is not read as a start ('in' is not a start "
                          "word), so the harvest runs from t=0: a silent miss",
}


def test_the_table_is_big_enough() -> None:
    assert len(CASES) + len(HELD_OUT) >= 45 and len(HELD_OUT) == 10
    assert len(REFUSALS) >= 8
    ids = [c.id for c in [*CASES, *HELD_OUT]] + [r.id for r in REFUSALS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", _param(CASES) + _param(HELD_OUT, HELD_OUT_MISSES))
def test_question_maps_exactly(case: Case) -> None:
    out = _ask(case)
    got = out["interventions"]
    assert _exact(got, case.want), (
        f"{case.question!r}\n got  {[g.to_dict() for g in got]}\n want "
        f"{[w.to_dict() for w in case.want]}\n summary: {out['summary']}")
    assert out["replaces_regimen"] is case.replaces
    if case.replaces:
        assert out["replaces_from"] == pytest.approx(case.replaces_from)
    else:
        assert out["replaces_from"] is None
    summary = out["summary"]
    assert isinstance(summary, str) and summary.strip()
    for item in got:
        assert any(name in summary for name in _names(item)), summary
    # translate() is the same mapping, as a bare list
    assert _exact(translate(case.question, case.roles, case.unit, inputs=case.inputs,
                            regimen=case.regimen, horizon=case.horizon), case.want)


@pytest.mark.parametrize("case", _param(LISTED_WITH_REPEAT_WORD))
def test_listed_times_win_over_a_repeat_word(case: Case) -> None:
    got = _ask(case)["interventions"]
    assert _exact(got, case.want), [g.to_dict() for g in got]


def test_listed_times_that_contradict_the_repeat_word_are_refused() -> None:
    case = Refusal("weekly-listed-wrong", "What if she had taken 50 mg weekly at days 1, 2 "
                   "and 3?", TUMOUR, "day", "one or the other")
    test_question_is_refused_with_a_reason(case)


@pytest.mark.parametrize("refusal", [pytest.param(r, id=r.id) for r in REFUSALS])
def test_question_is_refused_with_a_reason(refusal: Refusal) -> None:
    with pytest.raises(ValueError) as info:
        _ask(refusal)
    message = str(info.value)
    assert message.strip()
    assert refusal.match in message, message


def test_overall_exact_rate_is_at_least_90_percent() -> None:
    """The aggregate the issue asks for, over every mappable question (held-out ones
    included); each question is also its own case above."""
    exact = 0
    for case in [*CASES, *HELD_OUT]:
        with contextlib.suppress(ValueError):
            exact += _exact(_ask(case)["interventions"], case.want)
    assert exact / (len(CASES) + len(HELD_OUT)) >= 0.9


def test_existing_callers_keep_working_without_the_new_arguments() -> None:
    """The positional three-argument form, as the library proposer calls it."""
    assert translate("a dose of 100 mg at t=12", PK_ORAL, "hour") == [Dose("gut", 100.0,
                                                                          (12.0,))]
    assert translate("halve transmission from day 50", SEIR, "day") == [
        Scale("beta", 0.5, 50.0)]
