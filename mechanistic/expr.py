"""Expression trees: sympy expressions to whitelisted JSON and back.

Model JSON leaves the sandbox and is rebuilt on the host. The rebuild walks a tree of
whitelisted node types and calls sympy constructors directly: no ``eval``, ``exec``,
``pickle`` or sympy's string parser ever sees text that came out of the sandbox. Nodes
are rebuilt with ``evaluate=False`` so that the round trip is exact (the same tree, the
same ``srepr``), not merely mathematically equal.

JSON node forms::

    {"int": 3}   {"rat": [1, 7]}   {"float": 0.25}   {"const": "pi"}   {"bool": true}
    {"sym": "beta"}
    {"op": "add" | "mul" | "pow" | "exp" | "log" | "sin" | "cos" | "tanh" | "min" | "max"
           | "heaviside" | "lt" | "le" | "gt" | "ge" | "eq" | "ne" | "and" | "or" | "not",
     "args": [node, ...]}
    {"op": "piecewise", "args": [[value, condition], ...]}
    {"op": "neural", "name": "g", "args": [node, ...]}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.logic.boolalg import BooleanFalse, BooleanTrue

from mechanistic.errors import ModelError, SerializationError

__all__ = [
    "ALLOWED_FUNCTIONS",
    "expr_from_json",
    "expr_to_json",
    "free_names",
    "neural_calls",
    "validate_expr",
]

# Node classes the DSL accepts, with their JSON op names.
_FUNCTION_OPS: dict[type, str] = {
    sp.exp: "exp",
    sp.log: "log",
    sp.sin: "sin",
    sp.cos: "cos",
    sp.tanh: "tanh",
    sp.Min: "min",
    sp.Max: "max",
    sp.Heaviside: "heaviside",
}
_RELATIONAL_OPS: dict[type, str] = {
    sp.StrictLessThan: "lt",
    sp.LessThan: "le",
    sp.StrictGreaterThan: "gt",
    sp.GreaterThan: "ge",
    sp.Equality: "eq",
    sp.Unequality: "ne",
}
_LOGIC_OPS: dict[type, str] = {sp.And: "and", sp.Or: "or", sp.Not: "not"}
_CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

ALLOWED_FUNCTIONS = (
    "+ - * / **, exp, log, sqrt, tanh, sin, cos, Min, Max, Piecewise, Heaviside, "
    "comparisons (<, <=, >, >=) and And/Or/Not inside Piecewise conditions"
)


def _bad_node(node: sp.Basic) -> ModelError:
    return ModelError(
        f"expression uses {type(node).__name__} ({node}), which the model language does not "
        f"allow; use only {ALLOWED_FUNCTIONS}"
    )


def expr_to_json(expr: sp.Basic, neural_names: Iterable[str] = ()) -> Any:
    """Encode a sympy expression as a JSON-ready tree; unknown node types are an error."""
    neural = set(neural_names)

    def enc(node: sp.Basic) -> Any:
        if isinstance(node, bool):
            return {"bool": node}
        if isinstance(node, BooleanTrue):
            return {"bool": True}
        if isinstance(node, BooleanFalse):
            return {"bool": False}
        if isinstance(node, sp.Integer):
            return {"int": int(node)}
        if isinstance(node, sp.Rational):
            return {"rat": [int(node.p), int(node.q)]}
        if isinstance(node, sp.Float):
            value = float(node)
            if not math.isfinite(value):
                raise ModelError(f"expression contains a non-finite number {node}")
            return {"float": value}
        if node is sp.pi:
            return {"const": "pi"}
        if node is sp.E:
            return {"const": "E"}
        if isinstance(node, sp.Symbol):
            return {"sym": node.name}
        if isinstance(node, sp.Add):
            return {"op": "add", "args": [enc(a) for a in node.args]}
        if isinstance(node, sp.Mul):
            return {"op": "mul", "args": [enc(a) for a in node.args]}
        if isinstance(node, sp.Pow):
            return {"op": "pow", "args": [enc(a) for a in node.args]}
        if isinstance(node, sp.Piecewise):
            return {"op": "piecewise", "args": [[enc(e), enc(c)] for e, c in node.args]}
        if isinstance(node, AppliedUndef):
            name = type(node).__name__
            if name not in neural:
                raise ModelError(
                    f"expression calls an undeclared function {name}(); declare learned "
                    f"terms with m.neural({name!r}, inputs=[...])"
                )
            return {"op": "neural", "name": name, "args": [enc(a) for a in node.args]}
        for table in (_FUNCTION_OPS, _RELATIONAL_OPS, _LOGIC_OPS):
            op = table.get(type(node))
            if op is not None:
                return {"op": op, "args": [enc(a) for a in node.args]}
        raise _bad_node(node)

    return enc(sp.sympify(expr))


_BUILDERS: dict[str, Callable[..., sp.Basic]] = {
    "add": lambda *a: sp.Add(*a, evaluate=False),
    "mul": lambda *a: sp.Mul(*a, evaluate=False),
    "pow": lambda *a: sp.Pow(*a, evaluate=False),
    "min": lambda *a: sp.Min(*a, evaluate=False),
    "max": lambda *a: sp.Max(*a, evaluate=False),
    "lt": lambda *a: sp.StrictLessThan(*a, evaluate=False),
    "le": lambda *a: sp.LessThan(*a, evaluate=False),
    "gt": lambda *a: sp.StrictGreaterThan(*a, evaluate=False),
    "ge": lambda *a: sp.GreaterThan(*a, evaluate=False),
    "eq": lambda *a: sp.Equality(*a, evaluate=False),
    "ne": lambda *a: sp.Unequality(*a, evaluate=False),
    "and": lambda *a: sp.And(*a, evaluate=False),
    "or": lambda *a: sp.Or(*a, evaluate=False),
    "not": lambda *a: sp.Not(*a, evaluate=False),
    **{op: (lambda f: lambda *a: f(*a, evaluate=False))(fn) for fn, op in _FUNCTION_OPS.items()
       if op not in ("min", "max")},
}
_ARITY: dict[str, tuple[int, int | None]] = {
    "add": (2, None), "mul": (2, None), "pow": (2, 2), "min": (2, None), "max": (2, None),
    "exp": (1, 1), "log": (1, 1), "sin": (1, 1), "cos": (1, 1), "tanh": (1, 1),
    "heaviside": (1, 2), "lt": (2, 2), "le": (2, 2), "gt": (2, 2), "ge": (2, 2),
    "eq": (2, 2), "ne": (2, 2), "and": (2, None), "or": (2, None), "not": (1, 1),
}


def expr_from_json(
    data: Any,
    symbols: Mapping[str, sp.Symbol],
    neural: Mapping[str, type] | None = None,
    where: str = "expression",
) -> sp.Basic:
    """Rebuild an expression from its JSON tree; every symbol must be in ``symbols``.

    ``where`` names the place in the model (for example ``flow 'infection' rate``) so that
    an error message points at the broken part of a large document.
    """
    neural = neural or {}

    def fail(msg: str, node: Any) -> SerializationError:
        shown = repr(node)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        return SerializationError(f"{where}: {msg} (at {shown})")

    def args_of(node: dict[str, Any], op: str) -> list[sp.Basic]:
        raw = node.get("args")
        if not isinstance(raw, list):
            raise fail(f"op {op!r} needs a list 'args'", node)
        lo, hi = _ARITY.get(op, (0, None))
        if len(raw) < lo or (hi is not None and len(raw) > hi):
            want = f"{lo}" if hi == lo else f"{lo}..{hi or 'n'}"
            raise fail(f"op {op!r} takes {want} arguments, got {len(raw)}", node)
        return [dec(a) for a in raw]

    def dec(node: Any) -> sp.Basic:
        if not isinstance(node, dict) or len(node) == 0:
            raise fail("expected an expression node (a JSON object)", node)
        if "int" in node:
            value = node["int"]
            if isinstance(value, bool) or not isinstance(value, int):
                raise fail("'int' must hold an integer", node)
            return sp.Integer(value)
        if "rat" in node:
            value = node["rat"]
            if (not isinstance(value, list) or len(value) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                    or value[1] == 0):
                raise fail("'rat' must be [numerator, nonzero denominator] integers", node)
            return sp.Rational(value[0], value[1])
        if "float" in node:
            value = node["float"]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise fail("'float' must hold a number", node)
            if not math.isfinite(value):
                raise fail("'float' must be finite", node)
            return sp.Float(float(value))
        if "bool" in node:
            if not isinstance(node["bool"], bool):
                raise fail("'bool' must be true or false", node)
            return sp.true if node["bool"] else sp.false
        if "const" in node:
            const = _CONSTANTS.get(node["const"])
            if const is None:
                raise fail(f"unknown constant; known: {sorted(_CONSTANTS)}", node)
            return const
        if "sym" in node:
            name = node["sym"]
            if not isinstance(name, str) or name not in symbols:
                raise fail(f"unknown symbol {name!r}; declared: {sorted(symbols)}", node)
            return symbols[name]
        op = node.get("op")
        if not isinstance(op, str):
            raise fail("unknown node type; a node is one of int, rat, float, const, bool, "
                       "sym or op", node)
        if op == "piecewise":
            pairs = node.get("args")
            if not isinstance(pairs, list) or not pairs or not all(
                isinstance(p, list) and len(p) == 2 for p in pairs
            ):
                raise fail("'piecewise' needs args [[value, condition], ...]", node)
            return sp.Piecewise(*[(dec(e), dec(c)) for e, c in pairs], evaluate=False)
        if op == "neural":
            name = node.get("name")
            if name not in neural:
                raise fail(f"unknown neural term {name!r}; declared: {sorted(neural)}", node)
            raw = node.get("args")
            if not isinstance(raw, list) or not raw:
                raise fail("'neural' needs a non-empty list 'args'", node)
            return neural[name](*[dec(a) for a in raw])
        builder = _BUILDERS.get(op)
        if builder is None:
            raise fail(f"unknown op {op!r}; allowed: {sorted([*_BUILDERS, 'piecewise', 'neural'])}",
                       node)
        return builder(*args_of(node, op))

    return dec(data)


def free_names(expr: sp.Basic) -> set[str]:
    """Names of the symbols an expression reads."""
    return {s.name for s in sp.sympify(expr).free_symbols}


def neural_calls(expr: sp.Basic) -> set[str]:
    """Names of the neural terms an expression calls."""
    return {type(a).__name__ for a in sp.sympify(expr).atoms(AppliedUndef)}


def validate_expr(
    expr: Any, known: Iterable[str], neural_names: Iterable[str], where: str
) -> sp.Expr:
    """Sympify user input and check it uses allowed nodes and known symbols only."""
    try:
        value = sp.sympify(expr, strict=True)
    except (sp.SympifyError, TypeError) as exc:
        raise ModelError(f"{where}: {expr!r} is not a number or an expression of the model's "
                         f"symbols") from exc
    try:
        expr_to_json(value, neural_names)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None
    # The model language identifies a symbol by its name alone (JSON carries no sympy
    # assumptions), so Symbol("x", positive=True) written by hand means the model's plain x.
    value = value.xreplace({s: sp.Symbol(s.name) for s in value.free_symbols
                            if isinstance(s, sp.Symbol) and s != sp.Symbol(s.name)})
    unknown = free_names(value) - set(known)
    if unknown:
        raise ModelError(
            f"{where}: uses undeclared symbol(s) {sorted(unknown)}; declare them with "
            f"m.states / m.param / m.constant / m.control before use"
        )
    return value
