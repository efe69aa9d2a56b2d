"""The library agent on synthetic tasks it was not tuned on (issue 4, must show).

Ground truths (the benchmark suite's, used by ``benchmarks/synthetic_tasks.py``) are
written by hand with their own names, values and details (an SEIR epidemic in a town of
60,000 seen only as negative binomial daily reported cases with a reporting fraction,
S/E/I/R hidden; a repeated-dose oral PK study seen as log-normal plasma concentrations,
the gut depot hidden and the doses given as impulses). The agent sees a plain-language
description and the rows up to ``validate_until``; the test window after it is scored
here only.

Stated tolerances (``TOLERANCES``), chosen from these measurements (library proposer,
seed 0, SearchConfig(initial=3, max_nodes=5), FitConfig(starts=3, adam_steps=100,
lbfgs_steps=30); RMSE on the test window over the std of the observed test series):

* forecast: agent <= 1.5 x oracle (the true structure fitted on the same window with the
  same settings). Measured: SEIR 0.311 vs 0.260 (1.20x; the agent's best is
  "SIR + stage E before I", i.e. an SEIR reached by a refinement, after the SEIR motif
  landed in a poor optimum with three starts); PK 0.233 vs 0.261 (0.89x, "pk-oral").
* counterfactual ("from day 40 on, 2% of susceptible people are vaccinated each day";
  "give an extra dose of 250 mg at hour 54"), translated by the proposer onto the
  candidate's own names and simulated from its fit vs the truth under the same
  intervention: the intervened trajectory from the question's start within 0.15
  (RMSE / std of the true intervened series; measured SEIR 0.030, PK 0.060) and the
  effect (observed total without minus with the intervention) within 50% (measured SEIR
  33%: 4,376 reported cases averted vs 6,512 true, the oracle itself is 16% off; PK 0.2%).

Each task runs its search in a warm sandbox in about 1-3 minutes on two shared cores,
hence ``slow``; ``python benchmarks/library_agent.py --json`` prints the same figures.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.library import LibraryProposer, spec_from_source
from benchmarks.synthetic_tasks import (
    PK,
    SEARCH,
    TASKS,
    TOLERANCES,
    SyntheticTask,
    run_task,
)
from mechanistic import Model, run_checks
from mechanistic.checks import errors
from mechanistic.interventions import Intervention, interventions_from_json
from mechanistic.simulate import RK4, compile_model


def _load(source: str) -> Model:
    namespace: dict[str, object] = {}
    exec(compile(source, "<library>", "exec"), namespace)
    return next(v for v in namespace.values() if isinstance(v, Model))


def _check_translation(spec: SyntheticTask, items: list[Intervention],
                       roles: dict[str, str]) -> None:
    assert len(items) == 1, items
    got = items[0].to_dict()
    want = spec.expected
    assert got["kind"] == want["kind"], got
    for key in ("rate", "start", "amount"):
        if key in want:
            assert math.isclose(got[key], want[key]), (key, got)
    if "times" in want:
        assert tuple(got["times"]) == want["times"], got
    for role in want["roles"]:
        assert roles[role] in (got.get("source"), got.get("state"), got.get("target")), got


# ----------------------------------------------------------------- fast checks
@pytest.mark.parametrize("name", sorted(TASKS))
def test_library_reads_the_task_and_translates_the_question(name: str) -> None:
    """Without fitting: the leading proposal is of the right family, and the question
    maps onto its own names with the right kind and numbers."""
    spec = TASKS[name]
    task = spec.task()
    proposer = LibraryProposer(0)
    first = proposer.propose(task, SEARCH.initial)[0]
    assert first.structure == {"seir-town": "SEIR", "pk-oral-repeated": "pk-oral"}[name]
    model = _load(first.source)
    assert not errors(run_checks(model))
    items = proposer.intervention(task, first, model.to_json(), spec.question)
    _check_translation(spec, items, dict(first.roles))


def test_repeated_oral_regimen_in_the_description_is_modelled() -> None:
    """The PK motif reads '250 mg every 12 hours, 7 doses' and, with the true parameter
    values, reproduces the impulse-dosed ground truth. The later doses' depot terms are
    exact; RK4 steps across each dose onset conserve its mass (Heaviside(0) = 1/2) but
    move ``ka * h / 12`` of it one step early, visible only at the dose time itself and
    vanishing with the step."""
    proposer = LibraryProposer(0)
    candidate = proposer.propose(PK.task(), 1)[0]
    spec = spec_from_source(candidate.source)
    assert spec is not None and spec.flow("scheduled_absorption") is not None
    model = _load(candidate.source)
    truth = PK.truth
    params = {k: torch.tensor([v], dtype=torch.float64) for k, v in {
        "V": truth["vol"], "k_el": truth["k_out"], "ka": truth["k_abs"],
        "sd_conc_mg_per_l": truth["cv"]}.items()}
    t = PK.times
    true = PK.simulate_truth(t)
    dose_rows = np.isin(t, (12.0, 24.0, 36.0, 48.0, 60.0, 72.0))
    for dt, at_doses in ((0.5, 0.04), (0.05, 0.004)):  # 0.5 h: the fit's step (spacing/4)
        sim = compile_model(model).simulate(params, t, solver=RK4(dt=dt), t0=0.0)
        err = np.abs(sim.observable(PK.column)[0].numpy() - true) / np.max(true)
        assert err[~dose_rows].max() < 1e-3, (dt, err)
        assert err[dose_rows].max() < at_doses, (dt, err)


# ------------------------------------------------------------- the must-show
@pytest.fixture(scope="module")
def sandbox():
    from sandbox.auto import SandboxSettings, open_sandbox

    box = open_sandbox(SandboxSettings.from_env(warm=True))
    yield box
    box.close()


@pytest.fixture(scope="module")
def outcomes(sandbox):
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = run_task(TASKS[name], sandbox, SEARCH, seed=0)
            r = cache[name]
            if r.get("ok"):
                print(f"\n{name}: best {r['best']!r}; forecast {r['forecast']}; "
                      f"counterfactual {r['counterfactual']}; seconds {r['seconds']}")
        return cache[name]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TASKS))
def test_agent_forecast_is_within_a_factor_of_the_oracle(outcomes, name: str) -> None:
    r = outcomes(name)
    assert r["ok"], r
    f = r["forecast"]
    assert f["agent_vs_data"] <= TOLERANCES["forecast_factor"] * f["oracle_vs_data"], r


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TASKS))
def test_agent_answers_the_counterfactual(outcomes, name: str) -> None:
    r = outcomes(name)
    assert r["ok"], r
    spec = TASKS[name]
    c = r["counterfactual"]
    items = interventions_from_json(c["interventions"])
    _check_translation(spec, items, dict(r["best_roles"]))
    assert c["trajectory_error"] <= TOLERANCES["cf_trajectory"], c
    assert c["effect_relative_error"] <= TOLERANCES["cf_effect"], c
    assert np.sign(c["effect_agent"]) == np.sign(c["effect_true"]), c

