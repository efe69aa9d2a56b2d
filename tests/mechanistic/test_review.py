"""Review output: the printed equations are the model's equations.

The independent truth is a hand-written sympy expression for each right-hand side: the
plain-text equations are parsed back (in the test only) and compared with it, and the LaTeX
is checked for the pieces a reader must see.
"""

from __future__ import annotations

import json

import sympy as sp
from sympy.parsing.sympy_parser import parse_expr

from mechanistic import (
    CheckResult,
    Fixed,
    Gaussian,
    HalfNormal,
    LogNormalNoise,
    LogUniform,
    Model,
    NegBinomial,
    Normal,
    Poisson,
    PropAdd,
    Uniform,
    equations_latex,
    equations_text,
    model_from_json,
    model_to_json,
    parameter_table,
    render_parameter_table,
    render_review,
    review_dict,
)


def seir() -> Model:
    m = Model("SEIR with under-reporting", time_unit="day")
    S, E, I, R = m.states("S E I R")
    beta = m.param("beta", LogUniform(0.05, 3.0), doc="transmission rate", unit="1/day")
    sigma = m.param("sigma", Uniform(1 / 7, 1 / 2), unit="1/day")
    gamma = m.param("gamma", Fixed(0.25), doc="recovery rate", unit="1/day")
    rho = m.param("rho", Uniform(0.05, 1.0), doc="reporting fraction")
    phi = m.param("phi", HalfNormal(10.0), doc="dispersion")
    u = m.control("u", default=0.0, doc="contact reduction")
    N = S + E + I + R
    m.flow(S, E, (1 - u) * beta * S * I / N, name="infection")
    m.flow(E, I, sigma * E, name="onset")
    m.flow(I, R, gamma * I, name="recovery")
    m.init(S=999990, E=0, I=10, R=0)
    m.observe("cases", rho * sigma * E, noise=NegBinomial(phi), doc="daily reported cases")
    return m


def lotka_volterra_neural() -> Model:
    m = Model("LV + neural", time_unit="year")
    x, y = m.states("x y")
    a = m.param("a", Normal(1.0, 0.2))
    c = m.param("c", LogUniform(0.1, 2))
    s = m.param("s", HalfNormal(1.0))
    g = m.neural("g", inputs=[x], hidden=(16, 16), activation="tanh")
    m.rate(x, a * x - g * y)
    m.rate(y, g * y - c * y)
    m.init(x=30, y=4)
    m.observe("x_obs", x, noise=LogNormalNoise(s))
    m.observe("y_obs", y, noise=PropAdd(1, s))
    m.observe("y_count", y, noise=Poisson())
    m.observe("x_gauss", x, noise=Gaussian(2))
    return m


def _parse(text: str, model: Model) -> sp.Expr:
    local = {**model.symbols, **model.functions}
    return parse_expr(text, local_dict=local)


# --------------------------------------------------------------------------- equations
def test_text_equations_parse_back_to_the_hand_written_system() -> None:
    m = seir()
    S, E, I, R, beta, sigma, gamma, u = sp.symbols("S E I R beta sigma gamma u")
    infection = (1 - u) * beta * S * I / (S + E + I + R)
    truth = {"S": -infection, "E": infection - sigma * E, "I": sigma * E - gamma * I,
             "R": gamma * I}
    lines = equations_text(m).splitlines()
    for name, expected in truth.items():
        (line,) = [ln for ln in lines if ln.startswith(f"d{name}/dt = ")]
        assert sp.simplify(_parse(line.split(" = ", 1)[1], m) - expected) == 0
    assert "cases ~ NegBinomial(E*rho*sigma, phi)" in lines
    assert "S(0) = 999990" in lines and "I(0) = 10" in lines


def test_latex_has_derivatives_observations_and_initial_conditions() -> None:
    tex = equations_latex(seir())
    assert tex.startswith("\\begin{aligned}") and tex.endswith("\\end{aligned}")
    for state in "SEIR":
        assert rf"\frac{{d {state}}}{{d t}} &= " in tex
    assert r"\text{cases} &\sim \mathrm{NegBinomial}\left(E \rho \sigma, \phi\right)" in tex
    assert r"\beta" in tex and r"\gamma" in tex
    assert r"S(0) &= 999990" in tex and r"I(0) &= 10" in tex
    # one line per state, observable and initial condition
    assert tex.count(r" \\") == 4 + 1 + 4 - 1


def test_neural_terms_and_noise_models_render() -> None:
    m = lotka_volterra_neural()
    tex = equations_latex(m)
    assert r"g_{\mathrm{NN}}\left(x\right)" in tex
    assert r"\mathrm{MLP}_{16 \times 16,\ \mathrm{tanh}}\left(x\right)" in tex
    assert r"\log \text{x\_obs} &\sim \mathrm{Normal}" in tex
    assert r"\text{y\_count} &\sim \mathrm{Poisson}\left(y\right)" in tex
    text = equations_text(m)
    assert "g(x) [MLP 16x16 tanh]" in text
    assert "dx/dt = " in text and "g(x)" in text.splitlines()[0]
    assert "log(x_obs) ~ Normal(log(x), s)" in text
    assert "y_obs ~ Normal(y, sqrt(s**2*y**2 + 1))" in text
    assert "y_count ~ Poisson(y)" in text
    assert "x_gauss ~ Normal(x, 2)" in text


def test_review_of_a_round_tripped_model_is_the_same() -> None:
    m = lotka_volterra_neural()
    rebuilt = model_from_json(model_to_json(m))
    assert equations_latex(rebuilt) == equations_latex(m)
    assert review_dict(rebuilt) == review_dict(m)


# ------------------------------------------------------------------------- parameters
def test_parameter_table_rows() -> None:
    rows = {r["name"]: r for r in parameter_table(seir())}
    assert list(rows) == ["beta", "sigma", "gamma", "rho", "phi"]
    beta = rows["beta"]
    assert beta["prior"] == "LogUniform(low=0.05, high=3)"
    assert beta["prior_kind"] == "log_uniform" and beta["prior_args"] == {"low": 0.05,
                                                                          "high": 3.0}
    assert (beta["support"], beta["lower"], beta["upper"]) == ("[0.05, 3]", 0.05, 3.0)
    assert abs(beta["typical"] - (0.05 * 3.0) ** 0.5) < 1e-12
    assert (beta["unit"], beta["doc"], beta["fixed"]) == ("1/day", "transmission rate", False)
    assert rows["gamma"]["fixed"] is True and rows["gamma"]["support"] == "{0.25}"
    assert (rows["phi"]["support"], rows["phi"]["upper"]) == ("[0, inf)", None)
    real = {r["name"]: r for r in parameter_table(lotka_volterra_neural())}["a"]
    assert (real["support"], real["lower"], real["upper"]) == ("(-inf, inf)", None, None)


def test_rendered_parameter_table_is_aligned_text() -> None:
    text = render_parameter_table(seir())
    lines = text.splitlines()
    assert lines[0].split() == ["name", "prior", "support", "unit", "fixed", "doc"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 2 + 5
    (gamma,) = [ln for ln in lines if ln.startswith("gamma ")]
    assert "Fixed(value=0.25)" in gamma and "yes" in gamma and "recovery rate" in gamma
    # the doc column starts at the same offset on every row
    assert lines[2].index("transmission rate") == gamma.index("recovery rate")


# ------------------------------------------------------------------------------ review
def test_review_dict_is_json_ready_and_complete() -> None:
    data = review_dict(seir())
    again = json.loads(json.dumps(data, allow_nan=False))
    assert again == data
    assert data["name"] == "SEIR with under-reporting" and data["time_unit"] == "day"
    assert [s["name"] for s in data["states"]] == ["S", "E", "I", "R"]
    assert data["states"][0]["init_text"] == "999990"
    assert data["equations"]["latex"] == equations_latex(seir())
    assert data["equations"]["text"] == equations_text(seir())
    assert [p["name"] for p in data["parameters"]] == ["beta", "sigma", "gamma", "rho", "phi"]
    assert data["controls"] == [{"name": "u", "default": 0.0, "doc": "contact reduction",
                                 "unit": ""}]
    (obs,) = data["observables"]
    assert obs["noise"] == "negbinomial" and obs["noise_args"] == {"phi": "phi"}
    assert obs["text"] == "cases ~ NegBinomial(E*rho*sigma, phi)"
    assert [f["name"] for f in data["flows"]] == ["infection", "onset", "recovery"]
    assert data["summary"] == {"errors": 0, "warnings": 0, "passed": True}
    assert all(c["passed"] for c in data["checks"])


def test_review_dict_uses_given_checks_and_counts_failures() -> None:
    given = [CheckResult("parameters_used", False, "parameter zeta is unused"),
             CheckResult("initial_conditions", False, "R starts at 0", "warning")]
    data = review_dict(seir(), checks=given)
    assert data["checks"] == [c.to_dict() for c in given]
    assert data["summary"] == {"errors": 1, "warnings": 1, "passed": False}


def test_render_review_shows_equations_parameters_and_failed_checks() -> None:
    m = seir()
    m.param("zeta", Uniform(0, 1))
    text = render_review(m)
    assert text.startswith("SEIR with under-reporting (time in day)")
    assert "dS/dt = " in text and "beta" in text
    assert "[FAIL] parameters_used: parameter zeta" in text
    assert "[ok  ] state_dynamics" in text
