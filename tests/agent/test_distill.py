"""Symbolic distillation (agent/distill): misfit -> hybrid -> learned rate -> closed form.

Must show (``slow``, all four systems of ``benchmarks/distillation.py``): data from scipy's
``solve_ivp`` of systems with a known saturating term (Michaelis-Menten elimination,
Holling type II predation, Hill repression with n = 2, Monod growth), a misspecified
mechanistic model, its hybrid (``hybrid_of``) fitted with the networks trained, the
distilled child (``Distiller.refine``) run in the sandbox and fitted: the distilled form is
the true one with constants within 10% of the truth, and its counterfactual error under an
intervention outside the training range is at most the hybrid's. Measured figures are in
``MEASURED`` (and ``python benchmarks/distillation.py --json`` prints them afresh).

Fast (default run): the closed-form step on synthetic learned curves, ``term_expr`` against
``Term.evaluate``, ``hybrid_of`` and coupled rates, the misfit rule, and the whole
``Distiller`` path on a Michaelis-Menten hybrid whose network is set to a known factor by
plain supervised training (no ODE fit of the network), including the run folder's
``distill.json``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.core import Candidate, Task
from agent.discovery.terms import KINDS, Term
from agent.distill.closed_form import fit_closed_form, term_expr
from agent.distill.distiller import Distiller, learned_rates
from agent.distill.sites import (
    MisfitRule,
    SeriesMisfit,
    coupled_sites,
    hybrid_of,
    misfit,
    runs_z,
    suspect_sites,
)
from agent.evaluate import Node
from agent.store import RunStore
from benchmarks.distillation import SYSTEMS, TOLERANCE, run_system
from mechanistic.fit import FitConfig, fit_model
from mechanistic.serialize import model_from_json
from mechanistic.simulate import RK4
from sandbox.runner import run_model_module


# ------------------------------------------------------------- the closed-form step
def test_term_expr_matches_term_evaluate() -> None:
    env = {"x": np.array([0.3, 2.0, 7.5]), "y": np.array([1.5, 0.2, 4.0])}
    terms = [Term("constant", ()), Term("linear", ("x",)), Term("square", ("x",)),
             Term("product", ("x", "y")), Term("saturating", ("x",), K=2.5),
             Term("saturating_product", ("x", "y"), K=0.7),
             Term("hill_activation", ("x",), K=3.0, n=2.0),
             Term("hill_activation", ("x", "y"), K=1.0, n=1.5),
             Term("hill_repression", ("x",), K=4.0, n=2.5),
             Term("hill_repression", ("x", "y"), K=0.5, n=3.0)]
    assert {t.kind for t in terms} == set(KINDS)
    for term in terms:
        expr = term_expr(term)
        got = [float(expr.subs({sp.Symbol("x"): x, sp.Symbol("y"): y}))
               for x, y in zip(env["x"], env["y"], strict=True)]
        assert np.allclose(got, term.evaluate(env), rtol=1e-12), term.label


def _wiggle(n: int) -> np.ndarray:
    """A smooth 1% error, like a network's, so the regression is not on exact data."""
    return 1 + 0.01 * np.sin(np.linspace(0, 11, n))


def test_closed_form_recovers_saturations_from_learned_curves() -> None:
    n = 200
    C = 100 * np.exp(-np.linspace(0, 5, n))
    mm = fit_closed_form({"C": C}, 5 * C / (10 + C) * _wiggle(n), ["C"], vanish=["C"])
    assert [(t.kind, t.variables) for t in mm[0].terms] == [("saturating", ("C",))]
    assert mm[0].coefficients[0] == pytest.approx(5.0, rel=0.02)
    assert math.isclose(mm[0].terms[0].K, 10.0, rel_tol=0.03)

    s = np.linspace(0, 25, n)
    H, P = 40 + 25 * np.sin(s), 20 + 8 * np.cos(0.8 * s)
    holling = fit_closed_form({"H": H, "P": P}, 2 * H * P / (40 + H) * _wiggle(n),
                              ["H", "P"], vanish=["H"])
    assert [(t.kind, t.variables) for t in holling[0].terms] == [
        ("saturating_product", ("H", "P"))]
    assert holling[0].coefficients[0] == pytest.approx(2.0, rel=0.03)
    assert math.isclose(holling[0].terms[0].K, 40.0, rel_tol=0.05)

    p = np.linspace(0, 30, n)
    hill = fit_closed_form({"p": p}, 10 / (1 + (p / 10) ** 2) * _wiggle(n), ["p"])
    term = hill[0].terms[0]
    assert (term.kind, term.variables) == ("hill_repression", ("p",))
    assert math.isclose(term.K, 10.0, rel_tol=0.03)
    assert math.isclose(term.n, 2.0, rel_tol=0.05)
    assert hill[0].r2 > 0.999


def test_parsimony_prefers_mass_action_when_saturation_is_out_of_range() -> None:
    """K far above anything observed: the curve is linear, and so is the answer."""
    x = np.linspace(0.1, 5, 150)
    forms = fit_closed_form({"x": x}, 3 * x / (500 + x), ["x"], vanish=["x"])
    assert [t.kind for t in forms[0].terms] == ["linear"]


# ------------------------------------------------------------------- sites, misfit
def test_hybrid_of_puts_one_factor_on_the_rate_and_its_coupled_rates(sandbox) -> None:
    model = SYSTEMS["holling-ii"].misspecified()
    predation = next(s for s in _sites(model) if s.key == "predation")
    assert {s.key for s, _ in coupled_sites(model, predation)} == {"predator_births"}
    hybrid = hybrid_of(model, "predation")
    (g,) = hybrid.neural_
    assert [str(x) for x in hybrid.neural_[g].inputs] == ["H", "P"]
    rates = {f.name: f.rate for f in hybrid.flows}
    H, P, beta, delta = sp.symbols("H P beta delta")
    call = sp.Function(g)(H, P)
    assert sp.simplify(rates["predation"] - beta * H * P * sp.exp(call)) == 0
    assert sp.simplify(rates["predator_births"] - delta * H * P * sp.exp(call)) == 0
    assert rates["prey_births"] == model.flows[0].rate
    with pytest.raises(ValueError, match="already has a neural term"):
        hybrid_of(hybrid, "predation")
    with pytest.raises(ValueError, match="no flow or rate term"):
        hybrid_of(model, "nonsense")
    from mechanistic.to_source import model_to_source

    run = run_model_module(model_to_source(hybrid), sandbox=sandbox)
    assert run.ok and model_from_json(run.model_json).to_json() == hybrid.to_json()
    # a rate that reads no state learns from every state
    gene = hybrid_of(_unregulated(), "transcription")
    assert [str(x) for x in next(iter(gene.neural_.values())).inputs] == ["m", "p"]


def test_a_reused_coefficient_keeps_the_coupled_rates_in_proportion() -> None:
    """Predation ``beta*H*P`` distilled to ``beta*H*P/(K_H + H)`` with a new beta: the
    predator births ``delta*H*P`` (coupled, ``rho = delta/beta``) must keep the size the
    hybrid gave them, so delta is rescaled with beta (else the refit starts far off)."""
    from agent.distill.distiller import _groups, _keep_ratios

    hybrid = hybrid_of(SYSTEMS["holling-ii"].misspecified(), "predation")
    ((primary, members),) = _groups(hybrid)
    assert primary.key == "predation" and [m.key for m, _ in members] == ["predator_births"]
    fitted = {"beta": 0.035, "delta": 0.0092}
    kept = _keep_ratios(hybrid, fitted, members, "beta", 2.1)
    assert kept is not None and set(kept) == {"delta"}
    assert math.isclose(kept["delta"] / 2.1, fitted["delta"] / fitted["beta"], rel_tol=1e-9)


def _sites(model):
    from agent.distill.sites import rate_sites

    return rate_sites(model)


def _unregulated():
    from mechanistic import Gaussian, LogUniform, Model

    m = Model("unregulated")
    mrna, p = m.states("m p")
    a, d, b, g, s = (m.param(n, LogUniform(0.01, 10)) for n in ("a", "d", "b", "g", "s"))
    m.flow(None, mrna, a, name="transcription")
    m.flow(mrna, None, d * mrna, name="mrna_decay")
    m.flow(None, p, b * mrna, name="translation")
    m.flow(p, None, g * p, name="protein_decay")
    m.init(m=0, p=0)
    m.observe("m", mrna, noise=Gaussian(s))
    return m


def test_runs_test_and_misfit_rule() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(size=60)
    assert runs_z(noise) > -2.0
    blocked = np.concatenate([np.full(20, 1.0), np.full(20, -1.0), np.full(20, 1.0)]) + \
        0.01 * noise
    assert runs_z(blocked) < -5
    assert runs_z(np.ones(10)) is None
    fit = {"validation_residuals": {
        "a": {"nrmse": 0.4, "rmse": 1.0, "bias": 0.1},   # large but unbiased: noise
        "b": {"nrmse": 0.2, "rmse": 1.0, "bias": -0.7},  # drifts to one side
        "c": {"nrmse": 0.05, "rmse": 1.0, "bias": 0.0}}}
    verdict = misfit(fit, {"a": noise, "c": blocked})
    assert not verdict["a"].systematic and verdict["b"].systematic
    assert verdict["c"].systematic  # long runs, whatever the size
    with pytest.raises(ValueError):
        MisfitRule(runs_z=1.0)
    with pytest.raises(ValueError):
        MisfitRule(bias_ratio=0.0)


def test_suspect_sites_rank_the_rates_that_move_misfit_series() -> None:
    model = SYSTEMS["holling-ii"].misspecified()
    both = {n: SeriesMisfit(n, 0.3, 0.6, -4.0, True) for n in ("H", "P")}
    ranked = [s.key for s in suspect_sites(model, both)]
    assert ranked[0] == "predation"            # moves both misfit series
    assert "predator_births" not in ranked     # coupled to predation: one event, one option
    only_p = {"H": SeriesMisfit("H", 0.05, 0.0, -0.5, False),
              "P": SeriesMisfit("P", 0.3, 0.6, -4.0, True)}
    # a tie (both move P only), broken for the rate with a single state factor
    assert [s.key for s in suspect_sites(model, only_p)] == ["predator_deaths", "predation"]
    assert suspect_sites(model, {"H": SeriesMisfit("H", 0.05, 0.0, -0.5, False)}) == []


# --------------------------------------------------------------- the whole Distiller
def _supervised_factor(fit, vmax: float, km: float, c0: float) -> None:
    """Make the fitted hybrid what a full ODE fit would learn, in a second instead of a
    minute: the initial amount at the truth's and the network (trained in place) such that
    ``k*C*exp(g(C))`` is Michaelis-Menten over the range the trajectory covers."""
    fit.params["C0"] = c0
    (net,) = fit.compiled.neural.values()
    k = fit.params["k"]
    C = torch.linspace(0.0, 1.1 * c0, 300, dtype=torch.float64)[:, None]
    target = torch.log(torch.as_tensor(vmax / (k * (km + C[:, 0]))))
    net.set_scales([50.0], 1.0)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    torch.manual_seed(0)
    for _ in range(1500):
        opt.zero_grad()
        loss = ((net(C) - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 1e-4


def test_distiller_proposes_hybrids_then_distils_them(sandbox, tmp_path) -> None:
    system = SYSTEMS["michaelis-menten"]
    data = system.data()
    task = Task("a drug is eliminated from plasma", data, train_until=system.t_end)
    quick = FitConfig(starts=3, adam_steps=150, lbfgs_steps=30, polish_starts=1,
                      neural_steps=0, solver=RK4(dt=0.5))
    model = system.misspecified()
    fit = fit_model(model, data, quick, train_until=task.train_until)
    parent = Node(Candidate("pk-linear", "...", "linear elimination"), "ok", model=model,
                  fit_result=fit, fit=fit.to_dict())
    distiller = Distiller()
    assert any(m.systematic for m in distiller.misfits(task, parent).values())
    hybrids = distiller.refine(task, parent, 2)
    assert len(hybrids) == 1  # one flow to blame
    child = hybrids[0]
    assert child.id.startswith("dst-") and child.id == distiller.refine(task, parent, 2)[0].id
    assert child.structure == "linear elimination + neural on elimination"
    assert (child.origin, child.parent, child.proposer) == ("refine", "pk-linear", "distill")
    run = run_model_module(child.source, sandbox=sandbox)
    assert run.ok, run.error
    hybrid = model_from_json(run.model_json)
    assert list(hybrid.neural_) == ["g_elimination"]

    fit_h = fit_model(hybrid, data, quick, train_until=task.train_until)
    _supervised_factor(fit_h, vmax=5.0, km=10.0, c0=100.0)
    node = Node(child, "ok", model=hybrid, fit_result=fit_h, fit=fit_h.to_dict())
    env, rates = learned_rates(hybrid, fit_h, np.linspace(0, system.t_end, 50))
    assert np.allclose(rates["elimination"], 5 * env["C"] / (10 + env["C"]), rtol=0.02,
                       atol=1e-3)
    (distilled,) = distiller.refine(task, node, 3)
    d = distilled.details
    assert d["distilled_from"] == child.id and d["rate"] == "elimination"
    assert d["inputs"] == ["C"] and len(d["learned"]) == len(d["distilled"]) <= 200
    assert len(d["grid"]["C"]) == len(d["learned"])
    assert [t["kind"] for t in d["terms"]] == ["saturating"]
    assert d["terms"][0]["K"] == pytest.approx(10.0, rel=0.05)
    assert d["terms"][0]["coefficient"] == pytest.approx(5.0, rel=0.05)
    assert d["r2"] > 0.999 and "R^2" in distilled.note
    assert d["formula"] == "C*k/(C + K_C)"
    assert "neural" not in distilled.structure and "distilled" in distilled.structure
    run = run_model_module(distilled.source, sandbox=sandbox)
    assert run.ok, run.error
    model_d = model_from_json(run.model_json)
    assert not model_d.neural_
    # new priors are centred on the values found (bounds rounded to 4 digits)
    assert model_d.params_["K_C"].prior.typical == pytest.approx(d["terms"][0]["K"], rel=1e-3)
    assert model_d.params_["k"].prior.typical == pytest.approx(d["params"]["k"], rel=1e-3)
    assert model_d.params_["s"].prior == system.misspecified().params_["s"].prior  # noise
    # the run folder keeps what the review shows
    store = RunStore(tmp_path / "run")
    store.save_node(Node(distilled, "ok", model_json=run.model_json))
    saved = json.loads((store.candidate_dir(distilled.id) / "distill.json").read_text())
    assert saved["expression"] == d["expression"] and saved["r2"] == d["r2"]
    meta = json.loads((store.candidate_dir(distilled.id) / "node.json").read_text())
    assert "details" not in meta["candidate"]
    # nothing to do for a node without a fit, or a hybrid whose fit is gone
    assert distiller.refine(task, Node(child, "ok", model=hybrid), 1) == []


# ------------------------------------------------------------ must show (slow)
# Measured with `python benchmarks/distillation.py --json` (HYBRID_FIT, MECHANISTIC_FIT,
# data seed 0), two shared cores at load 0.9-2.0, 464 s for the four. Relative errors of
# the distilled constants, from the regression on the learned rate / after refitting the
# distilled model; counterfactual error (RMSE / std of the true trajectory) hybrid ->
# distilled:
#
#   michaelis-menten  C/(K+C)        Vmax 1.3% / 2.2%, Km 5.6% / 5.0%          0.213 -> 0.015
#   holling-ii        H*P/(K+H)      1/h  5.5% / 0.6%, 1/(a h) 9.3% / 2.2%     0.205 -> 0.014
#   hill-repression   1/(1+(p/K)^n)  a 2.4% / 2.5%, K 5.7% / 3.3%, n 9.8% / 1.3%  0.231 -> 0.022
#   monod             S*X/(K+S)      mu 4.0% / 2.1%, Ks 12.9% / 7.7%           0.527 -> 0.015
#
# The form is right in all four. The regression constants are within 10% in three (Monod's
# Ks from the learned rate is 12.9% off: batch growth crosses S ~ Ks in a few hours, and
# that is where the network's rate is least accurate), so Monod's are reported, not
# asserted; the refitted distilled model's constants are within 10% in all four.
REGRESSION_MISSES = {"monod": "Ks from the learned rate 12.9% off (refit: 7.7%)"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_distillation_recovers_the_true_saturation(name: str, sandbox) -> None:
    result = run_system(SYSTEMS[name], sandbox)
    print(json.dumps({k: result.get(k) for k in (
        "form_correct", "constant_errors", "refit_constant_errors", "cf_error", "seconds")},
        default=str))
    assert result["form_correct"], result.get("distilled")
    refit = result["refit_constant_errors"]
    assert refit and all(e is not None and e <= TOLERANCE for e in refit.values()), refit
    if name not in REGRESSION_MISSES:
        errors = result["constant_errors"]
        assert all(e is not None and e <= TOLERANCE for e in errors.values()), errors
    cf = result["cf_error"]
    assert math.isfinite(cf["distilled"]) and cf["distilled"] <= cf["hybrid"], cf
