"""Compile sympy expressions into torch functions by walking the tree.

No code is generated and nothing is ``exec``-ed: each node becomes a small closure over
torch operations, and common subexpressions are evaluated once (sympy's ``cse``). The
per-node Python cost is a few microseconds per call; with batches of thousands of
parameter sets the tensor arithmetic dominates. Everything is differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp
import torch
from sympy.core.function import AppliedUndef
from sympy.logic.boolalg import BooleanFalse, BooleanTrue

from mechanistic.errors import ModelError

__all__ = ["Env", "Program", "compile_program"]

Env = dict[str, Any]
Fn = Callable[[Env], Any]
NeuralFn = Callable[[str, Sequence[Any]], Any]


def _fold(fns: list[Fn], op: Callable[[Any, Any], Any]) -> Fn:
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda env: op(a(env), b(env))

    def run(env: Env) -> Any:
        acc = fns[0](env)
        for fn in fns[1:]:
            acc = op(acc, fn(env))
        return acc

    return run


def _as_tensor(x: Any, like: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    ref = like if isinstance(like, torch.Tensor) else None
    return torch.as_tensor(
        x, dtype=ref.dtype if ref is not None else torch.float64,
        device=ref.device if ref is not None else None,
    )


def _minimum(a: Any, b: Any) -> Any:
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        return min(a, b)
    return torch.minimum(_as_tensor(a, b), _as_tensor(b, a))


def _maximum(a: Any, b: Any) -> Any:
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        return max(a, b)
    return torch.maximum(_as_tensor(a, b), _as_tensor(b, a))


def _where(cond: Any, a: Any, b: Any) -> Any:
    if isinstance(cond, bool):
        return a if cond else b
    return torch.where(cond, _as_tensor(a, b), _as_tensor(b, a))


def _unary(fn: Callable[[torch.Tensor], torch.Tensor], scalar: Callable[[float], float]) -> Any:
    def apply(x: Any) -> Any:
        return fn(x) if isinstance(x, torch.Tensor) else scalar(x)

    return apply


# Elementwise functions: torch for tensors, math for plain numbers (constant subtrees).
_UNARY: dict[type, Any] = {
    sp.exp: _unary(torch.exp, math.exp),
    sp.log: _unary(torch.log, lambda v: math.log(v) if v > 0 else float("nan")),
    sp.sin: _unary(torch.sin, math.sin),
    sp.cos: _unary(torch.cos, math.cos),
    sp.tanh: _unary(torch.tanh, math.tanh),
}


def _pow(base: Fn, exponent: sp.Basic, compile_node: Callable[[sp.Basic], Fn]) -> Fn:
    if exponent == 2:
        return lambda env: (lambda b: b * b)(base(env))
    if exponent == -1:
        return lambda env: 1.0 / base(env)
    if exponent == sp.Rational(1, 2):
        return lambda env: (lambda b: torch.sqrt(b) if isinstance(b, torch.Tensor)
                            else b ** 0.5)(base(env))
    if exponent.is_Number:
        e = float(exponent)
        return lambda env: base(env) ** e
    exp_fn = compile_node(exponent)
    return lambda env: base(env) ** exp_fn(env)


class _Compiler:
    def __init__(self, neural: NeuralFn | None) -> None:
        self.neural = neural

    def node(self, expr: sp.Basic) -> Fn:
        if isinstance(expr, BooleanTrue):
            return lambda env: True
        if isinstance(expr, BooleanFalse):
            return lambda env: False
        if expr.is_Number or expr in (sp.pi, sp.E):
            value = float(expr)
            return lambda env: value
        if isinstance(expr, sp.Symbol):
            name = expr.name
            return lambda env: env[name]
        if isinstance(expr, sp.Add):
            return _fold([self.node(a) for a in expr.args], lambda a, b: a + b)
        if isinstance(expr, sp.Mul):
            num: list[sp.Basic] = []
            den: list[sp.Basic] = []
            for a in expr.args:
                if a.is_Pow and a.exp.is_Number and a.exp < 0:
                    den.append(sp.Pow(a.base, -a.exp))
                else:
                    num.append(a)
            top = _fold([self.node(a) for a in num], lambda a, b: a * b) if num else None
            if not den:
                assert top is not None
                return top
            bottom = _fold([self.node(a) for a in den], lambda a, b: a * b)
            if top is None:
                return lambda env: 1.0 / bottom(env)
            return lambda env: top(env) / bottom(env)
        if isinstance(expr, sp.Pow):
            return _pow(self.node(expr.base), expr.exp, self.node)
        unary = _UNARY.get(type(expr))
        if unary is not None:
            arg = self.node(expr.args[0])
            return lambda env: unary(arg(env))
        if isinstance(expr, sp.Min | sp.Max):
            op = _minimum if isinstance(expr, sp.Min) else _maximum
            return _fold([self.node(a) for a in expr.args], op)
        if isinstance(expr, sp.Heaviside):
            x = self.node(expr.args[0])
            h0 = float(expr.args[1]) if len(expr.args) > 1 else 0.5

            def heaviside(env: Env) -> Any:
                v = x(env)
                if not isinstance(v, torch.Tensor):
                    return 1.0 if v > 0 else (0.0 if v < 0 else h0)
                return torch.where(v > 0, 1.0, torch.where(v < 0, 0.0, h0)).to(v.dtype)

            return heaviside
        if isinstance(expr, sp.Piecewise):
            pieces = [(self.node(e), self.node(c)) for e, c in expr.args]

            def piecewise(env: Env) -> Any:
                out: Any = float("nan")
                for value, cond in reversed(pieces):
                    out = _where(cond(env), value(env), out)
                return out

            return piecewise
        if isinstance(expr, sp.core.relational.Relational):
            lhs, rhs = self.node(expr.lhs), self.node(expr.rhs)
            cmp = {
                sp.StrictLessThan: lambda a, b: a < b,
                sp.LessThan: lambda a, b: a <= b,
                sp.StrictGreaterThan: lambda a, b: a > b,
                sp.GreaterThan: lambda a, b: a >= b,
                sp.Equality: lambda a, b: a == b,
                sp.Unequality: lambda a, b: a != b,
            }[type(expr)]
            return lambda env: cmp(lhs(env), rhs(env))
        if isinstance(expr, sp.And | sp.Or):
            parts = [self.node(a) for a in expr.args]
            if isinstance(expr, sp.And):
                return _fold(parts, lambda a, b: a & b)
            return _fold(parts, lambda a, b: a | b)
        if isinstance(expr, sp.Not):
            inner = self.node(expr.args[0])
            return lambda env: (lambda v: ~v if isinstance(v, torch.Tensor) else not v)(
                inner(env))
        if isinstance(expr, AppliedUndef):
            if self.neural is None:
                raise ModelError(f"neural term {type(expr).__name__} has no network attached")
            name = type(expr).__name__
            args = [self.node(a) for a in expr.args]
            neural = self.neural
            return lambda env: neural(name, [a(env) for a in args])
        raise ModelError(f"cannot compile {type(expr).__name__} ({expr}) to torch")


class Program:
    """Evaluates a list of expressions at once, sharing common subexpressions."""

    def __init__(self, steps: list[tuple[str, Fn]], outputs: list[Fn]) -> None:
        self._steps = steps
        self._outputs = outputs

    def __call__(self, env: Mapping[str, Any]) -> list[Any]:
        local = dict(env)
        for name, fn in self._steps:
            local[name] = fn(local)
        return [fn(local) for fn in self._outputs]


def compile_program(
    exprs: Sequence[sp.Basic],
    neural: NeuralFn | None = None,
    substitutions: Mapping[sp.Symbol, float] | None = None,
) -> Program:
    """Compile expressions into one :class:`Program` (inputs are read by symbol name)."""
    exprs = [sp.sympify(e) for e in exprs]
    if substitutions:
        exprs = [sp.sympify(e.xreplace(dict(substitutions))) for e in exprs]
    taken = {s.name for e in exprs for s in e.free_symbols}
    symbols = sp.numbered_symbols("_cse", exclude=[sp.Symbol(n) for n in taken])
    replacements, reduced = sp.cse(exprs, symbols=symbols, optimizations=None)
    compiler = _Compiler(neural)
    steps = [(sym.name, compiler.node(value)) for sym, value in replacements]
    return Program(steps, [compiler.node(e) for e in reduced])
