"""The offline library proposer: motifs load, pass checks and simulate; selection,
refinements, repairs and counterfactual translation do what they say."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agent.core import Candidate, Critique, Feedback, Proposer, Task, Usage
from agent.library import MOTIFS, LibraryProposer, motif, spec_from_source
from agent.library.motifs import assign_columns
from agent.library.profile import DataProfile
from agent.library.refine import (
    add_delay_chain,
    add_neural,
    add_peripheral,
    add_waning,
    insert_stage,
    refinements,
    saturate,
)
from agent.library.select import rank_motifs, select_motifs
from agent.library.spec import ModelSpec
from mechanistic import Model, run_checks
from mechanistic.checks import errors
from mechanistic.data import ObservedData, load_csv
from mechanistic.interventions import Dose, Scale, SetValue, Transfer
from mechanistic.simulate import compile_model

_UNITS = {"epidemiology": "day", "ecology": "year", "pharmacology": "hour",
          "physiology": "minute", "oncology": "day"}
_DESCRIPTIONS = {
    "epidemiology": "an influenza outbreak in a town of 20,000 people; daily reported cases",
    "ecology": "predator and prey populations counted every year",
    "pharmacology": "plasma concentration after a 100 mg dose",
    "physiology": "glucose and insulin during an IVGTT",
    "oncology": "tumour volume in mice",
}


def task_for(m, description: str | None = None) -> Task:
    """A small task whose columns are the motif's slot names, with plausible values."""
    t = np.arange(0.0, 30.0)
    values = {}
    for i, slot in enumerate(m.slots):
        if m.domain == "epidemiology":
            values[slot.key] = np.round(5 * np.exp(0.1 * t) + i)
        else:
            values[slot.key] = 10.0 * (i + 1) * (1.5 + np.sin(0.3 * t + i))
    return Task(description or _DESCRIPTIONS[m.domain], ObservedData(t, values), 20.0,
                time_unit=_UNITS[m.domain])


def load(source: str) -> Model:
    """Exec our own rendered source in-process (trusted library code, tests only)."""
    namespace: dict = {}
    exec(compile(source, "<library>", "exec"), namespace)
    models = [v for v in namespace.values() if isinstance(v, Model)]
    assert len(models) == 1
    return models[0]


def typical_params(model: Model) -> dict[str, torch.Tensor]:
    return {n: torch.tensor([p.prior.typical], dtype=torch.float64)
            for n, p in model.params_.items()}


def assert_sound(source: str) -> Model:
    model = load(source)
    assert not errors(run_checks(model)), [e.message for e in errors(run_checks(model))]
    sim = compile_model(model).simulate(typical_params(model), np.linspace(0, 20, 21))
    assert bool(sim.ok.all())
    assert torch.isfinite(sim.states).all() and torch.isfinite(sim.observables).all()
    assert (sim.states >= -1e-6).all()
    return model


def spec_of(name: str, description: str | None = None) -> tuple[ModelSpec, Task]:
    m = motif(name)
    task = task_for(m, description)
    profile = DataProfile.from_task(task)
    return m.build(profile, assign_columns(m, profile)), task


# ------------------------------------------------------------------------- motifs
@pytest.mark.parametrize("m", MOTIFS, ids=lambda m: m.name)
def test_every_motif_loads_passes_checks_and_simulates(m) -> None:
    task = task_for(m)
    profile = DataProfile.from_task(task)
    cols = assign_columns(m, profile)
    assert cols is not None
    spec = m.build(profile, cols)
    source = spec.render()
    assert "import" in source and all(line.startswith("from mechanistic import")
                                      for line in source.splitlines() if "import" in line)
    model = assert_sound(source)
    assert set(model.observable_names) == set(task.data.columns)
    assert spec.role_map, "every motif declares roles"
    for role, name in spec.role_map.items():
        assert name in {*model.state_names, *model.param_names, *model.control_names,
                        *model.constants_, *(f.name for f in model.flows)}, role
    assert spec_from_source(source) == spec


def test_motif_list_covers_the_five_domains() -> None:
    names = {m.name for m in MOTIFS}
    assert {"SIR", "SEIR", "SIRS", "logistic", "Lotka-Volterra", "Rosenzweig-MacArthur",
            "food-chain", "pk-1cpt", "pk-2cpt", "pk-3cpt", "pk-oral", "pk-michaelis-menten",
            "glucose-insulin", "tumour-exponential", "tumour-logistic", "tumour-gompertz",
            "tumour-drug", "tumour-radiation"} <= names


def test_noise_follows_the_data_kind() -> None:
    spec, _ = spec_of("SEIR")
    assert spec.observes[0].noise.startswith("NegBinomial")
    spec, _ = spec_of("Lotka-Volterra")
    assert all(o.noise.startswith("LogNormalNoise") for o in spec.observes)
    t = np.arange(10.0)
    task = Task("a drug level", ObservedData(t, {"conc": np.sin(t)}), 8.0)
    m = motif("pk-1cpt")
    prof = DataProfile.from_task(task)
    assert m.build(prof, assign_columns(m, prof)).observes[0].noise.startswith("Gaussian")


def test_population_and_dose_come_from_the_description() -> None:
    spec, _ = spec_of("SIR", "measles in a school of 1,200 pupils")
    assert any(c.name == "N_pop" and c.value == 1200 for c in spec.constants)
    spec, _ = spec_of("pk-oral", "a 250 mg tablet")
    assert any(c.name == "dose" and c.value == 250 for c in spec.constants)
    assert "gut" in spec.state_names


def test_reporting_delay_from_the_description() -> None:
    spec, _ = spec_of("SEIR", "flu outbreak; cases are reported with a delay")
    assert "reported_flow" in spec.role_map
    assert_sound(spec.render())


def test_column_named_like_a_parameter_is_kept() -> None:
    t = np.arange(20.0)
    task = Task("an epidemic", ObservedData(t, {"beta": np.round(3 * np.exp(0.1 * t))}), 15.0)
    prof = DataProfile.from_task(task)
    m = motif("SIR")
    spec = m.build(prof, assign_columns(m, prof))
    model = assert_sound(spec.render())
    assert model.observable_names == ["beta"]
    assert spec.role_map["transmission_rate"] != "beta"


# ---------------------------------------------------------------------- selection
def test_epidemic_with_cases_selects_the_seir_family() -> None:
    t = np.arange(60.0)
    task = Task("An influenza epidemic in a boarding school; reported cases per day",
                ObservedData(t, {"cases": np.round(3 * np.exp(0.08 * t))}), 40, time_unit="day")
    chosen = [c.motif.name for c in select_motifs(DataProfile.from_task(task), 3)]
    assert set(chosen) == {"SIR", "SEIR", "SIRS"}


def test_hare_lynx_selects_predator_prey() -> None:
    data = load_csv("examples/data/hare_lynx.csv")
    task = Task("Hudson's Bay Company pelt records of snowshoe hares and lynx", data, 1890)
    ranked = rank_motifs(DataProfile.from_task(task))
    assert ranked[0].motif.name in ("Lotka-Volterra", "Rosenzweig-MacArthur")
    assert ranked[0].columns["prey"].name == "Hare"
    assert ranked[0].columns["predator"].name == "Lynx"
    proposals = LibraryProposer().propose(task, 3)
    assert len({c.structure for c in proposals}) == 3
    model = assert_sound(proposals[0].source)
    assert model.observable_names == ["Hare", "Lynx"] and model.time_unit == "year"


def test_concentration_selects_pk() -> None:
    t = np.linspace(0.5, 24, 16)
    task = Task("plasma concentration after an oral dose", ObservedData(
        t, {"conc": 5 * (np.exp(-0.1 * t) - np.exp(-1.0 * t))}), 20, time_unit="hour")
    chosen = select_motifs(DataProfile.from_task(task), 4)
    assert all(c.motif.domain == "pharmacology" for c in chosen)
    assert chosen[0].motif.name == "pk-oral"


# --------------------------------------------------------------------- refinements
def test_insert_stage_turns_sir_into_an_seir() -> None:
    spec, _ = spec_of("SIR")
    new = insert_stage(spec, "infection")
    assert new is not None and len(new.states) == len(spec.states) + 1
    assert new.role_map["exposed"] == "E"
    assert "E" in next(let.expr for let in new.lets if let.name == "N")
    model = assert_sound(new.render())
    assert "E" in model.state_names


def test_delay_chain_adds_states_and_keeps_observable() -> None:
    spec, _ = spec_of("SEIR")
    new = add_delay_chain(spec, 3)
    assert new is not None and len(new.states) == len(spec.states) + 3
    assert new.observes[0].quantity == new.role_map["reported_flow"]
    assert add_delay_chain(new, 2) is None  # one delay is enough
    assert_sound(new.render())


def test_peripheral_compartment() -> None:
    spec, _ = spec_of("pk-1cpt")
    new = add_peripheral(spec)
    assert new is not None and len(new.states) == 2
    assert_sound(new.render())


def test_saturation_makes_predation_holling_type_ii() -> None:
    spec, _ = spec_of("Lotka-Volterra")
    new = saturate(spec, "prey")
    assert new is not None
    assert all(new.flow(n).saturation == "K_prey" for n in ("predation", "predator_births"))
    assert "/ (1 + prey / K_prey)" in new.render()
    assert saturate(new, "prey") is None
    assert_sound(new.render())


def test_waning_adds_r_to_s() -> None:
    spec, _ = spec_of("SEIR")
    new = add_waning(spec)
    assert new is not None and any(f.source == "R" and f.target == "S" for f in new.flows)
    assert add_waning(new) is None
    assert_sound(new.render())


def test_neural_term_on_one_rate() -> None:
    spec, _ = spec_of("SIR")
    new = add_neural(spec, "infection")
    assert new is not None
    model = load(new.render())
    assert list(model.neural_) == ["g_infection"]
    assert not errors(run_checks(model))


def test_refine_offers_atomic_edits_that_all_pass_checks() -> None:
    proposer = LibraryProposer()
    for name in ("SIR", "Lotka-Volterra", "pk-oral", "glucose-insulin", "tumour-logistic"):
        spec, task = spec_of(name)
        cand = Candidate("c0", spec.render(), spec.structure, roles=spec.role_map)
        children = proposer.refine(task, cand, Critique("misses the peak"), 10)
        assert children, name
        for child in children:
            assert child.origin == "refine" and child.parent == "c0"
            assert child.source != cand.source
            assert not errors(run_checks(load(child.source))), (name, child.note)


def test_critique_words_order_refinements() -> None:
    spec, _ = spec_of("SIR")
    assert refinements(spec, "reports lag behind")[0].kind in ("delay", "hidden_compartment")
    assert refinements(spec, "a second wave rebound")[0].kind == "waning"


# ------------------------------------------------------------------------- repairs
def test_repair_nonnegativity_and_unused_parameter() -> None:
    spec, task = spec_of("SIR")
    bad = spec.replace_flow("recovery", spec.flow("recovery").__class__(
        "I", "R", "gamma", "recovery"))
    cand = Candidate("c1", bad.render(), bad.structure)
    checks = [c.to_dict() for c in run_checks(load(bad.render()))]
    fixed = LibraryProposer().repair(task, cand, Feedback("checks", "failed", checks=checks))
    assert fixed is not None and fixed.origin == "repair"
    assert not errors(run_checks(load(fixed.source)))
    feedback = Feedback("checks", "x", checks=[{"name": "parameters_used", "passed": False,
                                                "severity": "error", "message":
                                                "parameter rho is declared but never used"}])
    dropped = LibraryProposer().repair(task, Candidate("c2", spec.render(), "SIR"), feedback)
    assert dropped is not None and "rho" not in spec_from_source(dropped.source).names()


def test_repair_diverged_fit_narrows_priors_and_gives_up_otherwise() -> None:
    spec, task = spec_of("Lotka-Volterra")
    cand = Candidate("c1", spec.render(), spec.structure)
    fb = Feedback("fit", "fit failed: every start gave a non-finite likelihood (simulation "
                  "diverged)")
    fixed = LibraryProposer().repair(task, cand, fb)
    new = spec_from_source(fixed.source)
    a_old, a_new = spec.param("alpha").prior.args, new.param("alpha").prior.args
    assert math.log(a_new[1] / a_new[0]) == pytest.approx(0.5 * math.log(a_old[1] / a_old[0]))
    assert LibraryProposer().repair(task, cand, Feedback("fit", "validation error 0.4")) is None
    assert LibraryProposer().repair(task, Candidate("x", "print(1)", "?"), fb) is None


def test_repair_switches_lognormal_noise_on_zeros() -> None:
    spec, task = spec_of("tumour-gompertz")
    fb = Feedback("fit", "observable 'volume' has log-normal noise but the data hold 2 value(s)"
                  " <= 0; use Gaussian")
    fixed = LibraryProposer().repair(task, Candidate("c", spec.render(), "g"), fb)
    assert spec_from_source(fixed.source).observes[0].noise.startswith("Gaussian")
    assert not errors(run_checks(load(fixed.source)))


# ------------------------------------------------------------------ counterfactuals
def _ask(name: str, question: str):
    spec, task = spec_of(name)
    cand = Candidate("c", spec.render(), spec.structure, roles=spec.role_map)
    return LibraryProposer().intervention(task, cand, load(spec.render()).to_json(), question)


def test_counterfactual_vaccination() -> None:
    assert _ask("SEIR", "from day 70 on, 1% of susceptibles are vaccinated per day") == [
        Transfer("S", "R", 0.01, 70.0)]


def test_counterfactual_halve_transmission() -> None:
    assert _ask("SIR", "halve transmission from day 50") == [Scale("beta", 0.5, 50.0)]


def test_counterfactual_contacts_window() -> None:
    assert _ask("SEIR", "reduce contacts by 30% between day 40 and 80") == [
        SetValue("contact_reduction", 0.3, 40.0, 80.0)]


def test_counterfactual_dose() -> None:
    assert _ask("pk-oral", "a dose of 100 mg at t=12") == [Dose("gut", 100.0, (12.0,))]
    assert _ask("pk-1cpt", "give 50 mg at 0, 12 and 24 hours") == [
        Dose("central", 50.0, (0.0, 12.0, 24.0))]
    assert _ask("pk-1cpt", "inject 20 mg every 8 hours for 3 doses") == [
        Dose("central", 20.0, (0.0, 8.0, 16.0))]


def test_counterfactual_harvest_and_other_domains() -> None:
    assert _ask("Lotka-Volterra", "remove 20% of predators per year from year 5") == [
        SetValue("predator_harvest", 0.2, 5.0)]
    assert _ask("tumour-radiation", "irradiate at 2 Gy per day from day 10 to day 15") == [
        SetValue("radiation", 2.0, 10.0, 15.0)]
    assert _ask("glucose-insulin", "inject 10 units of insulin at t=20") == [
        Dose("Ins", 10.0, (20.0,))]
    assert _ask("pk-1cpt", "double the clearance") == [Scale("k_el", 2.0, 0.0)]


def test_counterfactual_vaccination_rate_unit_conversion() -> None:
    (item,) = _ask("SIR", "vaccinate 7% of susceptibles per week from day 10")
    assert item.rate == pytest.approx(0.01) and item.start == 10.0


def test_counterfactual_unmappable_raises() -> None:
    with pytest.raises(ValueError, match="vaccination"):
        _ask("Lotka-Volterra", "vaccinate 1% of susceptibles per day")
    with pytest.raises(ValueError, match="cannot map"):
        _ask("SIR", "what if the weather changes?")


# -------------------------------------------------------------------------- protocol
def test_library_proposer_implements_the_protocol() -> None:
    p = LibraryProposer(seed=0)
    assert isinstance(p, Proposer) and p.name == "library" and p.usage == Usage()
    _, task = spec_of("SEIR")
    first = p.propose(task, 3)
    assert [c.source for c in first] == [c.source for c in LibraryProposer(seed=0).propose(
        task, 3)]
    assert len({c.structure for c in first}) == 3
    assert all(c.proposer == "library" and c.roles for c in first)
    assert p.usage.llm_calls == 0


@pytest.mark.parametrize("m", MOTIFS, ids=lambda m: m.name)
def test_every_refinement_of_every_motif_passes_checks(m) -> None:
    task = task_for(m)
    profile = DataProfile.from_task(task)
    spec = m.build(profile, assign_columns(m, profile))
    options = refinements(spec)
    assert options, m.name
    for r in options:
        model = load(r.spec.render())
        assert not errors(run_checks(model)), (m.name, r.kind)
        assert len(r.spec.edits) == len(spec.edits) + 1


@pytest.mark.slow
def test_fit_recovers_a_parameter_of_the_motif_that_simulated_the_data() -> None:
    """Logistic growth simulated with r = 0.6/year, K = 120, 5% log-normal noise: the
    fitted library motif recovers r and K within 10%."""
    from mechanistic.fit import FitConfig, fit_model

    t = np.arange(0.0, 25.0)
    x = 120 / (1 + (120 / 8 - 1) * np.exp(-0.6 * t))
    y = x * np.exp(0.05 * np.random.default_rng(1).standard_normal(t.size))
    task = Task("a bacterial population grows to its carrying capacity",
                ObservedData(t, {"population": y}, "year"), 18.0, time_unit="year")
    (cand,) = [c for c in LibraryProposer().propose(task, 5) if c.structure == "logistic"]
    result = fit_model(load(cand.source), task.data,
                       FitConfig(starts=4, adam_steps=150, lbfgs_steps=30), train_until=18.0)
    assert result.params["r"] == pytest.approx(0.6, rel=0.1)
    assert result.params["K"] == pytest.approx(120.0, rel=0.1)


def test_an_edit_the_description_names_comes_first() -> None:
    """'the enzyme is saturable' puts saturation first although the critique hints at a
    delay; words inside other words ('plague' holds 'lag') do not count."""
    spec, _ = spec_of("SIR")
    told = "Infection saturates: a person can only meet so many others in a day."
    assert refinements(spec, "reports lag behind", told)[0].kind == "saturation"
    assert refinements(spec, "", "a plague in a village")[0].kind not in ("delay",)
    assert refinements(spec, "", "")[0].kind == refinements(spec)[0].kind
