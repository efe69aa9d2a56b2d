"""model_to_source: a Model rendered as a module reproduces the same model JSON.

The rendered module runs in the sandbox (as every candidate does), so the host never
executes it; the JSON it hands back must equal the original's, node for node, for the
shipped example modules and for hand-built models that use every declaration and the
awkward corners of the printer (rationals, floats that 15 digits do not round-trip,
Piecewise, Heaviside, Min/Max, pi, E, Eq, time, names that shadow imports, neural terms).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

from mechanistic import (
    Fixed,
    Gaussian,
    HalfNormal,
    Heaviside,
    LogNormal,
    LogNormalNoise,
    LogUniform,
    Max,
    Min,
    Model,
    NegBinomial,
    Normal,
    Piecewise,
    Poisson,
    PropAdd,
    Uniform,
    exp,
    log,
    model_from_json,
    model_to_json,
    sqrt,
    tanh,
)
from mechanistic.to_source import model_to_source
from sandbox.runner import run_model_module
from sandbox.spec import Sandbox

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "models").glob("*.py"))


def _roundtrip(model: Model, sandbox: Sandbox) -> str:
    source = model_to_source(model)
    run = run_model_module(source, filename="rendered.py", sandbox=sandbox)
    assert run.ok, (run.error.render("rendered.py") if run.error else run.run, source)
    assert run.model_json is not None
    again = model_from_json(run.model_json)
    assert model_to_json(again) == model_to_json(model), source
    return source


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_modules_round_trip(path: Path, sandbox: Sandbox) -> None:
    first = run_model_module(path.read_text(), filename=path.name, sandbox=sandbox)
    assert first.ok and first.model_json is not None
    _roundtrip(model_from_json(first.model_json), sandbox)


def _controls_and_constants() -> Model:
    m = Model("chemostat", time_unit="hour", doc="a chemostat with a dilution control")
    S, X = m.states("S X")
    S_in = m.constant("S_in", 10.0, doc="feed concentration", unit="g/L")
    D = m.control("D", default=0.1, doc="dilution rate", unit="1/h")
    mu = m.param("mu", LogUniform(0.1, 2.0), doc="max growth rate", unit="1/h")
    Ks = m.param("Ks", LogUniform(0.01, 10), doc="half saturation")
    Y = m.param("Y", Uniform(0.1, 1.0))
    sd = m.param("sd", HalfNormal(0.5))
    m.flow(None, S, D * S_in, name="feed")
    m.flow(S, None, D * S, name="washout_S")
    m.flow(X, None, D * X, name="washout_X")
    m.flow(S, None, mu * S * X / (Ks + S) / Y, name="uptake")
    m.flow(None, X, mu * S * X / (Ks + S), name="growth")
    m.init(S=S_in / 2, X=0.1)
    m.observe("biomass", X, noise=PropAdd(0.01, sd), unit="g/L")
    m.observe("substrate", S, noise=Gaussian(0.05))
    return m


def _neural_and_time() -> Model:
    m = Model("hybrid decay")
    x, y = m.states("x y")
    k = m.param("k", LogNormal(-1.0, 0.5))
    c = m.param("c", Normal(0.0, 2.0))
    phi = m.param("phi", Fixed(20))
    g = m.neural("g", inputs=[x, y / 10], hidden=(8, 4), doc="learned factor")
    h = m.neural("h", inputs=[x], hidden=(3,), activation="softplus")
    u = m.control("u")
    m.flow(x, y, k * x * exp(g), name="conversion")
    m.flow(y, None, k * y * (1 + tanh(h.func(y))) + c**2 * y * u, name="loss")
    m.rate(x, Piecewise((1.5, m.t < 5), (0, True)) * Heaviside(10 - m.t))
    m.init(x=1, y=0)
    m.observe("y_count", y * 100, noise=NegBinomial(phi))
    m.observe("x_count", x * 10, noise=Poisson())
    return m


def _awkward_printing() -> Model:
    m = Model("awkward printing", doc='quotes " and \\ backslashes')
    # names that shadow the module's imports or its usual model variable
    A, B = m.states("m exp")
    Model_ = m.param("Model", LogUniform(1, 100))
    k = m.param("k", LogUniform(0.1 + 0.2, 3.0))  # 0.30000000000000004: needs 17 digits
    s = m.param("s", LogUniform(0.01, 1.0))
    m.flow(A, B, k * A * sp.Rational(3, 7) + sp.Rational(1, 2) * A ** sp.Rational(3, 2),
           name="a_to_b")
    m.flow(B, None, Min(B, Model_) * 0.1 + Max(B - 1, 0) * sqrt(B) / sqrt(A + 1), name="out")
    m.rate(A, sp.pi * sp.E * Piecewise((A, sp.Eq(B, 0) | (m.t > 3)), (0, True)))
    m.rate(A, -log(1 + A) * A * 1e-12 + sp.Float("0.1") * A**-1.5 * Heaviside(A - 1, 1))
    m.init(m=Model_ / 3, exp=0.5)
    m.observe("m", A + B, noise=LogNormalNoise(s))
    return m


@pytest.mark.parametrize("build", [_controls_and_constants, _neural_and_time, _awkward_printing])
def test_hand_built_models_round_trip(build, sandbox: Sandbox) -> None:
    source = _roundtrip(build(), sandbox)
    assert "eval" not in source and "exec" not in source


def test_rendered_source_reads_like_the_language() -> None:
    source = model_to_source(_controls_and_constants())
    assert "from mechanistic import Gaussian, HalfNormal, LogUniform, Model, PropAdd, Uniform\n" \
        in source
    assert "m.flow(S, None, S*X*mu/(Y*(Ks + S)), name='uptake')" in source
    assert "D = m.control('D', default=0.1" in source
    awkward = model_to_source(_awkward_printing())
    assert "from sympy import Eq, Rational, pi" in awkward
    assert "m_ = Model(" in awkward and "exp_ = m_.state('exp')" in awkward
    assert "0.30000000000000004" in awkward
