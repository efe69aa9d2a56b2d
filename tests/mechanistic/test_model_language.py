"""The model language: DSL misuse is refused, JSON round-trips exactly, bad JSON is named.

The round-trip truth is structural: the rebuilt model prints the same JSON and every
expression has the same ``srepr`` (same tree, not merely equal mathematics).
"""

from __future__ import annotations

import copy
import json
from typing import Any

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
    ModelError,
    NegBinomial,
    Normal,
    Piecewise,
    Poisson,
    PropAdd,
    SerializationError,
    Uniform,
    cos,
    exp,
    log,
    model_from_dict,
    model_from_json,
    model_to_dict,
    model_to_json,
    sin,
    sqrt,
    tanh,
)


# ------------------------------------------------------------------------------ models
def seir() -> Model:
    m = Model("SEIR with under-reporting", time_unit="day")
    S, E, I, R = m.states("S E I R")
    beta = m.param("beta", LogUniform(0.05, 3.0), doc="transmission rate", unit="1/day")
    sigma = m.param("sigma", Uniform(1 / 7, 1 / 2))
    gamma = m.param("gamma", Uniform(1 / 14, 1 / 3))
    rho = m.param("rho", Uniform(0.05, 1.0))
    phi = m.param("phi", LogUniform(1, 100))
    u = m.control("contact_reduction", default=0.0)
    N = S + E + I + R
    m.flow(S, E, (1 - u) * beta * S * I / N, name="infection")
    m.flow(E, I, sigma * E, name="onset")
    m.flow(I, R, gamma * I, name="recovery")
    m.init(S=1e6 - 10, E=0, I=10, R=0)
    m.observe("cases", rho * sigma * E, noise=NegBinomial(phi))
    return m


def lotka_volterra_neural() -> Model:
    m = Model("Lotka-Volterra with a learned predation term", time_unit="year")
    x, y = m.states("hare lynx")
    a = m.param("a", LogNormal(0.0, 0.5))
    c = m.param("c", HalfNormal(1.0))
    d = m.param("d", Normal(0.1, 0.05))
    k = m.constant("K", 150.0, doc="carrying capacity")
    s = m.param("s", Fixed(0.2))
    x0 = m.param("x0", Uniform(10, 50))
    g = m.neural("g", inputs=[x, y], hidden=(8, 4), activation="softplus", doc="predation")
    m.rate(x, a * x * (1 - x / k) - g * x)
    m.rate(y, d * g * y - c * y)
    m.init(hare=x0, lynx=4)
    m.observe("hare_pelts", x, noise=LogNormalNoise(s))
    m.observe("lynx_pelts", y, noise=PropAdd(0.5, s))
    return m


def functions_model() -> Model:
    m = Model("every allowed function")
    x, y = m.states("x y")
    k = m.param("k", Uniform(0, 1))
    h = m.constant("h", 2.5)
    u = m.control("u", default=1.0)
    t = m.t
    pw = Piecewise((k * x, t < 5), (k * x / 2, sp.And(x >= h, t < 10)), (0, True))
    m.flow(x, y, pw + Heaviside(t - 3) * Min(x, h) + Max(0, x - h) * sqrt(x), name="mix")
    m.flow(None, x, exp(-t / 7) + sp.Rational(1, 3) * tanh(u) + log(1 + h) * sp.pi,
           name="source")
    m.rate(y, -k * y * (sin(t) ** 2 + cos(t) ** 2) + sp.E * 0)
    m.init(x=k * 3, y=h ** 2)
    m.observe("total", x + y, noise=Poisson())
    m.observe("y_obs", y, noise=Gaussian(0.1))
    return m


ROUND_TRIP = [seir, lotka_volterra_neural, functions_model]


# --------------------------------------------------------------------------- round trip
def _sreprs(m: Model) -> list[str]:
    out = [sp.srepr(f.rate) for f in m.flows] + [sp.srepr(r.expr) for r in m.rates]
    out += [sp.srepr(v) for v in m.inits.values()]
    out += [sp.srepr(o.expr) for o in m.observables_.values()]
    out += [sp.srepr(v) for o in m.observables_.values() for v in o.noise.arguments().values()]
    out += [sp.srepr(x) for n in m.neural_.values() for x in n.inputs]
    return out


@pytest.mark.parametrize("build", ROUND_TRIP, ids=lambda f: f.__name__)
def test_json_round_trip_is_identical(build: Any) -> None:
    original = build()
    text = model_to_json(original)
    rebuilt = model_from_json(text)
    assert model_to_json(rebuilt) == text
    assert model_to_dict(rebuilt) == json.loads(text)
    assert rebuilt == original
    assert _sreprs(rebuilt) == _sreprs(original)
    assert {k: sp.srepr(v) for k, v in rebuilt.rhs().items()} == {
        k: sp.srepr(v) for k, v in original.rhs().items()}
    # a second trip is stable too
    assert model_to_json(model_from_json(model_to_json(rebuilt))) == text


def test_round_trip_keeps_declarations() -> None:
    rebuilt = model_from_json(model_to_json(lotka_volterra_neural()))
    assert rebuilt.state_names == ["hare", "lynx"]
    assert rebuilt.free_param_names == ["a", "c", "d", "x0"]
    assert rebuilt.params_["s"].fixed
    assert rebuilt.constants_["K"].value == 150.0
    term = rebuilt.neural_["g"]
    assert (term.hidden, term.activation, term.doc) == ((8, 4), "softplus", "predation")
    assert isinstance(rebuilt.observables_["lynx_pelts"].noise, PropAdd)


def test_round_trip_uses_every_function_node() -> None:
    ops: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "op" in node:
                ops.add(node["op"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(model_to_dict(functions_model()))
    assert {"piecewise", "heaviside", "min", "max", "pow", "exp", "log", "tanh", "sin", "cos",
            "lt", "and", "add", "mul"} <= ops
    assert ops & {"le", "ge"}


# ------------------------------------------------------------------------ malformed JSON
def _seir_dict() -> dict[str, Any]:
    return copy.deepcopy(model_to_dict(seir()))


def _break_unknown_op(d: dict[str, Any]) -> None:
    d["flows"][1]["rate"] = {"op": "gamma", "args": [{"sym": "E"}]}


def _break_unknown_symbol(d: dict[str, Any]) -> None:
    d["flows"][1]["rate"] = {"op": "mul", "args": [{"sym": "zeta"}, {"sym": "E"}]}


def _break_prior_kind(d: dict[str, Any]) -> None:
    d["params"][0]["prior"] = {"kind": "beta_dist", "a": 1, "b": 2}


def _break_arity(d: dict[str, Any]) -> None:
    d["flows"][1]["rate"] = {"op": "pow", "args": [{"sym": "E"}]}


def _break_missing_field(d: dict[str, Any]) -> None:
    del d["flows"][0]["rate"]


def _break_format(d: dict[str, Any]) -> None:
    d["format"] = "mmw.model/99"


def _break_noise_kind(d: dict[str, Any]) -> None:
    d["observables"][0]["noise"] = {"kind": "cauchy", "scale": {"int": 1}}


def _break_extra_field(d: dict[str, Any]) -> None:
    d["code"] = "import os"


def _break_flow_state(d: dict[str, Any]) -> None:
    d["flows"][0]["target"] = "Z"


def _break_neural(d: dict[str, Any]) -> None:
    d["flows"][1]["rate"] = {"op": "neural", "name": "h", "args": [{"sym": "E"}]}


def _break_int_type(d: dict[str, Any]) -> None:
    d["init"]["I"] = {"int": "10"}


def _break_node_shape(d: dict[str, Any]) -> None:
    d["init"]["I"] = [10]


def _break_prior_args(d: dict[str, Any]) -> None:
    d["params"][1]["prior"] = {"kind": "uniform", "low": 1.0, "high": 0.5}


def _break_duplicate(d: dict[str, Any]) -> None:
    d["params"].append(copy.deepcopy(d["params"][0]))


@pytest.mark.parametrize(
    ("breaker", "fragments"),
    [
        (_break_unknown_op, ["flows[1].rate", "unknown op 'gamma'"]),
        (_break_unknown_symbol, ["flows[1].rate", "unknown symbol 'zeta'"]),
        (_break_prior_kind, ["params[0].prior", "unknown prior kind 'beta_dist'"]),
        (_break_arity, ["op 'pow' takes 2 arguments, got 1"]),
        (_break_missing_field, ["flows[0]", "missing field 'rate'"]),
        (_break_format, ["format 'mmw.model/99'"]),
        (_break_noise_kind, ["observables[0].noise", "unknown kind 'cauchy'"]),
        (_break_extra_field, ["unknown field", "code"]),
        (_break_flow_state, ["'Z' is not a declared state"]),
        (_break_neural, ["unknown neural term 'h'"]),
        (_break_int_type, ["init.I", "'int' must hold an integer"]),
        (_break_node_shape, ["init.I", "expected an expression node"]),
        (_break_prior_args, ["params[1].prior", "Uniform needs low < high"]),
        (_break_duplicate, ["'beta' is already declared"]),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_malformed_json_names_the_problem(breaker: Any, fragments: list[str]) -> None:
    data = _seir_dict()
    breaker(data)
    with pytest.raises(SerializationError) as info:
        model_from_json(json.dumps(data))
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "must be an object"),
        ('{"name": "x"}', "format None"),
        ('{"format": 3, "name": "x"}', "format 3"),
        ('{"format": "mmw.model/1"}', "missing field 'name'"),
    ],
)
def test_non_model_text_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(SerializationError) as info:
        model_from_json(text)
    assert fragment in str(info.value)


def test_loading_never_evaluates_strings() -> None:
    data = _seir_dict()
    data["flows"][1]["rate"] = {"sym": "__import__('os').system('false')"}
    with pytest.raises(SerializationError, match="unknown symbol"):
        model_from_dict(data)


# --------------------------------------------------------------------------- DSL misuse
def test_foreign_symbol_is_refused() -> None:
    m = Model("m")
    x = m.state("x")
    with pytest.raises(ModelError, match=r"undeclared symbol\(s\) \['zeta'\]"):
        m.rate(x, -sp.Symbol("zeta") * x)


def test_duplicate_names_are_refused() -> None:
    m = Model("m")
    m.state("x")
    with pytest.raises(ModelError, match="'x' is already declared"):
        m.param("x", Uniform(0, 1))
    m.param("k", Uniform(0, 1))
    with pytest.raises(ModelError, match="'k' is already declared"):
        m.constant("k", 1.0)
    with pytest.raises(ModelError, match="'k' is already declared"):
        m.neural("k", inputs=[sp.Symbol("x")])


def test_disallowed_function_is_refused() -> None:
    m = Model("m")
    x = m.state("x")
    with pytest.raises(ModelError, match=r"gamma.*does not allow"):
        m.rate(x, -sp.gamma(x))
    with pytest.raises(ModelError, match="undeclared function f"):
        m.rate(x, -sp.Function("f")(x))
    with pytest.raises(ModelError, match="does not allow"):
        m.rate(x, sp.asin(x))


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: Uniform(1.0, 0.5), "low < high"),
        (lambda: LogUniform(0.0, 1.0), "0 < low < high"),
        (lambda: Normal(0.0, -1.0), "std > 0"),
        (lambda: LogNormal(0.0, 0.0), "sigma > 0"),
        (lambda: HalfNormal(0.0), "scale > 0"),
        (lambda: Fixed(float("nan")), "finite"),
    ],
)
def test_bad_prior_arguments(make: Any, fragment: str) -> None:
    with pytest.raises(ModelError, match=fragment):
        make()


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        (lambda m: m.param("k2", 0.5), "needs a prior"),
        (lambda m: m.state("2x"), "not valid"),
        (lambda m: m.state("t"), "reserved"),
        (lambda m: m.flow("x", "nowhere", 1), "not a declared state"),
        (lambda m: m.flow(None, None, 1), "both were None"),
        (lambda m: m.flow("x", "x", 1), "to itself"),
        (lambda m: m.init(nowhere=1), "not a declared state"),
        (lambda m: m.init(x=sp.Symbol("x")), "undeclared symbol"),
        (lambda m: m.observe("o", sp.Symbol("x"), noise=Gaussian(sp.Symbol("x"))), "noise"),
        (lambda m: m.observe("o", sp.Symbol("x"), noise="gaussian"), "noise must be"),
        (lambda m: m.neural("g", inputs=[sp.Symbol("x")], activation="gelu"), "activation"),
        (lambda m: m.neural("g", inputs=[sp.Symbol("x")], hidden=(0,)), "hidden"),
        (lambda m: m.neural("g", inputs=[]), "at least one input"),
        (lambda m: m.constant("c", float("inf")), "finite"),
        (lambda m: m.rate("x", "k*x"), "not a number or an expression"),
    ],
)
def test_dsl_misuse_raises_model_error(action: Any, fragment: str) -> None:
    m = Model("m")
    m.state("x")
    m.param("k", Uniform(0, 1))
    with pytest.raises(ModelError, match=fragment):
        action(m)


def test_symbol_with_assumptions_means_the_declared_symbol() -> None:
    """A name is a symbol in this language: a hand-made Symbol('x', positive=True) must become
    the model's own x, or simulators and the JSON round trip would see two different x."""
    m = Model("m")
    x = m.state("x")
    k = m.param("k", Uniform(0, 1))
    m.rate(x, -k * sp.Symbol("x", positive=True))
    m.observe("o", x, noise=Gaussian(sp.Symbol("k", positive=True)))
    assert m.rhs()["x"].free_symbols == {x, k}
    assert m.observables_["o"].noise.sigma == k
    rebuilt = model_from_json(model_to_json(m))
    assert _sreprs(rebuilt) == _sreprs(m)
