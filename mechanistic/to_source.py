"""Render a :class:`Model` back into a model-language module.

Refinements that work on the model itself (not on a proposer's own spec), such as the
symbolic distillation of a neural term, edit a ``Model`` rebuilt from its JSON and must hand
the search a *module*: candidates are source code, run in the sandbox like any other. This
module writes that source. Running it reproduces the model exactly: the model JSON of the
rendered module equals the original's, node for node (``tests/mechanistic/test_to_source.py``).

Why a printer of our own rather than ``str(expr)``: sympy's string printer writes a rational
as ``1/7`` and a float with 15 digits, which Python reads back as a different float; and it
names functions (``Eq``, ``pi``) that the model language does not export. The printer here
writes floats with ``repr`` (exact), rationals as ``Rational(p, q)``, ``E`` as ``exp(1)``, a
neural term by the variable its declaration returned, and symbols by the Python variable that
holds them (a declared name that would shadow an import gets a trailing underscore).
Nothing here evaluates text: the output is only ever executed in the sandbox.
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.str import StrPrinter

from mechanistic.model import Model
from mechanistic.noise import Noise
from mechanistic.priors import Prior

__all__ = ["model_to_source"]

# Functions the DSL exports from ``mechanistic`` (sympy's own objects).
_DSL_FUNCTIONS = ("Heaviside", "Max", "Min", "Piecewise", "cos", "exp", "log", "sin", "sqrt",
                  "tanh")
# Sympy names a few rare expression nodes need, imported from sympy only when used.
_SYMPY_EXTRAS = ("Eq", "Ne", "Rational", "pi")
_PRIOR_NAMES = ("Fixed", "HalfNormal", "LogNormal", "LogUniform", "Normal", "Uniform")
_NOISE_NAMES = ("Gaussian", "LogNormalNoise", "NegBinomial", "Poisson", "PropAdd")
_RESERVED = {"Model", *_DSL_FUNCTIONS, *_SYMPY_EXTRAS, *_PRIOR_NAMES, *_NOISE_NAMES,
             "mechanistic", "sympy", "t"}


class _DSLPrinter(StrPrinter):
    """A sympy string printer whose output, executed next to the module's declarations,
    rebuilds the very same expression tree."""

    def __init__(self, names: Mapping[str, str], neural: Mapping[str, tuple[sp.Basic, ...]],
                 time_var: str) -> None:
        super().__init__({"order": None})
        self._names = names
        self._neural = neural
        self._time = time_var
        self.used: set[str] = set()

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        if expr.name == "t":
            return self._time
        return self._names.get(expr.name, expr.name)

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))

    def _print_Rational(self, expr: sp.Rational) -> str:
        self.used.add("Rational")
        return f"Rational({expr.p}, {expr.q})"

    def _print_Half(self, expr: sp.Rational) -> str:
        return self._print_Rational(expr)

    def _print_Exp1(self, expr: sp.Basic) -> str:
        self.used.add("exp")
        return "exp(1)"

    def _print_Pi(self, expr: sp.Basic) -> str:
        self.used.add("pi")
        return "pi"

    def _print_Equality(self, expr: sp.Basic) -> str:
        self.used.add("Eq")
        return f"Eq({self._print(expr.lhs)}, {self._print(expr.rhs)})"

    def _print_Unequality(self, expr: sp.Basic) -> str:
        self.used.add("Ne")
        return f"Ne({self._print(expr.lhs)}, {self._print(expr.rhs)})"

    def _print_Function(self, expr: sp.Basic) -> str:
        if isinstance(expr, AppliedUndef):
            name = type(expr).__name__
            var = self._names.get(name, name)
            if tuple(expr.args) == tuple(self._neural.get(name, ())):
                return var
            return f"{var}.func({', '.join(self._print(a) for a in expr.args)})"
        func = expr.func.__name__
        if func in _DSL_FUNCTIONS:
            self.used.add(func)
        return super()._print_Function(expr)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == sp.S.Half or expr.exp == -sp.S.Half:
            self.used.add("sqrt")
        return super()._print_Pow(expr, rational)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        self.used.add("Piecewise")
        pairs = ", ".join(f"({self._print(e)}, {self._print(c)})" for e, c in expr.args)
        return f"Piecewise({pairs})"

    def _print_MinMaxBase(self, expr: sp.Basic) -> str:
        name = type(expr).__name__
        self.used.add(name)
        return f"{name}({', '.join(self._print(a) for a in expr.args)})"

    _print_Min = _print_MinMaxBase
    _print_Max = _print_MinMaxBase

    def _print_Heaviside(self, expr: sp.Basic) -> str:
        self.used.add("Heaviside")
        args = expr.args
        if len(args) == 2 and args[1] == sp.S.Half:  # the default H(0) = 1/2
            args = args[:1]
        return f"Heaviside({', '.join(self._print(a) for a in args)})"

    def _print_BooleanTrue(self, expr: sp.Basic) -> str:
        return "True"

    def _print_BooleanFalse(self, expr: sp.Basic) -> str:
        return "False"


def _identifiers(model: Model) -> tuple[dict[str, str], str]:
    """The Python variable of every declared name, and the model's own variable.

    A declared name is its own variable unless it would shadow an import (``exp``,
    ``Model``) or is a Python keyword (neural names are only checked to be identifiers);
    then it gets trailing underscores until it is free."""
    declared = [*model.states_, *model.params_, *model.constants_, *model.controls_,
                *model.neural_]
    taken = set(_RESERVED)
    out: dict[str, str] = {}
    for name in declared:
        var = name
        while var in taken or keyword.iskeyword(var) or (var in declared and var != name):
            var += "_"
        taken.add(var)
        out[name] = var
    model_var = "m"
    while model_var in taken or model_var in declared:
        model_var += "_"
    return out, model_var


def _literal(value: Any) -> str:
    """A prior argument as written: ints stay ints so the JSON is the same."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _prior(prior: Prior) -> str:
    args = ", ".join(_literal(getattr(prior, f.name)) for f in fields(prior))  # type: ignore[arg-type]
    return f"{type(prior).__name__}({args})"


def _kwargs(doc: str, unit: str) -> list[str]:
    out = []
    if doc:
        out.append(f"doc={doc!r}")
    if unit:
        out.append(f"unit={unit!r}")
    return out


def _call(callee: str, args: list[str], target: str | None = None) -> str:
    """``target = callee(args)`` on one line, or one argument a line past 100 characters."""
    head = f"{target} = {callee}(" if target else f"{callee}("
    line = head + ", ".join(args) + ")"
    if len(line) <= 100:
        return line
    return head + "\n" + "".join(f"    {a},\n" for a in args) + ")"


def model_to_source(model: Model) -> str:
    """A model-language module that declares ``model`` exactly (same model JSON).

    Declarations come in the order the JSON lists them (states, parameters, constants,
    controls, neural terms, flows, rate terms, initial conditions, observables), which is
    also an order in which every name is declared before it is read. A declaration longer
    than 100 characters gets one argument a line.
    """
    names, mv = _identifiers(model)
    printer = _DSLPrinter(names, {n: tuple(term.inputs) for n, term in model.neural_.items()},
                          f"{mv}.t")

    def ex(expr: Any) -> str:
        return printer.doprint(sp.sympify(expr))

    def var(name: str | None) -> str:
        return "None" if name is None else names[name]

    head = [repr(model.name)]
    if model.time_unit != "time":
        head.append(f"time_unit={model.time_unit!r}")
    if model.doc:
        head.append(f"doc={model.doc!r}")
    body = [_call("Model", head, mv)]
    for s in model.states_.values():
        body.append(_call(f"{mv}.state", [repr(s.name), *_kwargs(s.doc, s.unit)], var(s.name)))
    for p in model.params_.values():
        body.append(_call(f"{mv}.param", [repr(p.name), _prior(p.prior),
                                          *_kwargs(p.doc, p.unit)], var(p.name)))
    for c in model.constants_.values():
        body.append(_call(f"{mv}.constant", [repr(c.name), repr(c.value),
                                             *_kwargs(c.doc, c.unit)], var(c.name)))
    for c in model.controls_.values():
        body.append(_call(f"{mv}.control", [repr(c.name), f"default={c.default!r}",
                                            *_kwargs(c.doc, c.unit)], var(c.name)))
    for n in model.neural_.values():
        inputs = ", ".join(ex(x) for x in n.inputs)
        extra = [f"activation={n.activation!r}"] if n.activation != "tanh" else []
        body.append(_call(f"{mv}.neural", [repr(n.name), f"inputs=[{inputs}]",
                                           f"hidden={tuple(n.hidden)!r}", *extra,
                                           *_kwargs(n.doc, "")], var(n.name)))
    for f in model.flows:
        body.append(_call(f"{mv}.flow", [var(f.source), var(f.target), ex(f.rate),
                                         f"name={f.name!r}"]))
    for r in model.rates:
        body.append(_call(f"{mv}.rate", [var(r.state), ex(r.expr)]))
    if model.inits:
        body.append(_call(f"{mv}.init", [f"{name}={ex(value)}"
                                         for name, value in model.inits.items()]))
    for o in model.observables_.values():
        body.append(_call(f"{mv}.observe", [repr(o.name), ex(o.expr),
                                            f"noise={_noise(o.noise, ex)}",
                                            *_kwargs(o.doc, o.unit)]))

    used_priors = sorted({type(p.prior).__name__ for p in model.params_.values()})
    used_noise = sorted({type(o.noise).__name__ for o in model.observables_.values()})
    # isort's order (classes, then functions), so the module passes the project's ruff
    dsl = sorted({"Model", *used_priors, *used_noise, *(printer.used & set(_DSL_FUNCTIONS))},
                 key=lambda s: (s[0].islower(), s))
    lines = [f'"""{_docstring(model)}"""', ""]
    extras = sorted(printer.used & set(_SYMPY_EXTRAS), key=lambda s: (s[0].islower(), s))
    if extras:
        lines += [_import("sympy", extras), ""]
    lines += [_import("mechanistic", dsl), ""]
    lines += body
    return "\n".join(lines) + "\n"


def _import(module: str, names: list[str]) -> str:
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= 100:
        return line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"


def _noise(noise: Noise, ex: Any) -> str:
    args = ", ".join(f"{k}={ex(v)}" for k, v in noise.arguments().items())
    return f"{type(noise).__name__}({args})"


def _docstring(model: Model) -> str:
    title = model.name.replace("\\", "/").replace('"""', "'''")
    return f"{title}\n\nRendered from its model JSON by mechanistic.to_source.\n"
