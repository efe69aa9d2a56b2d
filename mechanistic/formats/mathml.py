"""SBML math to and from sympy, by walking libsbml's ``ASTNode`` tree.

Why a walker of our own: libsbml can print a formula and sympy can parse one, but parsing
text from an untrusted file means handing it to ``sympify`` (which evaluates). Here the tree
libsbml built from the MathML is visited node by node, under a depth and a node-count
limit, and every node becomes a sympy constructor call with ``evaluate=False`` (so a
``10^(10^10)`` in a file is a tree to refuse, not a number to compute). A node type the
model language has no counterpart for (``delay``, ``rateOf``, ``floor``, ...) is one
:class:`MathError` naming it; the caller adds the element id.

Writing goes the other way: every sympy node the model language allows has an AST node.
libsbml prints reals with 15 significant digits, so a float whose shortest form is longer
is written as an exact quotient of integers (a float is m/2^k), and reads back to the
same double.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import libsbml
import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.logic.boolalg import BooleanFalse, BooleanTrue

from mechanistic.errors import ModelError
from mechanistic.expr import EXPR_LIMITS

__all__ = ["MATH_LIMITS", "TIME", "MathError", "MathLimits", "ast_to_sympy", "evaluate_number",
           "function_definitions", "number_ast", "substitute", "sympy_to_ast"]

TIME = sp.Symbol("t")  # the model language's time symbol: SBML's csymbol time
_INT_LIMIT = 2**62  # libsbml stores integers as C long


class MathError(ModelError):
    """An SBML math tree the model language cannot express, or one beyond the limits."""


@dataclass(frozen=True)
class MathLimits:
    """Bounds on one math tree read from a file; the model language's own expression
    limits apply again when the result is declared (mechanistic/expr.py)."""

    max_depth: int = EXPR_LIMITS.max_depth
    max_nodes: int = EXPR_LIMITS.max_nodes
    max_calls: int = 20  # nesting of user-defined function calls


MATH_LIMITS = MathLimits()


# ------------------------------------------------------------------------------ writing
def _integer(value: int) -> libsbml.ASTNode:
    node = libsbml.ASTNode(libsbml.AST_INTEGER)
    node.setValue(int(value))
    return node


def _apply(kind: int, *children: libsbml.ASTNode) -> libsbml.ASTNode:
    node = libsbml.ASTNode(kind)
    for child in children:
        node.addChild(child)
    return node


def number_ast(value: float) -> libsbml.ASTNode:
    """A float as an AST that reads back to exactly the same double."""
    if not math.isfinite(value):
        raise MathError(f"the number {value!r} is not finite; SBML math needs finite numbers")
    if float(f"{value:.15g}") == value:
        node = libsbml.ASTNode(libsbml.AST_REAL)
        node.setValue(float(value))
        return node
    frac = Fraction(value)  # exact: the denominator is a power of two
    if abs(frac.numerator) < _INT_LIMIT and frac.denominator < _INT_LIMIT:
        return _apply(libsbml.AST_DIVIDE, _integer(frac.numerator), _integer(frac.denominator))
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, |m| in [0.5, 1)
    m = int(mantissa * 2**53)
    return _apply(libsbml.AST_TIMES, _integer(m),
                  _apply(libsbml.AST_POWER, _integer(2), _integer(exponent - 53)))


def sympy_to_ast(expr: sp.Basic, names: Mapping[str, str] | None = None) -> libsbml.ASTNode:
    """A model-language expression as an SBML AST; ``names`` maps a symbol's name to the
    SBML id that holds it (default: the same name). ``t`` is SBML's ``time``."""
    names = names or {}
    relational = {sp.StrictLessThan: libsbml.AST_RELATIONAL_LT,
                  sp.LessThan: libsbml.AST_RELATIONAL_LEQ,
                  sp.StrictGreaterThan: libsbml.AST_RELATIONAL_GT,
                  sp.GreaterThan: libsbml.AST_RELATIONAL_GEQ,
                  sp.Equality: libsbml.AST_RELATIONAL_EQ,
                  sp.Unequality: libsbml.AST_RELATIONAL_NEQ}
    functions = {sp.exp: libsbml.AST_FUNCTION_EXP, sp.log: libsbml.AST_FUNCTION_LN,
                 sp.sin: libsbml.AST_FUNCTION_SIN, sp.cos: libsbml.AST_FUNCTION_COS,
                 sp.tanh: libsbml.AST_FUNCTION_TANH, sp.Min: libsbml.AST_FUNCTION_MIN,
                 sp.Max: libsbml.AST_FUNCTION_MAX, sp.And: libsbml.AST_LOGICAL_AND,
                 sp.Or: libsbml.AST_LOGICAL_OR, sp.Not: libsbml.AST_LOGICAL_NOT}

    def enc(node: sp.Basic) -> libsbml.ASTNode:
        if isinstance(node, BooleanTrue):
            return libsbml.ASTNode(libsbml.AST_CONSTANT_TRUE)
        if isinstance(node, BooleanFalse):
            return libsbml.ASTNode(libsbml.AST_CONSTANT_FALSE)
        if isinstance(node, sp.Integer):
            value = int(node)
            return _integer(value) if abs(value) < _INT_LIMIT else number_ast(float(value))
        if isinstance(node, sp.Rational):
            return _apply(libsbml.AST_DIVIDE, enc(sp.Integer(node.p)), enc(sp.Integer(node.q)))
        if isinstance(node, sp.Float):
            return number_ast(float(node))
        if node is sp.pi:
            return libsbml.ASTNode(libsbml.AST_CONSTANT_PI)
        if node is sp.E:
            return libsbml.ASTNode(libsbml.AST_CONSTANT_E)
        if isinstance(node, sp.Symbol):
            if node.name == TIME.name:
                out = libsbml.ASTNode(libsbml.AST_NAME_TIME)
                out.setName("time")
                return out
            out = libsbml.ASTNode(libsbml.AST_NAME)
            out.setName(names.get(node.name, node.name))
            return out
        if isinstance(node, sp.Add):
            return _apply(libsbml.AST_PLUS, *(enc(a) for a in node.args))
        if isinstance(node, sp.Mul):
            return _apply(libsbml.AST_TIMES, *(enc(a) for a in node.args))
        if isinstance(node, sp.Pow):
            return _apply(libsbml.AST_POWER, enc(node.args[0]), enc(node.args[1]))
        if isinstance(node, sp.Heaviside):
            x = enc(node.args[0])
            h0 = node.args[1] if len(node.args) > 1 else sp.Rational(1, 2)
            zero = _integer(0)
            return _apply(libsbml.AST_FUNCTION_PIECEWISE,
                          _integer(1), _apply(libsbml.AST_RELATIONAL_GT, x, zero.deepCopy()),
                          _integer(0), _apply(libsbml.AST_RELATIONAL_LT, x.deepCopy(),
                                              zero.deepCopy()),
                          enc(h0))
        if isinstance(node, sp.Piecewise):
            out = libsbml.ASTNode(libsbml.AST_FUNCTION_PIECEWISE)
            for value, cond in node.args:
                out.addChild(enc(value))
                if cond is not sp.true:
                    out.addChild(enc(cond))
            return out
        if isinstance(node, AppliedUndef):
            raise MathError(f"the neural term {type(node).__name__}() has no SBML form; "
                            "distil it to a closed form first")
        kind = relational.get(type(node)) or functions.get(type(node))
        if kind is not None:
            return _apply(kind, *(enc(a) for a in node.args))
        raise MathError(f"{type(node).__name__} ({node}) has no SBML form")

    return enc(sp.sympify(expr))


# ------------------------------------------------------------------------------ reading
def _add(*args: sp.Basic) -> sp.Basic:
    return args[0] if len(args) == 1 else sp.Add(*args, evaluate=False)


def _mul(*args: sp.Basic) -> sp.Basic:
    return args[0] if len(args) == 1 else sp.Mul(*args, evaluate=False)


def _neg(x: sp.Basic) -> sp.Basic:
    return sp.Mul(sp.Integer(-1), x, evaluate=False)


def _div(a: sp.Basic, b: sp.Basic) -> sp.Basic:
    if isinstance(a, sp.Integer) and isinstance(b, sp.Integer) and b != 0:
        return sp.Rational(int(a), int(b))
    return sp.Mul(a, sp.Pow(b, sp.Integer(-1), evaluate=False), evaluate=False)


def _log(x: sp.Basic) -> sp.Basic:
    return sp.log(x, evaluate=False)


FunctionDef = tuple[list[str], libsbml.ASTNode]


def ast_to_sympy(
    root: libsbml.ASTNode | None,
    symbol: Callable[[str], sp.Basic],
    functions: Mapping[str, FunctionDef] | None = None,
    limits: MathLimits = MATH_LIMITS,
) -> sp.Basic:
    """The sympy tree of one SBML math element.

    ``symbol(id)`` resolves an identifier (raising MathError for an unknown one);
    ``functions`` maps a function definition's id to its argument names and body, which
    are inlined at each call. Raises :class:`MathError` for anything unsupported.
    """
    if root is None:
        raise MathError("the element has no math")
    functions = functions or {}
    count = [0]
    t = libsbml
    unary = {t.AST_FUNCTION_EXP: lambda x: sp.exp(x, evaluate=False),
             t.AST_FUNCTION_LN: _log,
             t.AST_FUNCTION_SIN: lambda x: sp.sin(x, evaluate=False),
             t.AST_FUNCTION_COS: lambda x: sp.cos(x, evaluate=False),
             t.AST_FUNCTION_TANH: lambda x: sp.tanh(x, evaluate=False),
             t.AST_FUNCTION_TAN: lambda x: _div(sp.sin(x, evaluate=False),
                                                sp.cos(x, evaluate=False)),
             t.AST_FUNCTION_SINH: lambda x: _div(_add(sp.exp(x, evaluate=False),
                                                      _neg(sp.exp(_neg(x), evaluate=False))),
                                                 sp.Integer(2)),
             t.AST_FUNCTION_COSH: lambda x: _div(_add(sp.exp(x, evaluate=False),
                                                      sp.exp(_neg(x), evaluate=False)),
                                                 sp.Integer(2)),
             t.AST_FUNCTION_ABS: lambda x: sp.Max(x, _neg(x), evaluate=False),
             t.AST_LOGICAL_NOT: lambda x: sp.Not(x, evaluate=False)}
    relational = {t.AST_RELATIONAL_LT: sp.StrictLessThan, t.AST_RELATIONAL_LEQ: sp.LessThan,
                  t.AST_RELATIONAL_GT: sp.StrictGreaterThan,
                  t.AST_RELATIONAL_GEQ: sp.GreaterThan, t.AST_RELATIONAL_EQ: sp.Equality,
                  t.AST_RELATIONAL_NEQ: sp.Unequality}
    unsupported = {t.AST_FUNCTION_DELAY: "delay()", t.AST_FUNCTION_FLOOR: "floor()",
                   t.AST_FUNCTION_CEILING: "ceiling()", t.AST_FUNCTION_FACTORIAL: "factorial()",
                   t.AST_LOGICAL_XOR: "xor", t.AST_LAMBDA: "a lambda outside a function "
                   "definition"}
    for name in ("AST_FUNCTION_RATE_OF", "AST_FUNCTION_REM", "AST_FUNCTION_QUOTIENT",
                 "AST_LOGICAL_IMPLIES"):
        if hasattr(t, name):
            unsupported[getattr(t, name)] = name[len("AST_FUNCTION_"):].lower() + "()" \
                if name.startswith("AST_FUNCTION") else "implies"

    def number(value: float) -> sp.Basic:
        if not math.isfinite(value) or abs(value) > 1e300:
            raise MathError(f"the number {value!r} is not finite (or beyond 1e300)")
        return sp.Float(value)

    def integer(value: int) -> sp.Basic:
        if abs(value) >= 10**EXPR_LIMITS.max_int_digits:
            raise MathError(f"an integer of more than {EXPR_LIMITS.max_int_digits} digits")
        return sp.Integer(value)

    def visit(node: libsbml.ASTNode, depth: int, env: Mapping[str, sp.Basic],
              calls: int) -> sp.Basic:
        count[0] += 1
        if count[0] > limits.max_nodes:
            raise MathError(f"the math has more than {limits.max_nodes} nodes")
        if depth > limits.max_depth:
            raise MathError(f"the math is nested more than {limits.max_depth} deep")
        kind = node.getType()
        n = node.getNumChildren()
        kids = lambda: [visit(node.getChild(i), depth + 1, env, calls)  # noqa: E731
                        for i in range(n)]
        if kind == t.AST_INTEGER:
            return integer(node.getInteger())
        if kind in (t.AST_REAL, t.AST_REAL_E):
            return number(node.getReal())
        if kind == t.AST_RATIONAL:
            den = node.getDenominator()
            if den == 0:
                raise MathError("a rational number with denominator 0")
            return sp.Rational(integer(node.getNumerator()), integer(den))
        if kind == t.AST_NAME:
            name = node.getName()
            return env[name] if name in env else symbol(name)
        if kind == t.AST_NAME_TIME:
            return TIME
        if kind == t.AST_NAME_AVOGADRO:
            return sp.Float(6.02214076e23)
        if kind == t.AST_CONSTANT_PI:
            return sp.pi
        if kind == t.AST_CONSTANT_E:
            return sp.E
        if kind == t.AST_CONSTANT_TRUE:
            return sp.true
        if kind == t.AST_CONSTANT_FALSE:
            return sp.false
        if kind in unsupported:
            raise MathError(f"{unsupported[kind]} is not in the model language")
        if kind == t.AST_PLUS:
            args = kids()
            return _add(*args) if args else sp.Integer(0)
        if kind == t.AST_TIMES:
            args = kids()
            return _mul(*args) if args else sp.Integer(1)
        if kind == t.AST_MINUS:
            args = kids()
            if len(args) == 1:
                return _neg(args[0])
            if len(args) == 2:
                return _add(args[0], _neg(args[1]))
            raise MathError(f"minus with {len(args)} arguments")
        if kind == t.AST_DIVIDE:
            args = kids()
            if len(args) != 2:
                raise MathError(f"divide with {len(args)} arguments")
            return _div(*args)
        if kind in (t.AST_POWER, t.AST_FUNCTION_POWER):
            args = kids()
            if len(args) != 2:
                raise MathError(f"power with {len(args)} arguments")
            return sp.Pow(args[0], args[1], evaluate=False)
        if kind == t.AST_FUNCTION_ROOT:
            args = kids()
            if len(args) == 1:
                return sp.Pow(args[0], sp.Rational(1, 2), evaluate=False)
            if len(args) == 2:
                return sp.Pow(args[1], _div(sp.Integer(1), args[0]), evaluate=False)
            raise MathError(f"root with {len(args)} arguments")
        if kind == t.AST_FUNCTION_LOG:
            args = kids()
            base, x = (sp.Integer(10), args[0]) if len(args) == 1 else (args[0], args[1])
            if len(args) > 2:
                raise MathError(f"log with {len(args)} arguments")
            return _div(_log(x), _log(base))
        if kind in unary:
            args = kids()
            if len(args) != 1:
                raise MathError(f"{node.getName() or 'a function'} needs one argument")
            return unary[kind](args[0])
        if kind in (t.AST_FUNCTION_MIN, t.AST_FUNCTION_MAX):
            args = kids()
            if not args:
                raise MathError("min/max with no arguments")
            if len(args) == 1:
                return args[0]
            return (sp.Min if kind == t.AST_FUNCTION_MIN else sp.Max)(*args, evaluate=False)
        if kind in (t.AST_LOGICAL_AND, t.AST_LOGICAL_OR):
            args = kids()
            if not args:
                return sp.true if kind == t.AST_LOGICAL_AND else sp.false
            if len(args) == 1:
                return args[0]
            return (sp.And if kind == t.AST_LOGICAL_AND else sp.Or)(*args, evaluate=False)
        if kind in relational:
            args = kids()
            if len(args) != 2:
                raise MathError(f"a comparison with {len(args)} arguments (only two are "
                                "supported)")
            return relational[kind](args[0], args[1], evaluate=False)
        if kind == t.AST_FUNCTION_PIECEWISE:
            args = kids()
            pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
            if len(args) % 2:
                pairs.append((args[-1], sp.true))
            if not pairs:
                raise MathError("piecewise with no pieces")
            return sp.Piecewise(*pairs, evaluate=False)
        if kind == t.AST_FUNCTION:
            name = node.getName()
            if name not in functions:
                raise MathError(f"calls {name!r}, which is not a function definition of the "
                                "model")
            if calls >= limits.max_calls:
                raise MathError(f"function calls nested more than {limits.max_calls} deep "
                                "(a recursive definition?)")
            params, body = functions[name]
            args = kids()
            if len(args) != len(params):
                raise MathError(f"{name}() takes {len(params)} arguments, got {len(args)}")
            return visit(body, depth + 1, dict(zip(params, args, strict=True)), calls + 1)
        raise MathError(f"the math node {node.getName() or kind!r} (type {kind}) is not in "
                        "the model language")

    return visit(root, 1, {}, 0)


def substitute(expr: sp.Basic, mapping: Mapping[sp.Symbol, sp.Basic],
               limits: MathLimits = MATH_LIMITS) -> sp.Basic:
    """``expr`` with symbols replaced, rebuilt without evaluation (``xreplace`` would
    evaluate, and a substituted number could then be raised to a huge power)."""
    count = [0]

    def visit(node: sp.Basic, depth: int) -> sp.Basic:
        count[0] += 1
        if count[0] > limits.max_nodes * 4 or depth > limits.max_depth * 3:
            raise MathError("inlining the model's assignment rules makes an expression too "
                            "large")
        if isinstance(node, sp.Symbol):
            return mapping.get(node, node)
        if not node.args:
            return node
        args = [visit(a, depth + 1) for a in node.args]
        if isinstance(node, sp.Piecewise):
            return sp.Piecewise(*args, evaluate=False)
        if isinstance(node, sp.core.containers.Tuple):
            return sp.Tuple(*args)
        return node.func(*args, evaluate=False)

    return visit(expr, 1)


def function_definitions(model: libsbml.Model) -> dict[str, FunctionDef]:
    """Each function definition's id, argument names and body (lambda children)."""
    out: dict[str, FunctionDef] = {}
    for i in range(model.getNumFunctionDefinitions()):
        fd = model.getFunctionDefinition(i)
        lam = fd.getMath()
        if lam is None or lam.getType() != libsbml.AST_LAMBDA or lam.getNumChildren() < 1:
            raise MathError(f"function definition {fd.getId()!r} has no lambda body")
        k = lam.getNumChildren()
        names = [lam.getChild(j).getName() for j in range(k - 1)]
        out[fd.getId()] = (names, lam.getChild(k - 1))
    return out


def evaluate_number(expr: sp.Basic, values: Mapping[sp.Symbol, float], where: str) -> float:
    """A constant expression's value (initial assignments, event times), computed by
    sympy's numeric evaluation of the tree (no text is evaluated)."""
    try:
        value = complex(sp.N(substitute(expr, {k: sp.Float(v) for k, v in values.items()})))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        value = complex(math.nan)
    if value.imag != 0 or not math.isfinite(value.real):
        raise MathError(f"{where}: the value {expr} is not a finite number")
    return float(value.real)

