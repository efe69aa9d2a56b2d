"""Hostile model JSON: each document is refused with one clear error, fast and small.

Model JSON comes out of the sandbox (written by generated code), from an LLM's answer or
from a file, so every case here is something a module can hand the host. The bound on
time and memory is asserted per case (the red team saw 90 s and 1.5 GB for one rate).
"""

from __future__ import annotations

import copy
import json
import time
import tracemalloc

import pytest

from mechanistic import LogUniform, Model, Uniform
from mechanistic.bounded import HostLimitError, call_bounded
from mechanistic.errors import ModelError, SerializationError
from mechanistic.serialize import model_from_dict, model_from_json

pytestmark = pytest.mark.hostile

SECONDS = 2.0
PEAK_BYTES = 64 * 1024 * 1024


def _base() -> dict:
    m = Model("decay")
    x = m.state("x")
    k = m.param("k", LogUniform(0.01, 2.0))
    m.flow(x, None, k * x, name="loss")
    m.init(x=1.0)
    m.observe("y", x)
    return json.loads(m.to_json())


X1 = {"op": "add", "args": [{"sym": "x"}, {"int": 1}]}


def _nest(op: str, depth: int) -> dict:
    node: dict = {"sym": "x"}
    for _ in range(depth):
        node = ({"op": "piecewise", "args": [[node, {"bool": True}]]} if op == "piecewise"
                else {"op": op, "args": [node]})
    return node


def _rate(expr: dict):
    return lambda d: d["flows"][0].__setitem__("rate", expr)


CASES = {
    "pow_100000": (_rate({"op": "pow", "args": [X1, {"int": 100000}]}), "power above"),
    "product_degree_120": (_rate({"op": "mul", "args": [
        {"op": "pow", "args": [X1, {"int": 60}]}, {"op": "pow", "args": [
            {"op": "add", "args": [{"sym": "x"}, {"sym": "k"}]}, {"int": 60}]}]}),
        "polynomial degree"),
    "ten_to_ten_to_12": (_rate({"op": "pow", "args": [{"int": 10}, {"int": 10**12}]}),
                         "power above"),
    "k_plus_x_pow_2000": (_rate({"op": "pow", "args": [
        {"op": "add", "args": [{"sym": "k"}, {"sym": "x"}]}, {"int": 2000}]}), "power above"),
    "nested_300_exp": (_rate(_nest("exp", 300)), "nested deeper"),
    "nested_200_piecewise": (_rate(_nest("piecewise", 200)), "nested deeper"),
    "wrapped_outflow_300": (_rate({"op": "mul", "args": [{"sym": "k"}, _nest("max", 0) | {
        "op": "min", "args": [_nest("tanh", 300), {"sym": "x"}]}]}), "nested deeper"),
    "init_key_self": (lambda d: d.__setitem__("init", {"self": {"int": 1}}), "'self'"),
    "noise_kind_list": (lambda d: d["observables"][0]["noise"].__setitem__("kind", ["a"]),
                        "unknown kind"),
    "noise_kind_dict": (lambda d: d["observables"][0]["noise"].__setitem__("kind", {"a": 1}),
                        "unknown kind"),
    "prior_bound_1e400": (lambda d: d["params"][0]["prior"].__setitem__("high", 10**400),
                          "digits"),
    "prior_bound_inf": (lambda d: d["params"][0]["prior"].__setitem__("high", float("inf")),
                        "not a number JSON allows"),
    "state_trailing_newline": (lambda d: d["states"].append({"name": "x\n"}), "not valid"),
    "state_4000": (lambda d: d["states"].extend({"name": f"s{i}"} for i in range(4000)),
                   "at most 2000"),
    "state_100000": (lambda d: d["states"].extend({"name": f"s{i}"} for i in range(100000)),
                     "members in one array"),
    "int_400_digits": (_rate({"int": 10**400}), "digits"),
    "constant_a_string": (lambda d: d["constants"].append({"name": "c", "value": "1e5"}),
                          "must be int/float"),
    "sym_not_string": (_rate({"sym": ["x"]}), "unknown symbol"),
    "const_list": (_rate({"const": ["pi"]}), "unknown constant"),
    "neural_name_dict": (_rate({"op": "neural", "name": {"a": 1}, "args": [{"sym": "x"}]}),
                         "unknown neural term"),
    "name_100k_chars": (lambda d: d["states"].append({"name": "a" * 100_001}),
                        "longer than the limit"),
    "deep_json_1e5": (None, "nested deeper"),
    "duplicate_keys": (None, "appears twice"),
}


def _document(name: str) -> str:
    mutate, _ = CASES[name]
    if name == "deep_json_1e5":
        return '{"format": "mmw.model/1", "name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    if name == "duplicate_keys":
        return '{"format": "mmw.model/1", "name": "a", "name": "b", "states": []}'
    doc = copy.deepcopy(_base())
    mutate(doc)
    return json.dumps(doc)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_model_json_is_one_clear_error(name):
    text = _document(name)
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(SerializationError) as info:
        model_from_json(text)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert CASES[name][1] in str(info.value)
    assert len(str(info.value)) < 600  # a message, not a dump of the document
    assert elapsed < SECONDS and peak < PEAK_BYTES


def test_an_in_process_dict_gets_the_same_bounds():
    doc = _base()
    doc["flows"][0]["rate"] = _nest("exp", 5000)  # too deep for repr or a recursive walk
    with pytest.raises(SerializationError, match="nested deeper"):
        model_from_dict(doc)


def test_the_dsl_refuses_the_same_expressions_on_the_modules_own_line():
    m = Model("h")
    x = m.state("x")
    k = m.param("k", Uniform(0, 1))
    with pytest.raises(ModelError, match="power above"):
        m.rate(x, (x + 1) ** 100000)
    with pytest.raises(ModelError, match="polynomial degree"):
        m.rate(x, (x + 1) ** 40 * (x + k) ** 40)
    with pytest.raises(ModelError, match="not valid"):
        m.state("y\n")
    m.rate(x, -k * x ** 2 / (1 + x) ** 3)  # an ordinary rate passes


def test_an_ordinary_model_round_trips_exactly():
    doc = _base()
    assert json.loads(model_from_json(json.dumps(doc)).to_json()) == doc


def test_host_work_past_its_bound_is_stopped_and_named():
    start = time.perf_counter()
    with pytest.raises(HostLimitError, match="did not finish within 1 s"):
        call_bounded(lambda: [i for i in iter(int, 1)], "a busy check", seconds=1.0)
    with pytest.raises(HostLimitError, match="memory bound"):
        call_bounded(lambda: bytearray(4 * 1024**3), "a greedy check", seconds=10,
                     memory_bytes=256 * 1024**2)
    assert time.perf_counter() - start < 8
    assert call_bounded(lambda: {"fine": [1, 2]}, "a quick check") == {"fine": [1, 2]}
