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
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.logic.boolalg import BooleanFalse, BooleanTrue

from mechanistic.errors import ModelError, SerializationError
from mechanistic.untrusted import shown

__all__ = [
    "ALLOWED_FUNCTIONS",
    "EXPR_LIMITS",
    "ExprLimits",
    "check_expr_size",
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


@dataclass(frozen=True)
class ExprLimits:
    """How large one expression may be before the host does symbolic work on it.

    Checks, printing, simplification and compilation are polynomial in these, so bounding
    them bounds the host's time and memory on any model (a rate ``(x+1)**100000`` or one
    nested 300 deep is refused here instead of keeping sympy busy for minutes). The
    polynomial-degree bound (degrees add under ``*``, multiply under an integer power)
    is what expansion and cancellation cost grows with. Every model mmw proposes is far
    inside: depth under 15, a few hundred nodes, degree under 10.
    """

    max_depth: int = 40
    max_nodes: int = 5_000
    max_degree: float = 64.0
    max_int_digits: int = 30

    def __post_init__(self) -> None:
        if min(self.max_depth, self.max_nodes, self.max_int_digits) < 1 or self.max_degree < 1:
            raise ValueError("ExprLimits fields must be at least 1")


EXPR_LIMITS = ExprLimits()


def _number_degree(value: sp.Basic) -> float | None:
    """|value| for a numeric exponent (its contribution to the degree), None if symbolic."""
    if isinstance(value, sp.Integer | sp.Rational | sp.Float):
        return abs(float(value))
    if isinstance(value, sp.Mul) and len(value.args) == 2 and value.args[0] == -1:
        return _number_degree(value.args[1])  # -n as built with evaluate=False
    return None


def check_expr_size(expr: sp.Basic, where: str, limits: ExprLimits = EXPR_LIMITS) -> None:
    """Refuse an expression beyond ``limits`` (ModelError naming ``where``); iterative, so
    a deep tree is measured without recursion and without sympy evaluating anything."""
    def refuse(what: str) -> ModelError:
        return ModelError(f"{where}: the expression {what}; write it in a simpler form "
                          "(a model expression is a few terms of its symbols)")

    order: list[tuple[sp.Basic, int]] = []
    stack: list[tuple[sp.Basic, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        order.append((node, depth))
        if len(order) > limits.max_nodes:
            raise refuse(f"has more than {limits.max_nodes} parts")
        if depth > limits.max_depth:
            raise refuse(f"is nested more than {limits.max_depth} deep")
        if isinstance(node, sp.Integer | sp.Rational):
            for part in (node.p, node.q):
                if abs(part) >= 10**limits.max_int_digits:
                    raise refuse(f"holds an integer of more than {limits.max_int_digits} digits")
        stack.extend((arg, depth + 1) for arg in node.args)
    degree: dict[int, float] = {}
    for node, _ in reversed(order):  # children before parents
        args = [degree[id(a)] for a in node.args]
        if isinstance(node, sp.Symbol):
            value = 1.0
        elif not node.args:
            value = 0.0
        elif isinstance(node, sp.Mul):
            value = sum(args)
        elif isinstance(node, sp.Pow):
            exponent = _number_degree(node.args[1])
            if exponent is not None and exponent > limits.max_degree:  # 10**(10**12) too
                raise refuse(f"raises to a power above {limits.max_degree:g}")
            value = args[0] * exponent if exponent is not None else args[0] + args[1]
        else:
            value = max(args)
        if value > limits.max_degree:
            raise refuse(f"has a polynomial degree above {limits.max_degree:g} "
                         "(a power or product too high)")
        degree[id(node)] = value


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
    limits: ExprLimits = EXPR_LIMITS,
) -> sp.Basic:
    """Rebuild an expression from its JSON tree; every symbol must be in ``symbols``.

    ``where`` names the place in the model (for example ``flow 'infection' rate``) so that
    an error message points at the broken part of a large document.
    """
    neural = neural or {}

    def fail(msg: str, node: Any) -> SerializationError:
        return SerializationError(f"{where}: {msg} (at {shown(node)})")

    def args_of(node: dict[str, Any], op: str, depth: int) -> list[sp.Basic]:
        raw = node.get("args")
        if not isinstance(raw, list):
            raise fail(f"op {op!r} needs a list 'args'", node)
        lo, hi = _ARITY.get(op, (0, None))
        if len(raw) < lo or (hi is not None and len(raw) > hi):
            want = f"{lo}" if hi == lo else f"{lo}..{hi or 'n'}"
            raise fail(f"op {op!r} takes {want} arguments, got {len(raw)}", node)
        return [dec(a, depth + 1) for a in raw]

    def dec(node: Any, depth: int = 1) -> sp.Basic:
        if depth > limits.max_depth:
            raise fail(f"the expression is nested more than {limits.max_depth} deep", "...")
        if not isinstance(node, dict) or len(node) == 0:
            raise fail("expected an expression node (a JSON object)", node)
        if "int" in node:
            value = node["int"]
            if isinstance(value, bool) or not isinstance(value, int):
                raise fail("'int' must hold an integer", node)
            if abs(value) >= 10**limits.max_int_digits:
                raise fail(f"'int' has more than {limits.max_int_digits} digits", "...")
            return sp.Integer(value)
        if "rat" in node:
            value = node["rat"]
            if (not isinstance(value, list) or len(value) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                    or value[1] == 0
                    or max(abs(v) for v in value) >= 10**limits.max_int_digits):
                raise fail("'rat' must be [numerator, nonzero denominator] integers", node)
            return sp.Rational(value[0], value[1])
        if "float" in node:
            value = node["float"]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise fail("'float' must hold a number", node)
            if isinstance(value, int) and abs(value) >= 10**limits.max_int_digits:
                raise fail(f"'float' has more than {limits.max_int_digits} digits", "...")
            if not math.isfinite(value):
                raise fail("'float' must be finite", node)
            return sp.Float(float(value))
        if "bool" in node:
            if not isinstance(node["bool"], bool):
                raise fail("'bool' must be true or false", node)
            return sp.true if node["bool"] else sp.false
        if "const" in node:
            const = _CONSTANTS.get(node["const"]) if isinstance(node["const"], str) else None
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
            return sp.Piecewise(*[(dec(e, depth + 1), dec(c, depth + 1)) for e, c in pairs],
                                evaluate=False)
        if op == "neural":
            name = node.get("name")
            if not isinstance(name, str) or name not in neural:
                raise fail(f"unknown neural term {name!r}; declared: {sorted(neural)}", node)
            raw = node.get("args")
            if not isinstance(raw, list) or not raw:
                raise fail("'neural' needs a non-empty list 'args'", node)
            return neural[name](*[dec(a, depth + 1) for a in raw])
        builder = _BUILDERS.get(op)
        if builder is None:
            raise fail(f"unknown op {op!r}; allowed: {sorted([*_BUILDERS, 'piecewise', 'neural'])}",
                       node)
        return builder(*args_of(node, op, depth))

    expr = dec(data)
    try:
        check_expr_size(expr, where, limits)
    except ModelError as exc:
        raise SerializationError(str(exc)) from None
    return expr


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
    check_expr_size(value, where)
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
