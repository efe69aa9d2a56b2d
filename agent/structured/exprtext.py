"""Expression text from an LLM's JSON answer, read into sympy without evaluating it.

A structured answer writes rates as text ("beta * S * I / N"). The host must turn that
text into an expression without ``eval``, ``exec`` or ``sympify`` (which evaluates strings),
so the text is *parsed* by Python's own parser (``ast.parse(mode="eval")`` builds a tree
and runs nothing) and the tree is walked node by node against a whitelist: numbers,
declared names, ``+ - * / **``, unary minus, the model language's functions, and
comparisons inside ``Piecewise``. Every node is rebuilt with a sympy constructor. Anything
else (attributes, subscripts, lambdas, strings, ``^``, an unknown function) is an
:class:`ExprTextError` whose message says what is allowed, so a repair prompt can quote it.

Limits come before the parser sees the text (its length and bracket depth) and while the
tree is walked (node count, literal size, powers), so a hostile answer costs the host
little: the model's own ``validate_expr`` then bounds the result again.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Collection

import sympy as sp

__all__ = ["FUNCTIONS", "MAX_EXPR_CHARS", "ExprTextError", "parse_expression"]

MAX_EXPR_CHARS = 400        # a rate an LLM writes is one line
MAX_BRACKET_DEPTH = 20      # Python's parser refuses 200; sympy would recurse long before
MAX_NODES = 300
MAX_LITERAL = 1e15          # bigger literals are typos or attacks
MAX_POWER = 64              # the model language's polynomial-degree bound

FUNCTIONS: dict[str, tuple[object, int, int]] = {
    # name: (sympy constructor, least, most arguments)
    "exp": (sp.exp, 1, 1), "log": (sp.log, 1, 1), "sqrt": (sp.sqrt, 1, 1),
    "tanh": (sp.tanh, 1, 1), "sin": (sp.sin, 1, 1), "cos": (sp.cos, 1, 1),
    "Min": (sp.Min, 2, 8), "Max": (sp.Max, 2, 8), "Heaviside": (sp.Heaviside, 1, 1),
}
_BINARY = {ast.Add: sp.Add, ast.Mult: sp.Mul}
_COMPARE = {ast.Lt: sp.StrictLessThan, ast.LtE: sp.LessThan, ast.Gt: sp.StrictGreaterThan,
            ast.GtE: sp.GreaterThan}
_ALLOWED_TEXT = ("numbers, declared names, t, + - * / **, parentheses and the functions "
                 + ", ".join([*FUNCTIONS, "Piecewise"]))


class ExprTextError(ValueError):
    """The text is not an expression of the model language; the message says why."""


def parse_expression(text: object, names: Collection[str], what: str = "expression"
                     ) -> sp.Expr:
    """``text`` as a sympy expression over ``names`` (and ``t``), or ExprTextError.

    A number (an LLM may write 5 instead of "5") is accepted as that number."""
    if isinstance(text, bool):
        raise ExprTextError(f"{what}: expected an expression, got {text!r}")
    if isinstance(text, int | float):
        return _number(text, what)
    if not isinstance(text, str):
        raise ExprTextError(f"{what}: expected an expression as text, got "
                            f"{type(text).__name__}")
    text = text.strip()
    if not text:
        raise ExprTextError(f"{what}: is empty; write an expression such as 'k * X'")
    if len(text) > MAX_EXPR_CHARS:
        raise ExprTextError(f"{what}: {len(text)} characters is longer than the limit of "
                            f"{MAX_EXPR_CHARS}")
    depth = 0
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if depth > MAX_BRACKET_DEPTH:
            raise ExprTextError(f"{what}: brackets nested deeper than {MAX_BRACKET_DEPTH}")
    if "^" in text:
        raise ExprTextError(f"{what}: '^' is not a power in this language; write x**2")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        message = getattr(exc, "msg", None) or str(exc)
        raise ExprTextError(f"{what}: {text!r} is not an expression ({message}); it may "
                            f"use {_ALLOWED_TEXT}") from None
    walker = _Walker(set(names) | {"t"}, what, text)
    return walker.build(tree.body)


def _number(value: float | int, what: str) -> sp.Expr:
    if not math.isfinite(value) or abs(value) > MAX_LITERAL:
        raise ExprTextError(f"{what}: the number {value!r} is not finite or beyond "
                            f"{MAX_LITERAL:g}")
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Integer(int(value)) if float(value).is_integer() else sp.Float(repr(value))


class _Walker:
    """One walk over one parsed tree, counting nodes as it goes."""

    def __init__(self, names: set[str], what: str, text: str) -> None:
        self.names, self.what, self.text = names, what, text
        self.count = 0

    def fail(self, message: str) -> ExprTextError:
        return ExprTextError(f"{self.what}: {message} (in {self.text!r})")

    def build(self, node: ast.AST) -> sp.Expr:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(f"more than {MAX_NODES} parts")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise self.fail(f"{node.value!r} is not a number; words are not expressions, "
                                f"use declared names")
            return _number(node.value, self.what)
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                known = ", ".join(sorted(self.names))
                raise self.fail(f"unknown name {node.id!r}; declared names are {known}")
            return sp.Symbol(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = self.build(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            return self.binary(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Compare):
            raise self.fail("a comparison is allowed only as a Piecewise condition")
        raise self.fail(f"{type(node).__name__} is not allowed; an expression may use "
                        f"{_ALLOWED_TEXT}")

    def binary(self, node: ast.BinOp) -> sp.Expr:
        left, right = self.build(node.left), self.build(node.right)
        op = type(node.op)
        if op in _BINARY:
            return _BINARY[op](left, right)
        if op is ast.Sub:
            return sp.Add(left, sp.Mul(sp.Integer(-1), right))
        if op is ast.Div:
            if right == 0:
                raise self.fail("division by zero")
            return sp.Mul(left, sp.Pow(right, sp.Integer(-1)))
        if op is ast.Pow:
            if right.is_Number and abs(float(right)) > MAX_POWER:
                raise self.fail(f"a power above {MAX_POWER} is not allowed")
            if left.is_Number and right.is_Number:
                value = float(left) ** float(right) if float(left) > 0 or \
                    float(right).is_integer() else math.nan
                return _number(value, self.what)
            return sp.Pow(left, right)
        raise self.fail(f"the operator {type(node.op).__name__} is not allowed; use + - * / **")

    def call(self, node: ast.Call) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail("only the model language's functions may be called: "
                            + ", ".join([*FUNCTIONS, "Piecewise"]))
        name = node.func.id
        if node.keywords:
            raise self.fail(f"{name}() takes no keyword arguments")
        if name == "Piecewise":
            return self.piecewise(node)
        if name not in FUNCTIONS:
            raise self.fail(f"unknown function {name!r}; the functions are "
                            + ", ".join([*FUNCTIONS, "Piecewise"]))
        build, least, most = FUNCTIONS[name]
        if not least <= len(node.args) <= most:
            raise self.fail(f"{name}() takes {least} to {most} arguments, got {len(node.args)}")
        args = [self.build(a) for a in node.args]
        return build(*args)  # type: ignore[operator]

    def piecewise(self, node: ast.Call) -> sp.Expr:
        if not 1 <= len(node.args) <= 8:
            raise self.fail("Piecewise takes 1 to 8 (value, condition) pairs")
        pairs = []
        for arg in node.args:
            if not isinstance(arg, ast.Tuple) or len(arg.elts) != 2:
                raise self.fail("each Piecewise argument is a pair (value, condition)")
            pairs.append((self.build(arg.elts[0]), self.condition(arg.elts[1])))
        if pairs[-1][1] is not sp.true:
            raise self.fail("the last Piecewise pair needs the condition True")
        return sp.Piecewise(*pairs)

    def condition(self, node: ast.AST) -> sp.Basic:
        self.count += 1
        if isinstance(node, ast.Constant) and node.value is True:
            return sp.true
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and \
                type(node.ops[0]) in _COMPARE:
            return _COMPARE[type(node.ops[0])](self.build(node.left),
                                               self.build(node.comparators[0]))
        raise self.fail("a Piecewise condition is one comparison (<, <=, >, >=) or True")
