"""Lung cancer under concurrent chemoradiotherapy, after the PK-PD model of Geng et al.
(2017) used in the hybrid-digital-twin literature (HDTwinGen).

The tumour grows by Gompertz's law; chemotherapy is an intravenous drug whose plasma
amount decays exponentially after each weekly dose and kills cells in proportion to it;
radiotherapy kills by the linear-quadratic law, a log-kill of ``alpha d + beta d^2`` per
fraction of ``d`` Gy. The DSL has no impulses on rates, so each treatment week's five
2-Gy fractions are delivered as a dose rate (Gy per day) over Monday to Friday, with the
per-Gy kill ``alpha + beta d`` of a 2-Gy fraction (alpha/beta = 10 Gy): the same
log-kill per week as five fractions, smoothed within the week (volumes are imaged every
two days, so the difference is invisible in the data).
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask, Counterfactual
from mechanistic import LogNormalNoise, LogUniform, Model, log
from mechanistic.interventions import Dose, SetValue

__all__ = ["tasks"]

_START = 14.0                    # first treatment day (a Monday)
_WEEKS = 6
_CHEMO_MG = 90.0
_CHEMO_DAYS = tuple(_START + 7.0 * w for w in range(_WEEKS))
_RT_WINDOWS = tuple((_START + 7.0 * w, _START + 7.0 * w + 5.0) for w in range(_WEEKS))
_FRACTION_GY = 2.0
_ALPHA_BETA = 10.0               # Gy, the usual value for lung tumours


def _lung(full: bool, law: str = "gompertz") -> Model:
    m = Model("lung tumour under chemoradiotherapy", time_unit="day")
    vol, drug = m.states("tumour drug")
    r = m.param("r_growth", LogUniform(1e-3, 0.1), doc="growth rate", unit="1/day")
    k_cap = (m.param("k_cap", LogUniform(50.0, 5000.0), doc="plateau volume", unit="cm^3")
             if law == "gompertz" else None)
    k_chemo = m.param("k_chemo", LogUniform(1e-5, 1e-2), doc="log-kill per mg-day of drug")
    k_el = m.param("k_el", LogUniform(0.05, 5.0), doc="drug elimination rate", unit="1/day")
    alpha = m.param("alpha_rad", LogUniform(0.005, 0.3), doc="linear radiosensitivity",
                    unit="1/Gy")
    v0 = m.param("v0", LogUniform(1.0, 500.0), doc="volume at day 0", unit="cm^3")
    sd_vol = m.param("sd_volume", LogUniform(0.01, 1.0))
    ratio = m.constant("alpha_beta", _ALPHA_BETA, unit="Gy")
    frac = m.constant("fraction_gy", _FRACTION_GY, unit="Gy")
    dose_rate = m.control("radiation", 0.0, doc="radiotherapy dose rate", unit="Gy/day")
    if k_cap is not None:
        m.flow(None, vol, r * vol * log(k_cap / vol), name="growth")
    else:
        m.flow(None, vol, r * vol, name="growth")
    m.flow(vol, None, k_chemo * drug * vol, name="chemo_kill")
    m.flow(vol, None, alpha * (1 + frac / ratio) * dose_rate * vol, name="radiation_kill")
    m.flow(drug, None, k_el * drug, name="drug_elimination")
    m.init(tumour=v0, drug=0)
    m.observe("tumour_volume", vol, noise=LogNormalNoise(sd_vol), unit="cm^3")
    if full:
        vd = m.param("v_dist", LogUniform(5.0, 500.0), doc="volume of distribution", unit="L")
        sd_c = m.param("sd_conc", LogUniform(0.01, 1.0))
        m.observe("drug_conc", drug / vd, noise=LogNormalNoise(sd_c), unit="mg/L")
    return m


_TEXT = (
    "A patient with locally advanced non-small-cell lung cancer, not suitable for surgery, "
    "received concurrent chemoradiotherapy. Chemotherapy was a 90 mg intravenous dose of "
    "paclitaxel once a week for six weeks, on days 14, 21, 28, 35, 42 and 49; the drug is "
    "cleared from the blood over a few days, and while it circulates it kills tumour cells "
    "in proportion to its level. Radiotherapy was given in 2 Gy fractions, one a day from "
    "Monday to Friday (days 14-18, 21-25, 28-32, 35-39, 42-46 and 49-53), 60 Gy in all; "
    "each fraction kills a fixed share of the tumour cells. Untreated, the tumour grows "
    "quickly at first and more slowly as it gets larger. Tumour volume (cm3) was measured "
    "on cone-beam CT every two days from diagnosis (day 0) to day 120.")


def lung(full: bool) -> BenchTask:
    params = {"r_growth": 0.012, "k_cap": 600.0, "k_chemo": 4e-4, "k_el": 0.35,
              "alpha_rad": 0.03, "v0": 40.0, "sd_volume": 0.08}
    if full:
        params.update({"v_dist": 60.0, "sd_conc": 0.15})
    extra = (" Plasma paclitaxel concentration (mg/L) was measured at every imaging visit; "
             "it was below the limit of quantification before the first dose and again once "
             "the drug had washed out after treatment.") if full else ""
    conditions = (Dose("drug", _CHEMO_MG, _CHEMO_DAYS),
                  *(SetValue("radiation", _FRACTION_GY, a, b) for a, b in _RT_WINDOWS))
    return BenchTask(
        name=f"onc-lung-chemoradio-{'full' if full else 'partial'}",
        domain="oncology",
        difficulty="medium" if full else "hard",
        tags=("tumour-growth", "gompertz", "chemotherapy", "radiotherapy", "pk-pd", "volumes"),
        variant="full" if full else "partial",
        description=_TEXT + extra,
        time_unit="day",
        times=np.arange(0.0, 121.0, 2.0),
        train_until=50.0,
        validate_until=70.0,
        observed=("tumour_volume", "drug_conc") if full else ("tumour_volume",),
        hidden=() if full else ("drug",),
        truth_model=_lung(full),
        truth_params=params,
        conditions=conditions,
        counterfactuals=(
            Counterfactual(
                "What if a boost course of radiotherapy had been given at 2 Gy per day from "
                "day 72 to day 77?",
                (SetValue("radiation", _FRACTION_GY, 72.0, 77.0),), 72.0),
            Counterfactual(
                "What if chemotherapy had continued with three more weekly 90 mg doses of "
                "paclitaxel, at days 56, 63 and 70?",
                (Dose("drug", _CHEMO_MG, (56.0, 63.0, 70.0)),), 56.0),
        ),
        recover={"growth_rate": "r_growth", "kill_rate": "k_chemo",
                 "drug_elimination_rate": "k_el"},
        wrong_model=_lung(full, law="exponential"),
        noise_seed=505,
    )


def tasks() -> list[BenchTask]:
    return [lung(True), lung(False)]
