"""Population dynamics: prey and predators with a saturating (Holling type II) functional
response, a three-level plankton food chain, a fished stock with known effort, and two
competitors, the stronger one trapped at a known effort.

``eco-squirrels-full`` (tag ``held-out``: written before any tuning of the discovery
proposer and kept aside from it) is competition for one resource (each species logistic
in its own numbers plus the other's, weighted by a competition coefficient), not
predation, with the trapping effort (``trapping``, trap-days/ha/year) as a known input.

Animal counts on a fixed monitoring grid are negative binomial; plankton and fish biomass
estimates are log-normal. Removal questions (predator control, fishing) move a fraction
of a population out of the system per unit time.
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask, Counterfactual, TaskInput
from mechanistic import LogNormalNoise, LogUniform, Model, NegBinomial
from mechanistic.interventions import Scale, SetValue, Transfer

__all__ = ["tasks"]


# ----------------------------------------------------- voles and weasels (Holling II)
def _voles(full: bool) -> Model:
    m = Model("logistic prey, saturating predation", time_unit="year")
    prey, pred = m.states("voles weasels")
    r = m.param("r_prey", LogUniform(0.5, 10.0), doc="vole growth rate", unit="1/year")
    k = m.param("k_prey", LogUniform(20.0, 1000.0), doc="vole carrying capacity")
    a = m.param("attack", LogUniform(0.01, 2.0), doc="attack rate per weasel")
    half = m.param("half_sat", LogUniform(2.0, 500.0), doc="vole level of half-maximal intake")
    e = m.param("conversion", LogUniform(0.05, 3.0), doc="weasels born per vole eaten")
    mort = m.param("m_pred", LogUniform(0.2, 5.0), doc="weasel death rate", unit="1/year")
    prey0 = m.param("voles0", LogUniform(5.0, 500.0))
    pred0 = m.param("weasels0", LogUniform(1.0, 200.0))
    phi_prey = m.param("phi_voles", LogUniform(1.0, 200.0))
    intake = a * prey / (1 + prey / half)
    m.flow(None, prey, r * prey, name="births")
    m.flow(prey, None, r * prey * prey / k, name="crowding")
    m.flow(prey, None, intake * pred, name="predation")
    m.flow(None, pred, e * intake * pred, name="predator_births")
    m.flow(pred, None, mort * pred, name="predator_deaths")
    m.init(voles=prey0, weasels=pred0)
    m.observe("voles", prey, noise=NegBinomial(phi_prey), doc="voles trapped per census")
    if full:
        phi_pred = m.param("phi_weasels", LogUniform(1.0, 200.0))
        m.observe("weasels", pred, noise=NegBinomial(phi_pred), doc="weasels counted")
    return m


def _lotka_volterra(names: tuple[str, str], full: bool) -> Model:
    """The wrong structure: exponential prey growth and linear (type I) predation."""
    m = Model("Lotka-Volterra", time_unit="year")
    prey, pred = m.states(" ".join(names))
    r = m.param("r_prey", LogUniform(0.05, 20.0))
    a = m.param("attack", LogUniform(1e-5, 10.0))
    e = m.param("conversion", LogUniform(1e-5, 10.0))
    mort = m.param("m_pred", LogUniform(0.01, 20.0))
    prey0 = m.param("prey0", LogUniform(0.1, 1e4))
    pred0 = m.param("pred0", LogUniform(0.1, 1e4))
    m.flow(None, prey, r * prey, name="births")
    m.flow(prey, None, a * prey * pred, name="predation")
    m.flow(None, pred, e * prey * pred, name="predator_births")
    m.flow(pred, None, mort * pred, name="predator_deaths")
    m.init(**{names[0]: prey0, names[1]: pred0})
    m.observe(names[0], prey, noise=NegBinomial(m.param("phi_prey", LogUniform(0.5, 1000.0))))
    if full:
        m.observe(names[1], pred,
                  noise=NegBinomial(m.param("phi_pred", LogUniform(0.5, 1000.0))))
    return m


def voles(full: bool) -> BenchTask:
    params = {"r_prey": 2.0, "k_prey": 100.0, "attack": 0.25, "half_sat": 20.0,
              "conversion": 0.4, "m_pred": 1.2, "voles0": 50.0, "weasels0": 20.0,
              "phi_voles": 25.0}
    if full:
        params["phi_weasels"] = 25.0
    seen = ("Every three months the voles caught on a fixed trapping grid are counted, and "
            "the weasels on the same grid are counted from snow tracks and live traps."
            if full else
            "Every three months the voles caught on a fixed trapping grid are counted; the "
            "weasels were not monitored.")
    return BenchTask(
        name=f"eco-voles-{'full' if full else 'partial'}",
        domain="ecology",
        difficulty="medium" if full else "hard",
        tags=("predator-prey", "holling-ii", "cycles", "harvest", "counts"),
        variant="full" if full else "partial",
        description=(
            "Field voles on a northern grassland study area are eaten mainly by least weasels, "
            "which depend on voles for food. Vole numbers are limited by the grassland's "
            "carrying capacity; a weasel can only catch and handle so many voles, so its "
            "intake saturates when voles are abundant, and weasels breed in proportion to "
            "what they eat. Populations have been cycling over several years. " + seen),
        time_unit="year",
        times=np.arange(0.0, 30.01, 0.25),
        train_until=16.0,
        validate_until=20.0,
        observed=("voles", "weasels") if full else ("voles",),
        hidden=() if full else ("weasels",),
        truth_model=_voles(full),
        truth_params=params,
        conditions=(),
        counterfactuals=(Counterfactual(
            "From year 20 on, a predator-control programme removes 50% of the weasels "
            "(predators) per year.",
            (Transfer("weasels", None, 0.5, 20.0),), 20.0),),
        recover={"prey_growth": "r_prey", "carrying_capacity": "k_prey",
                 "predation_rate": "attack", "predator_death_rate": "m_pred"},
        wrong_model=_lotka_volterra(("voles", "weasels"), full),
        noise_seed=303,
    )


# ------------------------------------------------------ algae, zooplankton, fish
def _plankton(observed: tuple[str, ...]) -> Model:
    m = Model("three-level food chain", time_unit="day")
    alg, zoo, fish = m.states("algae zooplankton fish")
    r = m.param("r_algae", LogUniform(0.05, 2.0), doc="algal growth rate", unit="1/day")
    k = m.param("k_algae", LogUniform(10.0, 1000.0), doc="algal carrying capacity")
    a1 = m.param("graze", LogUniform(1e-3, 0.2), doc="grazing rate per zooplankter")
    h1 = m.param("half_algae", LogUniform(5.0, 500.0), doc="algae at half-maximal grazing")
    e1 = m.param("eff_zoo", LogUniform(0.05, 1.0), doc="zooplankton growth per algae eaten")
    d1 = m.param("d_zoo", LogUniform(0.005, 0.5), doc="zooplankton death rate")
    a2 = m.param("prey_fish", LogUniform(1e-3, 0.1), doc="predation rate per fish")
    h2 = m.param("half_zoo", LogUniform(2.0, 200.0), doc="zooplankton at half-maximal predation")
    e2 = m.param("eff_fish", LogUniform(0.05, 1.0), doc="fish growth per zooplankton eaten")
    d2 = m.param("d_fish", LogUniform(1e-3, 0.1), doc="fish death rate")
    inits = {s: m.param(f"{s}0", LogUniform(1.0, 500.0)) for s in ("algae", "zooplankton", "fish")}
    grazing = a1 * alg / (1 + alg / h1)
    predation = a2 * zoo / (1 + zoo / h2)
    m.flow(None, alg, r * alg, name="algal_growth")
    m.flow(alg, None, r * alg * alg / k, name="algal_crowding")
    m.flow(alg, None, grazing * zoo, name="grazing")
    m.flow(None, zoo, e1 * grazing * zoo, name="zoo_growth")
    m.flow(zoo, None, d1 * zoo, name="zoo_deaths")
    m.flow(zoo, None, predation * fish, name="predation")
    m.flow(None, fish, e2 * predation * fish, name="fish_growth")
    m.flow(fish, None, d2 * fish, name="fish_deaths")
    m.init(**inits)
    states = {"algae": alg, "zooplankton": zoo, "fish": fish}
    for name in observed:
        m.observe(name, states[name],
                  noise=LogNormalNoise(m.param(f"sd_{name}", LogUniform(0.01, 1.0))))
    return m


def _plankton_linear(observed: tuple[str, ...]) -> Model:
    """The wrong structure: linear (type I) grazing and predation, no saturation."""
    m = Model("food chain without saturation", time_unit="day")
    alg, zoo, fish = m.states("algae zooplankton fish")
    r = m.param("r_algae", LogUniform(0.01, 5.0))
    k = m.param("k_algae", LogUniform(1.0, 1e4))
    a1 = m.param("graze", LogUniform(1e-5, 1.0))
    e1 = m.param("eff_zoo", LogUniform(1e-3, 1.0))
    d1 = m.param("d_zoo", LogUniform(1e-3, 1.0))
    a2 = m.param("prey_fish", LogUniform(1e-5, 1.0))
    e2 = m.param("eff_fish", LogUniform(1e-3, 1.0))
    d2 = m.param("d_fish", LogUniform(1e-4, 1.0))
    inits = {s: m.param(f"{s}0", LogUniform(0.1, 1e4)) for s in ("algae", "zooplankton", "fish")}
    m.flow(None, alg, r * alg, name="algal_growth")
    m.flow(alg, None, r * alg * alg / k, name="algal_crowding")
    m.flow(alg, None, a1 * alg * zoo, name="grazing")
    m.flow(None, zoo, e1 * a1 * alg * zoo, name="zoo_growth")
    m.flow(zoo, None, d1 * zoo, name="zoo_deaths")
    m.flow(zoo, None, a2 * zoo * fish, name="predation")
    m.flow(None, fish, e2 * a2 * zoo * fish, name="fish_growth")
    m.flow(fish, None, d2 * fish, name="fish_deaths")
    m.init(**inits)
    states = {"algae": alg, "zooplankton": zoo, "fish": fish}
    for name in observed:
        m.observe(name, states[name],
                  noise=LogNormalNoise(m.param(f"sd_{name}", LogUniform(0.01, 2.0))))
    return m


def plankton(full: bool) -> BenchTask:
    observed = ("algae", "zooplankton", "fish") if full else ("algae", "fish")
    # a limit cycle of about 230 days: the training years hold one and a half of them
    params = {"r_algae": 0.335, "k_algae": 93.0, "graze": 0.0141, "half_algae": 52.0,
              "eff_zoo": 0.29, "d_zoo": 0.049, "prey_fish": 0.0095, "half_zoo": 24.0,
              "eff_fish": 0.2, "d_fish": 0.0148, "algae0": 40.0, "zooplankton0": 10.0,
              "fish0": 5.0}
    noise = {"algae": 0.15, "zooplankton": 0.25, "fish": 0.2}
    params.update({f"sd_{c}": noise[c] for c in observed})
    seen = ("Every week algal biomass (from chlorophyll), zooplankton biomass (from net hauls) "
            "and fish biomass (from a hydroacoustic survey) were estimated, all in µg carbon "
            "per litre." if full else
            "Every week algal biomass (from chlorophyll) and fish biomass (from a "
            "hydroacoustic survey) were estimated in µg carbon per litre; zooplankton was not "
            "sampled.")
    return BenchTask(
        name=f"eco-foodchain-{'full' if full else 'partial'}",
        domain="ecology",
        difficulty="medium" if full else "hard",
        tags=("food-chain", "three-level", "holling-ii", "trophic-cascade", "biomass"),
        variant="full" if full else "partial",
        description=(
            "A large enclosure in a lake was stocked with a few planktivorous fish at the start "
            "of a two-year study. Algae grow towards the carrying capacity set by nutrients and "
            "light; zooplankton graze the algae, and the fish eat the zooplankton. Both "
            "grazers and fish feed at a rate that levels off when their food is plentiful. "
            "Zooplankton and fish grow in proportion to what they eat and die at a steady "
            "rate. " + seen),
        time_unit="day",
        times=np.arange(0.0, 729.0, 7.0),
        train_until=399.0,
        validate_until=483.0,
        observed=observed,
        hidden=() if full else ("zooplankton",),
        truth_model=_plankton(observed),
        truth_params=params,
        conditions=(),
        counterfactuals=(Counterfactual(
            "From day 490 on, fishing removes 1% of the fish (the top predators) every day.",
            (Transfer("fish", None, 0.01, 490.0),), 490.0),),
        recover={"prey_growth": "r_algae", "predation_rate": "prey_fish",
                 "predator_death_rate": "d_fish"},
        wrong_model=_plankton_linear(observed),
        noise_seed=404,
    )


# ------------------------------------------------- a fished stock with known effort
def fishing_effort(times: np.ndarray) -> np.ndarray:
    """Boats fishing, from the licensing records: a build-up, a collapse, a recovery plan."""
    return np.select([times < 10, times < 24], [10.0, 32.0], 14.0)


def _fishery(logistic: bool = True) -> Model:
    m = Model("surplus production with fishing effort", time_unit="year")
    (stock,) = m.states("stock")
    effort = m.control("effort", default=10.0, doc="boats fishing")
    r = m.param("r_stock", LogUniform(0.02, 3.0), doc="intrinsic growth rate", unit="1/year")
    q = m.param("catchability", LogUniform(1e-4, 0.1), doc="fraction caught per boat-year")
    b0 = m.param("stock0", LogUniform(10.0, 1e4))
    catch = q * effort * stock
    if logistic:
        k = m.param("k_stock", LogUniform(50.0, 1e4), doc="carrying capacity", unit="kt")
        m.flow(None, stock, r * stock, name="production")
        m.flow(stock, None, r * stock * stock / k, name="crowding")
    else:  # the wrong structure: unlimited (exponential) growth
        m.flow(None, stock, r * stock, name="production")
    m.flow(stock, None, catch, name="catch")
    m.init(stock=b0)
    m.observe("survey_index", stock,
              noise=LogNormalNoise(m.param("sd_survey", LogUniform(0.01, 1.0))))
    m.observe("catch_kt", catch, noise=LogNormalNoise(m.param("sd_catch", LogUniform(0.01, 1.0))))
    return m


def fishery() -> BenchTask:
    times = np.arange(0.0, 40.01, 0.5)
    return BenchTask(
        name="eco-fishery-full",
        domain="ecology",
        difficulty="medium",
        tags=("discovery", "inputs", "fisheries", "harvest"),
        variant="full",
        description=(
            "A demersal fish stock on an offshore bank. The stock's growth slows as it "
            "approaches what the bank can support, and the catch is proportional to the "
            "fishing effort and to the stock. The number of licensed boats fishing is known "
            "from the licensing records (it was raised, then cut under a recovery plan). A "
            "research survey estimates the stock (kilotonnes) twice a year, and landings "
            "(kilotonnes per year) are recorded at the same times."),
        time_unit="year",
        times=times,
        train_until=28.0,
        validate_until=33.0,
        observed=("survey_index", "catch_kt"),
        hidden=(),
        truth_model=_fishery(),
        truth_params={"r_stock": 0.4, "catchability": 0.01, "stock0": 900.0,
                      "k_stock": 1000.0, "sd_survey": 0.12, "sd_catch": 0.08},
        conditions=(),
        counterfactuals=(Counterfactual(
            "What if fishing effort had been cut to 5 boats from year 33 on?",
            (SetValue("effort", 5.0, 33.0),), 33.0),),
        recover={},
        wrong_model=_fishery(logistic=False),
        noise_seed=331,
        inputs=(TaskInput("effort", tuple(fishing_effort(times)), "previous",
                          "licensed boats fishing"),),
    )




# ------------------------------- two competing squirrels, the stronger one culled
def trapping_effort(times: np.ndarray) -> np.ndarray:
    """Trap-days per hectare per year laid against grey squirrels, from the project's
    records: none while the greys spread, a pilot cull, the full programme, a funding gap,
    then the programme resumed at a lower level (the last change is in the test window)."""
    return np.select([times < 6, times < 9, times < 14, times < 16, times < 20],
                     [0.0, 4.0, 10.0, 0.0, 10.0], 6.0)


def _squirrels(competing: bool = True) -> Model:
    m = Model("two competing species, one trapped", time_unit="year")
    red, grey = m.states("red grey")
    effort = m.control("trapping", default=0.0, doc="trap-days per hectare per year against "
                       "grey squirrels", unit="trap-days/ha/year")
    r_red = m.param("r_red", LogUniform(0.05, 3.0), doc="red squirrel growth rate",
                    unit="1/year")
    r_grey = m.param("r_grey", LogUniform(0.05, 3.0), doc="grey squirrel growth rate",
                     unit="1/year")
    k_red = m.param("k_red", LogUniform(0.1, 20.0), doc="red squirrels the woodland supports "
                    "alone", unit="1/ha")
    k_grey = m.param("k_grey", LogUniform(0.1, 50.0), doc="grey squirrels the woodland "
                     "supports alone", unit="1/ha")
    q = m.param("catchability", LogUniform(1e-3, 1.0), doc="fraction of greys removed per "
                "trap-day per hectare", unit="ha/trap-day")
    if competing:
        c_rg = m.param("c_red_grey", LogUniform(0.01, 10.0), doc="one grey's share of the "
                       "resources a red needs, in reds")
        c_gr = m.param("c_grey_red", LogUniform(0.01, 10.0), doc="one red's share of the "
                       "resources a grey needs, in greys")
        crowd_red = (red + c_rg * grey) / k_red
        crowd_grey = (grey + c_gr * red) / k_grey
    else:  # the wrong structure: each species limited by its own numbers only
        crowd_red, crowd_grey = red / k_red, grey / k_grey
    m.flow(None, red, r_red * red, name="red_births")
    m.flow(red, None, r_red * red * crowd_red, name="red_crowding")
    m.flow(None, grey, r_grey * grey, name="grey_births")
    m.flow(grey, None, r_grey * grey * crowd_grey, name="grey_crowding")
    m.flow(grey, None, q * effort * grey, name="trapping")
    m.init(red=m.param("red0", LogUniform(0.01, 20.0)),
           grey=m.param("grey0", LogUniform(0.001, 50.0)))
    m.observe("red_per_ha", red, unit="1/ha",
              noise=LogNormalNoise(m.param("sd_red", LogUniform(0.01, 1.0))))
    m.observe("grey_per_ha", grey, unit="1/ha",
              noise=LogNormalNoise(m.param("sd_grey", LogUniform(0.01, 1.0))))
    return m


def squirrels() -> BenchTask:
    """The held-out competition task: two species sharing one resource, the stronger
    competitor trapped at a known effort."""
    times = np.arange(0.0, 24.01, 0.25)
    return BenchTask(
        name="eco-squirrels-full",
        domain="ecology",
        difficulty="medium",
        tags=("discovery", "inputs", "competition", "culling", "invasive-species",
              "held-out"),
        variant="full",
        description=(
            "A mixed conifer and broadleaf forest that held only native red squirrels until "
            "grey squirrels arrived from a neighbouring estate. Both species eat the same "
            "tree seeds; each would level off at the numbers the forest can feed it alone, "
            "and each lowers the food left for the other, the greys far more so than the "
            "reds. From year 6 a conservation project trapped grey squirrels; traps take a "
            "roughly fixed fraction of the greys for each trap-day laid. The trapping effort "
            "(trap-days per hectare per year) is known from the project's records: none at "
            "first, a pilot, the full programme, a two-year funding gap from year 14, the "
            "full programme again and a reduced one from year 20. Reds are not trapped. "
            "Densities of both species (squirrels per hectare) were estimated every three "
            "months from camera-trap surveys, to within about 10%."),
        time_unit="year",
        times=times,
        train_until=16.0,
        validate_until=19.5,
        observed=("red_per_ha", "grey_per_ha"),
        hidden=(),
        truth_model=_squirrels(),
        truth_params={"r_red": 0.6, "r_grey": 1.0, "k_red": 1.2, "k_grey": 6.0,
                      "catchability": 0.1, "c_red_grey": 0.5, "c_grey_red": 1.5,
                      "red0": 1.1, "grey0": 0.08, "sd_red": 0.1, "sd_grey": 0.08},
        conditions=(),
        counterfactuals=(
            Counterfactual("What if the trapping had stopped for good at year 20?",
                           (SetValue("trapping", 0.0, 20.0),), 20.0),
            Counterfactual("What if the trapping effort had been doubled from year 20 on?",
                           (Scale("trapping", 2.0, 20.0),), 20.0),
        ),
        recover={},
        wrong_model=_squirrels(competing=False),
        noise_seed=947,
        inputs=(TaskInput("trapping", tuple(trapping_effort(times)), "previous",
                          "trap-days per hectare per year laid against grey squirrels"),),
    )


def tasks() -> list[BenchTask]:
    return [voles(True), voles(False), plankton(True), plankton(False), fishery(),
            squirrels()]
