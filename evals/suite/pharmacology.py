"""Pharmacokinetics: oral dosing through a gut depot nobody measures, and saturable
(enzyme-limited) elimination; and pharmacodynamics: a drug that suppresses a biomarker's
production, and an antiviral that cuts virus release in a cell culture, systems no library
motif covers.

Amounts are in mg and concentrations in mg/L (amount / volume); assay error is
log-normal, and samples whose true concentration is essentially zero (before the first
dose) are reported missing, as a laboratory reports values below its limit of
quantification.

``pd-turnover-full`` (tag ``held-out``: written before any tuning of the discovery
proposer and kept aside from it) has the plasma drug concentration as a known input
(``drug_conc``, mg/L, held at the levels the infusion pump was set to); the cytokine it
suppresses and the acute-phase protein the cytokine drives are both measured.

``pd-antiviral-full`` (also ``held-out``) is an in-vitro infection under an antiviral:
target cells that proliferate to a capacity, infected cells, and free virus whose
release the drug cuts (an Emax effect of the known culture concentration ``drug_conc``);
all three are measured.
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask, Counterfactual, TaskInput
from mechanistic import LogNormalNoise, LogUniform, Model
from mechanistic.interventions import Dose, SetValue

__all__ = ["oral_antibiotic_truth", "tasks"]


# ---------------------------------------------------------------- oral antibiotic
def oral_antibiotic_truth() -> Model:
    """The oral antibiotic's true structure (gut depot, linear clearance; wide priors);
    also the truth of the library agent's synthetic-task benchmark."""
    m = Model("true oral PK", time_unit="hour")
    depot, plasma = m.states("depot plasma")
    k_abs = m.param("k_abs", LogUniform(0.01, 20.0))
    k_out = m.param("k_out", LogUniform(0.001, 5.0))
    vol = m.param("vol", LogUniform(1.0, 1000.0))
    noise = m.param("cv", LogUniform(0.01, 2.0))
    m.flow(depot, plasma, k_abs * depot, name="uptake")
    m.flow(plasma, None, k_out * plasma, name="clearance")
    m.init(depot=0, plasma=0)
    m.observe("conc_mg_per_l", plasma / vol, noise=LogNormalNoise(noise))
    return m


def _iv_wrong(column: str) -> Model:
    """The wrong structure for oral dosing: every dose straight into the blood (no gut
    depot, no absorption phase). Doses still land on ``depot``, which here is the blood."""
    m = Model("IV bolus PK", time_unit="hour")
    (central,) = m.states("depot")
    k_out = m.param("k_out", LogUniform(0.001, 5.0))
    vol = m.param("vol", LogUniform(1.0, 1000.0))
    noise = m.param("cv", LogUniform(0.01, 2.0))
    m.flow(central, None, k_out * central, name="clearance")
    m.init(depot=0)
    m.observe(column, central / vol, noise=LogNormalNoise(noise))
    return m


_DOSE_TIMES = (0.0, 12.0, 24.0, 36.0, 48.0, 60.0, 72.0)


def oral() -> BenchTask:
    """The seed PK task of ``benchmarks/synthetic_tasks.py``."""
    return BenchTask(
        name="pk-oral-partial",
        domain="pharmacology",
        difficulty="easy",
        tags=("pk", "oral", "hidden-compartment", "repeated-dosing", "concentrations"),
        variant="partial",
        description=(
            "Healthy volunteers took a 250 mg tablet of an antibiotic by mouth every 12 hours, "
            "7 doses in all, starting at hour 0. The tablet dissolves in the gut and the drug "
            "is absorbed into the blood over a few hours, then cleared by the kidneys. Plasma "
            "concentration (mg/L) was measured every 2 hours; the pre-dose sample at hour 0 "
            "was below the limit of quantification."),
        time_unit="hour",
        times=np.arange(0.0, 97.0, 2.0),
        train_until=36.0,
        validate_until=48.0,
        observed=("conc_mg_per_l",),
        hidden=("depot",),
        truth_model=oral_antibiotic_truth(),
        truth_params={"k_abs": 0.8, "k_out": 0.09, "vol": 38.0, "cv": 0.12},
        conditions=(Dose("depot", 250.0, _DOSE_TIMES),),
        counterfactuals=(Counterfactual("Give an extra dose of 250 mg at hour 54.",
                                        (Dose("depot", 250.0, (54.0,)),), 48.0),),
        recover={"absorption_rate": "k_abs", "elimination_rate": "k_out", "volume": "vol"},
        wrong_model=_iv_wrong("conc_mg_per_l"),
        noise_seed=11,
    )


# ------------------------------------------------------- saturable elimination
_MAINT = 200.0
_MAINT_TIMES = tuple(float(t) for t in range(0, 168, 12))


def _saturable(full: bool, saturable: bool = True) -> Model:
    m = Model("oral dosing, enzyme-limited metabolism", time_unit="hour")
    gut, central, metab = m.states("gut central metabolite")
    k_abs = m.param("k_abs", LogUniform(0.1, 5.0), doc="absorption rate", unit="1/hour")
    vol = m.param("vol", LogUniform(5.0, 500.0), doc="volume of distribution", unit="L")
    conc = central / vol
    if saturable:
        vmax = m.param("vmax", LogUniform(1.0, 200.0), doc="maximal metabolic rate",
                       unit="mg/hour")
        km = m.param("km", LogUniform(0.5, 50.0), doc="concentration at half vmax",
                     unit="mg/L")
        m.flow(central, metab, vmax * conc / (km + conc), name="metabolism")
    else:  # the wrong structure: first-order (linear) metabolism
        k_met = m.param("k_met", LogUniform(1e-3, 1.0), doc="metabolic rate constant")
        m.flow(central, metab, k_met * central, name="metabolism")
    m.flow(gut, central, k_abs * gut, name="absorption")
    sd = m.param("sd_conc", LogUniform(0.01, 1.0))
    m.init(gut=0, central=0, metabolite=0)
    m.observe("conc", conc, noise=LogNormalNoise(sd), unit="mg/L")
    k_m = m.param("k_renal", LogUniform(0.005, 0.5), doc="renal clearance of the metabolite")
    m.flow(metab, None, k_m * metab, name="renal_excretion")
    if full:
        v_m = m.param("vol_metab", LogUniform(5.0, 500.0), doc="metabolite volume", unit="L")
        sd_m = m.param("sd_metab", LogUniform(0.01, 1.0))
        m.observe("metabolite_conc", metab / v_m, noise=LogNormalNoise(sd_m), unit="mg/L")
    return m


def saturable(full: bool) -> BenchTask:
    """Phenytoin-like kinetics: at 400 mg/day the steady level (~15 mg/L) is reached only
    slowly, and a modest dose increase pushes intake past the enzyme's capacity."""
    params = {"k_abs": 0.5, "vol": 45.0, "vmax": 21.0, "km": 4.0, "sd_conc": 0.08,
              "k_renal": 0.03}
    if full:
        params.update({"vol_metab": 60.0, "sd_metab": 0.12})
    extra = (" The main (inactive) metabolite was measured in the same samples (mg/L); it is "
             "formed by the liver and excreted slowly by the kidneys.") if full else ""
    return BenchTask(
        name=f"pk-saturable-{'full' if full else 'partial'}",
        domain="pharmacology",
        difficulty="medium" if full else "hard",
        tags=("pk", "oral", "saturable-elimination", "nonlinear", "concentrations"),
        variant="full" if full else "partial",
        description=(
            "An adult patient with epilepsy was started on an anticonvulsant without a "
            "loading dose: a 200 mg capsule by mouth every 12 hours, 14 doses starting at "
            "hour 0. The drug is absorbed from the gut over a few hours and removed almost "
            "entirely by metabolism in the liver; the metabolising enzyme is known to be "
            "saturable in the therapeutic range, so the drug is cleared more slowly at high "
            "levels than at low ones. Plasma drug concentration (mg/L) was measured every 4 "
            "hours for a week; the pre-dose sample at hour 0 was below the limit of "
            "quantification." + extra),
        time_unit="hour",
        times=np.arange(0.0, 169.0, 4.0),
        train_until=72.0,
        validate_until=96.0,
        observed=("conc", "metabolite_conc") if full else ("conc",),
        hidden=("gut",) if full else ("gut", "metabolite"),
        truth_model=_saturable(full),
        truth_params=params,
        conditions=(Dose("gut", _MAINT, _MAINT_TIMES),),
        counterfactuals=(Counterfactual(
            "What if the dose had been raised by giving an additional 100 mg every 12 hours, "
            "6 doses starting at hour 96?",
            (Dose("gut", 100.0, tuple(96.0 + 12.0 * i for i in range(6))),), 96.0),),
        recover={"absorption_rate": "k_abs", "volume": "vol"},
        wrong_model=_saturable(full, saturable=False),
        noise_seed=606,
    )


# --------------------------------------------- turnover: suppressed cytokine production
def drug_concentration(times: np.ndarray) -> np.ndarray:
    """Plasma drug concentration (mg/L) the infusion pump was set to hold: a drug-free
    baseline day, two rising levels, a washout, a lower level, and the infusion stopped."""
    return np.select([times < 24, times < 72, times < 120, times < 168, times < 204],
                     [0.0, 0.5, 2.0, 0.0, 1.0], 0.0)


def _turnover(partial: bool = True) -> Model:
    m = Model("cytokine turnover, suppressed production, acute-phase response",
              time_unit="hour")
    il6, crp = m.states("cytokine crp")
    conc = m.control("drug_conc", default=0.0, doc="plasma drug concentration", unit="mg/L")
    k_in = m.param("k_in", LogUniform(0.01, 100.0), doc="cytokine production rate",
                   unit="pg/mL/hour")
    k_out = m.param("k_out", LogUniform(0.005, 5.0), doc="cytokine removal rate constant",
                    unit="1/hour")
    ic50 = m.param("ic50", LogUniform(0.01, 100.0), doc="concentration at half the largest "
                   "suppression", unit="mg/L")
    if partial:
        i_max = m.param("i_max", LogUniform(0.01, 1.0), doc="largest fraction of production "
                        "the drug can suppress")
        suppression = i_max * conc / (ic50 + conc)
    else:  # the wrong structure: enough drug would shut production off completely
        suppression = conc / (ic50 + conc)
    m.flow(None, il6, k_in * (1 - suppression), name="production")
    m.flow(il6, None, k_out * il6, name="removal")
    k_crp = m.param("k_crp", LogUniform(1e-4, 10.0), doc="acute-phase protein made per "
                    "unit of cytokine", unit="(mg/L)/(pg/mL)/hour")
    k_crp_el = m.param("k_crp_el", LogUniform(0.001, 1.0), doc="acute-phase protein "
                       "elimination rate constant", unit="1/hour")
    m.flow(None, crp, k_crp * il6, name="hepatic_synthesis")
    m.flow(crp, None, k_crp_el * crp, name="crp_elimination")
    m.init(cytokine=m.param("cytokine0", LogUniform(0.1, 1000.0)),
           crp=m.param("crp0", LogUniform(0.1, 1000.0)))
    m.observe("il6_pg_per_ml", il6, unit="pg/mL",
              noise=LogNormalNoise(m.param("sd_il6", LogUniform(0.005, 1.0))))
    m.observe("crp_mg_per_l", crp, unit="mg/L",
              noise=LogNormalNoise(m.param("sd_crp", LogUniform(0.005, 1.0))))
    return m


def turnover() -> BenchTask:
    times = np.arange(0.0, 240.5, 4.0)
    return BenchTask(
        name="pd-turnover-full",
        domain="pharmacology",
        difficulty="medium",
        tags=("discovery", "inputs", "pharmacodynamics", "indirect-response", "biomarker",
              "held-out"),
        variant="full",
        description=(
            "A 10-day inpatient study in a patient with active rheumatoid arthritis of an "
            "experimental anti-inflammatory drug that suppresses the production of the "
            "cytokine interleukin-6 (IL-6) by immune cells; in cell assays it never shut "
            "production off completely, however high the concentration. IL-6 is made and "
            "cleared continuously, and it drives the liver to make C-reactive protein (CRP), "
            "which is cleared from blood over about a day. The drug was given by continuous "
            "intravenous infusion through a programmable pump; it is distributed and cleared "
            "within minutes, so its plasma concentration (mg/L) followed the pump setting "
            "almost at once and is known from the setting (confirmed by assay): none on the "
            "first day, then two rising levels, a two-day washout, a lower level, and the "
            "infusion stopped at hour 204. Plasma IL-6 (pg/mL) and CRP (mg/L) were measured "
            "by immunoassay every 4 hours from hour 0, when the patient was at a stable, "
            "untreated baseline."),
        time_unit="hour",
        times=times,
        train_until=144.0,
        validate_until=180.0,
        observed=("il6_pg_per_ml", "crp_mg_per_l"),
        hidden=(),
        truth_model=_turnover(),
        truth_params={"k_in": 2.0, "k_out": 0.1, "i_max": 0.85, "ic50": 0.8, "k_crp": 0.054,
                      "k_crp_el": 0.036, "cytokine0": 20.0, "crp0": 30.0, "sd_il6": 0.08,
                      "sd_crp": 0.05},
        conditions=(),
        counterfactuals=(Counterfactual(
            "What if the infusion had been raised to hold the plasma concentration at 6 mg/L "
            "from hour 180 to the end of the study?",
            (SetValue("drug_conc", 6.0, 180.0),), 180.0),),
        recover={},
        wrong_model=_turnover(partial=False),
        noise_seed=919,
        inputs=(TaskInput("drug_conc", tuple(drug_concentration(times)), "previous",
                          "plasma drug concentration held by the infusion pump (mg/L)"),),
    )




# ------------------------------ antiviral in a hollow-fibre infection model (in vitro)
def antiviral_concentration(times: np.ndarray) -> np.ndarray:
    """Drug concentration (mg/L) the hollow-fibre pump held in the culture: none while the
    infection took hold, a low level, a pause, a high level, and a middle one in the test
    window."""
    return np.select([times < 6, times < 12, times < 15, times < 21], [0.0, 0.3, 0.0, 1.5],
                     0.15)


def _virus(blocks_release: bool = True) -> Model:
    m = Model("target cells, infected cells and virus, an antiviral blocking release",
              time_unit="day")
    t_cells, i_cells, virus = m.states("target infected virus")
    conc = m.control("drug_conc", default=0.0, doc="antiviral concentration in the culture",
                     unit="mg/L")
    r = m.param("r_growth", LogUniform(0.05, 3.0), doc="target-cell proliferation rate",
                unit="1/day")
    cap = m.param("cell_cap", LogUniform(1.0, 100.0), doc="cells the cartridge supports",
                  unit="1e5 cells/mL")
    beta = m.param("beta", LogUniform(1e-4, 1.0), doc="infection rate per virion",
                   unit="mL/(1e5 PFU)/day")
    delta = m.param("delta", LogUniform(0.05, 5.0), doc="infected-cell death rate",
                    unit="1/day")
    burst = m.param("p_virus", LogUniform(0.1, 1000.0), doc="virions released per infected "
                    "cell per day", unit="1e5 PFU/(1e5 cells)/day")
    clear = m.param("c_virus", LogUniform(0.1, 50.0), doc="virion loss rate", unit="1/day")
    ec50 = m.param("ec50", LogUniform(0.005, 10.0), doc="concentration at half the largest "
                   "effect", unit="mg/L")
    effect = conc / (ec50 + conc)
    infection = beta * t_cells * virus
    if blocks_release:
        release = burst * (1 - effect) * i_cells
    else:  # the wrong structure: the drug blocks entry (new infections), not release
        infection = infection * (1 - effect)
        release = burst * i_cells
    m.flow(None, t_cells, r * t_cells * (1 - (t_cells + i_cells) / cap), name="proliferation")
    m.flow(t_cells, i_cells, infection, name="infection")
    m.flow(i_cells, None, delta * i_cells, name="infected_death")
    m.flow(None, virus, release, name="release")
    m.flow(virus, None, clear * virus, name="virion_loss")
    m.init(target=m.param("target0", LogUniform(0.1, 100.0)),
           infected=m.param("infected0", LogUniform(1e-4, 10.0)),
           virus=m.param("virus0", LogUniform(1e-3, 100.0)))
    m.observe("uninfected_1e5_per_ml", t_cells, unit="1e5 cells/mL",
              noise=LogNormalNoise(m.param("sd_target", LogUniform(0.005, 1.0))))
    m.observe("infected_1e5_per_ml", i_cells, unit="1e5 cells/mL",
              noise=LogNormalNoise(m.param("sd_infected", LogUniform(0.005, 1.0))))
    m.observe("virus_1e5_pfu_per_ml", virus, unit="1e5 PFU/mL",
              noise=LogNormalNoise(m.param("sd_virus", LogUniform(0.005, 1.0))))
    return m


def antiviral() -> BenchTask:
    """The held-out in-vitro antiviral task: infection limited by the target cells left,
    and a drug that cuts the release of new virus but does not stop entry."""
    times = np.arange(0.0, 28.01, 0.5)
    return BenchTask(
        name="pd-antiviral-full",
        domain="pharmacology",
        difficulty="hard",
        tags=("discovery", "inputs", "viral-kinetics", "target-cell-limited", "in-vitro",
              "held-out"),
        variant="full",
        description=(
            "A 4-week hollow-fibre infection experiment with an influenza-like virus and an "
            "experimental antiviral. Susceptible epithelial cells divide in the cartridge "
            "until they fill the space it offers (infected cells take up room too). Free "
            "virus infects uninfected cells on contact; infected cells release new virus "
            "and die within a few days, and free virus loses infectivity within hours. The "
            "drug does not stop virus entering cells; it cuts how much new virus infected "
            "cells release, more at higher concentration, with a ceiling near full "
            "suppression. The system's pumps held the drug concentration in the culture "
            "(mg/L, known from the pump program and confirmed by assay) at none for the "
            "first 6 days while the infection took hold, a low level, a 3-day pause from "
            "day 12, a high level from day 15 and a low one from day 21. The culture was "
            "seeded with cells and a small inoculum of virus on day 0. Twice a day, "
            "uninfected and infected cells (1e5 cells per mL, by flow cytometry with a "
            "reporter virus) and infectious virus (1e5 plaque-forming units per mL, by "
            "plaque assay) were measured."),
        time_unit="day",
        times=times,
        train_until=17.0,
        validate_until=21.0,
        observed=("uninfected_1e5_per_ml", "infected_1e5_per_ml", "virus_1e5_pfu_per_ml"),
        hidden=(),
        truth_model=_virus(),
        truth_params={"r_growth": 0.6, "cell_cap": 10.0, "beta": 0.05, "delta": 0.8,
                      "p_virus": 20.0, "c_virus": 5.0, "ec50": 0.3, "target0": 5.0,
                      "infected0": 0.01, "virus0": 0.05, "sd_target": 0.06,
                      "sd_infected": 0.08, "sd_virus": 0.1},
        conditions=(),
        counterfactuals=(
            Counterfactual("What if the drug had been stopped altogether at day 21?",
                           (SetValue("drug_conc", 0.0, 21.0),), 21.0),
            Counterfactual("What if the high level of 1.5 mg/L had been kept from day 21 to "
                           "the end?", (SetValue("drug_conc", 1.5, 21.0),), 21.0),
        ),
        recover={},
        wrong_model=_virus(blocks_release=False),
        noise_seed=971,
        inputs=(TaskInput("drug_conc", tuple(antiviral_concentration(times)), "previous",
                          "antiviral concentration held in the culture by the pumps (mg/L)"),),
    )


def tasks() -> list[BenchTask]:
    return [oral(), saturable(True), saturable(False), turnover(), antiviral()]
