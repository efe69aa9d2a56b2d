"""Hydrology: a small catchment as two stores in series, driven by measured rainfall, a
system no library motif covers.

* ``hydro-reservoirs-full``: the root-zone soil store fills with rain, loses water to
  evapotranspiration and drains to the aquifer by percolation that is slight when the soil
  is dry and rises steeply, towards a ceiling, as it wets up; the aquifer empties into the
  stream in proportion to its storage.

Daily rainfall is a known input (``rainfall``, mm/day): the gauge record, one total per
day, held constant over that day. Written before any tuning of the discovery proposer and
kept aside from it (tag ``held-out``): its figures are reported separately.
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask, Counterfactual, TaskInput
from mechanistic import LogNormalNoise, LogUniform, Model
from mechanistic.interventions import Scale, SetValue

__all__ = ["tasks"]

# The gauge record (mm per day, days 0-200): drawn once from numpy's default_rng(4417)
# (a wet day with probability 0.30 + 0.15 cos(2 pi (day - 20) / 200), gamma(0.75, 10 mm)
# totals rounded to 0.1 mm, below 0.2 mm as dry) and written out, so the record never
# changes with numpy: a wet autumn, a long dry spell, then showers and storms.
_RAINFALL = (
    5, 17, 0, 0, 0, 11.6, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6.2, 0,
    5.7, 14.5, 22.1, 1, 17.7, 10, 0, 17.3, 0, 3.3, 0, 0, 41.1, 0, 1.4, 6.5, 0, 13.7, 2,
    0, 0, 0, 11.6, 0, 0, 14.6, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0.9, 0, 0, 0, 0, 0, 6.3, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.2, 0, 12.6,
    0, 1.4, 0, 0, 0, 0, 5.6, 0, 0, 0, 0, 0, 0, 0, 11.4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3.8, 0, 0, 2.7, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 2.8, 0, 0, 15.2, 0, 0, 0, 16.3, 0, 19.4, 0, 0, 0, 0, 0, 0, 22.4, 0, 0, 9.5, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3.3, 0, 0, 16.9, 0, 0.3, 0, 0, 0, 0, 3, 32.4, 0, 0, 0,
    0, 0, 0, 0, 0,
)
_SPECIFIC_YIELD = 0.05  # drainable porosity of the aquifer, stated in the description


def rainfall(times: np.ndarray) -> np.ndarray:
    """The daily rainfall total (mm/day) recorded on each day in ``times`` (whole days)."""
    return np.asarray(_RAINFALL, dtype=float)[np.asarray(times, dtype=int)]


def _catchment(saturating: bool = True) -> Model:
    m = Model("two-store catchment, saturating percolation", time_unit="day")
    soil, gw = m.states("soil groundwater")
    rain = m.control("rainfall", default=0.0, doc="daily rainfall total", unit="mm/day")
    sy = m.constant("specific_yield", _SPECIFIC_YIELD, doc="drainable porosity of the aquifer")
    k_et = m.param("k_et", LogUniform(1e-3, 0.5), doc="evapotranspiration per mm of soil water",
                   unit="1/day")
    k_base = m.param("k_base", LogUniform(1e-3, 1.0), doc="aquifer outflow to the stream",
                     unit="1/day")
    if saturating:
        p_max = m.param("perc_max", LogUniform(0.1, 100.0), doc="percolation ceiling",
                        unit="mm/day")
        s_half = m.param("soil_half", LogUniform(1.0, 1000.0),
                         doc="soil water at half the percolation ceiling", unit="mm")
        percolation = p_max * soil**2 / (s_half**2 + soil**2)
    else:  # the wrong structure: percolation in proportion to the soil water
        k_perc = m.param("k_perc", LogUniform(1e-4, 1.0), doc="percolation per mm of soil water",
                         unit="1/day")
        percolation = k_perc * soil
    s0 = m.param("soil0", LogUniform(1.0, 1000.0), unit="mm")
    g0 = m.param("groundwater0", LogUniform(1.0, 1000.0), unit="mm")
    m.flow(None, soil, rain, name="infiltration")
    m.flow(soil, None, k_et * soil, name="evapotranspiration")
    m.flow(soil, gw, percolation, name="percolation")
    m.flow(gw, None, k_base * gw, name="baseflow")
    m.init(soil=s0, groundwater=g0)
    m.observe("soil_water_mm", soil, unit="mm",
              noise=LogNormalNoise(m.param("sd_soil", LogUniform(0.005, 1.0))))
    m.observe("groundwater_level_m", gw / (1000 * sy), unit="m",
              noise=LogNormalNoise(m.param("sd_level", LogUniform(0.005, 1.0))))
    return m


def reservoirs() -> BenchTask:
    times = np.arange(0.0, 200.5, 1.0)
    return BenchTask(
        name="hydro-reservoirs-full",
        domain="hydrology",
        difficulty="medium",
        tags=("discovery", "inputs", "catchment", "rainfall-runoff", "held-out"),
        variant="full",
        description=(
            "A small upland catchment on permeable ground, monitored for 200 days from the "
            "start of autumn. Rain soaks into the root-zone soil; from there water is taken "
            "up by the vegetation and evaporated (more when the soil is wetter), or drains "
            "down to the aquifer below, slowly while the soil is dry and much faster once it "
            "is wet, up to a limit the subsoil allows. The aquifer feeds the stream through "
            "springs, faster the higher its water table; the stream flow was not gauged. "
            "Rainfall was recorded by a gauge as a daily total (mm per day) and is known for "
            "every day. Each day, soil water in the root zone (mm of water, from a profile of "
            "soil-moisture probes) and the water-table height above the stream bed in an "
            "observation well (m) were read; the aquifer's specific yield is 0.05, so a 1 mm "
            "gain of stored groundwater raises the water table by 2 cm."),
        time_unit="day",
        times=times,
        train_until=120.0,
        validate_until=150.0,
        observed=("soil_water_mm", "groundwater_level_m"),
        hidden=(),
        truth_model=_catchment(),
        truth_params={"k_et": 0.02, "k_base": 0.04, "perc_max": 5.0, "soil_half": 100.0,
                      "soil0": 70.0, "groundwater0": 30.0, "sd_soil": 0.04, "sd_level": 0.03},
        conditions=(),
        counterfactuals=(
            Counterfactual("What if rainfall had been twice as heavy every day from day 150 "
                           "on?", (Scale("rainfall", 2.0, 150.0),), 150.0),
            Counterfactual("What if the dry spell had gone on: no rain at all from day 150 to "
                           "the end of the record?", (SetValue("rainfall", 0.0, 150.0),), 150.0),
        ),
        recover={},
        wrong_model=_catchment(saturating=False),
        noise_seed=907,
        inputs=(TaskInput("rainfall", tuple(rainfall(times)), "previous",
                          "daily rainfall total recorded by the gauge (mm/day)"),),
    )


def tasks() -> list[BenchTask]:
    return [reservoirs()]
