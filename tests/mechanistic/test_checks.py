"""Structural checks: each check flags a model broken in exactly one way, and a correct
SEIR passes them all. The broken models are small and written out by hand, so the truth
(which check must fail, on what) is known independently of the checker."""

from __future__ import annotations

import json

import pytest
import sympy as sp

from mechanistic import (
    CheckResult,
    Gaussian,
    LogUniform,
    Min,
    Model,
    NegBinomial,
    Piecewise,
    Poisson,
    Uniform,
    run_checks,
)
from mechanistic import checks as checks_module
from mechanistic.checks import errors, warnings
from mechanistic.model import NeuralTerm, Observable, RateTerm


def seir(**extra: bool) -> Model:
    m = Model("SEIR", time_unit="day")
    S, E, I, R = m.states("S E I R")
    beta = m.param("beta", LogUniform(0.05, 3.0))
    sigma = m.param("sigma", Uniform(1 / 7, 1 / 2))
    gamma = m.param("gamma", Uniform(1 / 14, 1 / 3))
    rho = m.param("rho", Uniform(0.05, 1.0))
    phi = m.param("phi", LogUniform(1, 100))  # used only by the noise model
    i0 = m.param("i0", Uniform(1, 100))  # used only by an initial condition
    u = m.control("contact_reduction", default=0.0)
    N = S + E + I + R
    m.flow(S, E, (1 - u) * beta * S * I / N, name="infection")
    m.flow(E, I, sigma * E, name="onset")
    m.flow(I, R, gamma * I, name="recovery")
    m.init(S=1e6 - i0, E=0, I=i0, R=0)
    m.observe("cases", rho * sigma * E, noise=NegBinomial(phi))
    return m


def failures(model: Model, name: str) -> list[CheckResult]:
    return [r for r in run_checks(model) if r.name == name and not r.passed]


def only_failure(model: Model, name: str, severity: str) -> CheckResult:
    """The model fails exactly one result, of the named check, at the named severity."""
    failed = [r for r in run_checks(model) if not r.passed]
    assert len(failed) == 1, failed
    assert failed[0].name == name
    assert failed[0].severity == severity
    return failed[0]


# --------------------------------------------------------------------------- baseline
def test_correct_seir_passes_everything() -> None:
    results = run_checks(seir())
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]
    names = {r.name for r in results}
    assert {"state_dynamics", "parameters_used", "controls_used", "constants_used",
            "conservation", "non_negativity", "known_symbols", "initial_conditions",
            "neural_terms", "observables"} <= names


def test_results_are_frozen_json_ready_data() -> None:
    results = run_checks(seir())
    with pytest.raises(AttributeError):
        results[0].passed = False  # type: ignore[misc]
    text = json.dumps([r.to_dict() for r in results], allow_nan=False)
    assert set(json.loads(text)[0]) == {"name", "passed", "message", "severity"}
    assert all(r.severity in ("error", "warning") for r in results)


def test_a_crashing_check_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def check_boom(model: Model) -> list[CheckResult]:
        raise RuntimeError("kaput")

    monkeypatch.setattr(checks_module, "CHECKS", (check_boom, *checks_module.CHECKS))
    results = run_checks(seir())
    assert results[0] == CheckResult("boom", False, "check boom could not run: RuntimeError: "
                                                    "kaput", "warning")
    assert len(results) > 1


# ------------------------------------------------------------------------------ usage
def test_unused_parameter_is_an_error() -> None:
    m = seir()
    m.param("zeta", Uniform(0, 1))
    result = only_failure(m, "parameters_used", "error")
    assert "zeta" in result.message and "never used" in result.message


def test_unused_control_is_an_error_and_unused_constant_a_warning() -> None:
    m = seir()
    m.control("lockdown")
    assert "lockdown" in only_failure(m, "controls_used", "error").message
    m = seir()
    m.constant("population", 1e6)
    assert "population" in only_failure(m, "constants_used", "warning").message


# --------------------------------------------------------------------------- dynamics
def test_state_without_dynamics_is_an_error() -> None:
    m = seir()
    m.state("D")
    m.init(D=0)
    result = only_failure(m, "state_dynamics", "error")
    assert "state D has no dynamics" in result.message and "m.flow" in result.message


def test_flows_that_cancel_leave_no_dynamics() -> None:
    m = Model("back and forth")
    a, b = m.states("A B")
    k = m.param("k", Uniform(0, 1))
    m.flow(a, b, k * a, name="there")
    m.flow(b, a, k * a, name="back")
    m.init(A=1, B=0)
    m.observe("a", a)
    found = failures(m, "state_dynamics")
    assert {r.message.split()[1] for r in found} == {"A", "B"}
    # and k * a out of B does not vanish at B = 0
    assert any("'back'" in r.message for r in failures(m, "non_negativity"))


# ------------------------------------------------------------------------ conservation
def test_rate_term_breaking_conservation_is_a_warning() -> None:
    m = seir()
    mu = m.param("mu", Uniform(0, 0.1))
    m.rate(sp.Symbol("S"), -mu * sp.Symbol("S"))
    m.rate(sp.Symbol("I"), -mu * sp.Symbol("I"))
    result = only_failure(m, "conservation", "warning")
    assert "rate terms on S, I change the total" in result.message
    assert "m.flow" in result.message


def test_rate_terms_that_cancel_conserve_the_total() -> None:
    m = seir()
    k = m.param("k", Uniform(0, 0.1))
    S, R = sp.symbols("S R")
    m.rate(S, -k * S)
    m.rate(R, k * S)
    assert all(r.passed for r in run_checks(m))


def test_open_flows_are_declared_exchanges_not_violations() -> None:
    m = seir()
    mu = m.param("mu", Uniform(0, 0.1))
    S, R = sp.symbols("S R")
    m.flow(None, S, mu * 1e6, name="births")
    m.flow(R, None, mu * R, name="deaths")
    result = [r for r in run_checks(m) if r.name == "conservation"]
    assert len(result) == 1 and result[0].passed
    assert "births" in result[0].message and "deaths" in result[0].message


# ----------------------------------------------------------------------- non-negativity
def test_constant_outflow_does_not_vanish() -> None:
    m = seir()
    k = m.param("k", Uniform(0, 1))
    m.flow(sp.Symbol("S"), None, k, name="culling")
    result = only_failure(m, "non_negativity", "error")
    assert "flow 'culling' out of S has rate k" in result.message
    assert "does not vanish at S = 0" in result.message
    assert "proportional to S" in result.message


def test_negative_rate_term_that_does_not_vanish() -> None:
    m = seir()
    k = m.param("k", Uniform(0, 1))
    m.rate(sp.Symbol("S"), -k)
    m.rate(sp.Symbol("R"), k)  # keep the total conserved so only non-negativity fails
    result = only_failure(m, "non_negativity", "error")
    assert result.message.startswith("dS/dt has term -k which does not vanish at S = 0")
    assert "S can become negative" in result.message


def test_negative_term_depending_on_another_state_is_flagged() -> None:
    m = seir()
    k = m.param("k", Uniform(0, 1))
    S, I = sp.symbols("S I")
    m.rate(S, -k * I)
    m.rate(I, k * I)
    found = failures(m, "non_negativity")
    assert len(found) == 1 and "-I*k" in found[0].message and found[0].severity == "error"


def test_terms_that_vanish_pass() -> None:
    """Logistic growth, a saturating outflow, a Piecewise outflow, a Min outflow and an
    outflow scaled by a neural term all vanish at zero."""
    m = Model("vanishing")
    x, y = m.states("x y")
    r = m.param("r", LogUniform(0.1, 1))
    c = m.param("c", LogUniform(0.1, 1))
    K = m.constant("K", 100.0)
    g = m.neural("g", inputs=[y])
    m.rate(x, r * x * (1 - x / K))
    m.flow(x, y, c * x / (K + x), name="saturating")
    m.flow(y, None, Piecewise((c * y, m.t > 5), (0, True)), name="late_loss")
    m.flow(x, None, Min(x, c), name="capped")
    m.rate(y, -g * y)
    m.init(x=1, y=0)
    m.observe("x_obs", x, noise=Poisson())
    assert failures(m, "non_negativity") == []


def test_undecidable_terms_are_warnings() -> None:
    m = Model("opaque")
    x, y = m.states("x y")
    c = m.param("c", LogUniform(0.1, 1))
    g = m.neural("g", inputs=[x, y])
    m.flow(x, y, g, name="learned")  # g(0, y) may be anything
    m.rate(y, -Min(c, x))  # Min(c, x) is not zero at y = 0, but its sign is not obvious
    m.rate(x, c * sp.sin(m.t))  # positive coefficient, sign unknown
    m.init(x=1, y=1)
    m.observe("y_obs", y, noise=Gaussian(0.1))
    found = failures(m, "non_negativity")
    assert found and all(r.severity == "warning" for r in found)
    text = " ".join(r.message for r in found)
    assert "'learned'" in text and "sin(t)" in text


def test_negative_constant_in_rate_term_is_an_error_even_with_other_terms() -> None:
    m = Model("leaky")
    x = m.state("x")
    a = m.param("a", Uniform(0, 1))
    m.rate(x, a * x - 2)
    m.init(x=1)
    m.observe("x_obs", x)
    found = failures(m, "non_negativity")
    assert [r.severity for r in found] == ["error"]
    assert "dx/dt has term -2" in found[0].message


# ----------------------------------------------------------------- symbols and inits
def test_missing_initial_condition_is_a_warning() -> None:
    m = seir()
    del m.inits["R"]
    result = only_failure(m, "initial_conditions", "warning")
    assert "state R has no initial condition and starts at 0" in result.message
    assert "m.init(R=...)" in result.message


def test_hand_edited_expressions_with_unknown_symbols_are_caught() -> None:
    """The DSL refuses unknown symbols, so poke them in the way an edited document would."""
    m = seir()
    ghost = sp.Symbol("ghost")
    old = m.observables_["cases"]
    m.observables_["cases"] = Observable("cases", old.expr * ghost, old.noise)
    m.inits["E"] = sp.Symbol("S")  # a state in an initial condition
    found = failures(m, "known_symbols")
    text = " | ".join(r.message for r in found)
    assert "observable 'cases' uses ghost" in text
    assert "initial condition of E uses S" in text and "parameters and constants" in text


def test_call_of_undeclared_neural_term_is_caught() -> None:
    m = seir()
    m.rates.append(RateTerm("R", sp.Function("h")(sp.Symbol("I"))))
    found = failures(m, "known_symbols")
    assert any("calls h(), which is not a declared neural term" in r.message for r in found)


# --------------------------------------------------------------------------- neural
def lotka_volterra_neural(use: bool = True) -> Model:
    m = Model("LV + neural")
    x, y = m.states("x y")
    a = m.param("a", LogUniform(0.1, 2))
    c = m.param("c", LogUniform(0.1, 2))
    g = m.neural("g", inputs=[x, y], hidden=(8,))
    m.rate(x, a * x - (g * x if use else 0.02 * x * y))
    m.rate(y, 0.5 * (g if use else 0.02 * x) * y - c * y)
    m.init(x=30, y=4)
    m.observe("x_obs", x, noise=Gaussian(0.5))
    return m


def test_used_neural_term_passes() -> None:
    results = run_checks(lotka_volterra_neural())
    assert errors(results) == []
    # population dynamics written as rate terms: a conservation warning, nothing else
    assert [r.name for r in warnings(results)] == ["conservation"]


def test_unused_neural_term_is_an_error() -> None:
    result = [r for r in run_checks(lotka_volterra_neural(use=False)) if not r.passed
              and r.severity == "error"]
    assert len(result) == 1 and result[0].name == "neural_terms"
    assert "neural term g is declared but never used" in result[0].message


def test_neural_input_that_does_not_exist() -> None:
    m = lotka_volterra_neural()
    m.neural_["g"] = NeuralTerm("g", (sp.Symbol("z"),), (8,))
    found = failures(m, "neural_terms")
    assert any("neural term g reads z" in r.message for r in found)
    assert any("neural term 'g' input 0 uses z" in r.message
               for r in failures(m, "known_symbols"))


def test_model_without_observables_is_a_warning() -> None:
    m = Model("unobserved")
    x = m.state("x")
    k = m.param("k", Uniform(0, 1))
    m.flow(x, None, k * x)
    m.init(x=1)
    assert "no observables" in only_failure(m, "observables", "warning").message
