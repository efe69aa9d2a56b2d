"""The model language: a :class:`Model` declares states, parameters and dynamics.

Generated simulator code is a small module that builds one ``Model``. Every declaration
is validated when it is made, so a mistake surfaces as an error on the module's own line
(which the sandbox runner reports back to the repair loop). The declared model is a set of
sympy expressions; everything downstream (JSON, review, checks, the compiled simulator,
fitting) is derived from it.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from mechanistic.errors import ModelError
from mechanistic.expr import validate_expr
from mechanistic.noise import Gaussian, Noise
from mechanistic.priors import Fixed, Prior
from mechanistic.untrusted import shown

__all__ = [
    "Constant",
    "Control",
    "Flow",
    "Model",
    "NeuralTerm",
    "Observable",
    "Parameter",
    "RateTerm",
    "State",
]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")  # fullmatch: no trailing newline
MAX_SYMBOLS = 2_000  # states, parameters, constants and controls of one model, together
MAX_TERMS = 4_000  # flows, rate terms and observables, together
_TEXT_LIMIT = 20_000  # characters of a name, doc or unit
_RESERVED = {"t", "time", "nan", "inf"}
_ACTIVATIONS = ("tanh", "relu", "softplus", "sigmoid")


@dataclass(frozen=True)
class State:
    name: str
    doc: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Parameter:
    name: str
    prior: Prior
    doc: str = ""
    unit: str = ""

    @property
    def fixed(self) -> bool:
        return isinstance(self.prior, Fixed)


@dataclass(frozen=True)
class Constant:
    name: str
    value: float
    doc: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Control:
    """An exogenous input (treatment, contact reduction); piecewise constant in time."""

    name: str
    default: float = 0.0
    doc: str = ""
    unit: str = ""


@dataclass(frozen=True)
class NeuralTerm:
    """A small MLP of declared inputs, used inside expressions (neural-integrated models)."""

    name: str
    inputs: tuple[sp.Expr, ...]
    hidden: tuple[int, ...] = (16, 16)
    activation: str = "tanh"
    doc: str = ""


@dataclass(frozen=True)
class Flow:
    """Mass moving from ``source`` to ``target`` (``None`` is outside the system)."""

    name: str
    source: str | None
    target: str | None
    rate: sp.Expr


@dataclass(frozen=True)
class RateTerm:
    """A direct term added to dX/dt, for dynamics that are not transfers of mass."""

    state: str
    expr: sp.Expr


@dataclass(frozen=True)
class Observable:
    name: str
    expr: sp.Expr
    noise: Noise
    doc: str = ""
    unit: str = ""


@dataclass
class Model:
    """A declared mechanistic model. See docs/architecture.md for the language sketch.

    >>> m = Model("decay")
    >>> x = m.state("x")
    >>> k = m.param("k", Fixed(0.5))
    >>> m.rate(x, -k * x)
    >>> m.init(x=1.0)
    """

    name: str
    time_unit: str = "time"
    doc: str = ""
    states_: dict[str, State] = field(default_factory=dict, repr=False)
    params_: dict[str, Parameter] = field(default_factory=dict, repr=False)
    constants_: dict[str, Constant] = field(default_factory=dict, repr=False)
    controls_: dict[str, Control] = field(default_factory=dict, repr=False)
    neural_: dict[str, NeuralTerm] = field(default_factory=dict, repr=False)
    flows: list[Flow] = field(default_factory=list, repr=False)
    rates: list[RateTerm] = field(default_factory=list, repr=False)
    inits: dict[str, sp.Expr] = field(default_factory=dict, repr=False)
    observables_: dict[str, Observable] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ModelError("Model needs a non-empty name, e.g. Model('SEIR with reporting')")
        self._symbols: dict[str, sp.Symbol] = {}
        self._functions: dict[str, type] = {}
        self.t = sp.Symbol("t")

    # ----------------------------------------------------------------- declarations
    def _claim(self, name: Any, what: str) -> sp.Symbol:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ModelError(
                f"{what} name {shown(name)} is not valid: use letters, digits and '_' "
                f"(at most 64), starting with a letter"
            )
        if len(self._symbols) >= MAX_SYMBOLS:
            raise ModelError(f"{what} {name!r}: a model may declare at most {MAX_SYMBOLS} "
                             "states, parameters, constants and controls")
        if keyword.iskeyword(name) or name in _RESERVED:
            raise ModelError(f"{what} name {name!r} is reserved; choose another name")
        if name in self._symbols or name in self._functions or name in self.observables_:
            raise ModelError(f"{what} name {name!r} is already declared in this model")
        symbol = sp.Symbol(name)
        self._symbols[name] = symbol
        return symbol

    def state(self, name: str, doc: str = "", unit: str = "") -> sp.Symbol:
        symbol = self._claim(name, "state")
        self.states_[name] = State(name, doc, unit)
        return symbol

    def states(self, names: str | Sequence[str]) -> tuple[sp.Symbol, ...]:
        """Declare several states at once: ``S, I, R = m.states("S I R")``."""
        items = names.replace(",", " ").split() if isinstance(names, str) else list(names)
        if not items:
            raise ModelError("states() needs at least one name")
        return tuple(self.state(n) for n in items)

    def param(self, name: str, prior: Prior, doc: str = "", unit: str = "") -> sp.Symbol:
        if not isinstance(prior, Prior):
            raise ModelError(
                f"parameter {name!r} needs a prior such as Uniform(0, 1) or LogUniform(1e-3, 1), "
                f"got {prior!r}"
            )
        symbol = self._claim(name, "parameter")
        self.params_[name] = Parameter(name, prior, doc, unit)
        return symbol

    def constant(self, name: str, value: float, doc: str = "", unit: str = "") -> sp.Symbol:
        value = _number(value, f"constant {name!r}")
        symbol = self._claim(name, "constant")
        self.constants_[name] = Constant(name, value, doc, unit)
        return symbol

    def control(self, name: str, default: float = 0.0, doc: str = "", unit: str = "") -> sp.Symbol:
        default = _number(default, f"control {name!r} default")
        symbol = self._claim(name, "control")
        self.controls_[name] = Control(name, default, doc, unit)
        return symbol

    def neural(
        self,
        name: str,
        inputs: Iterable[Any],
        hidden: Sequence[int] = (16, 16),
        activation: str = "tanh",
        doc: str = "",
    ) -> sp.Expr:
        """Declare a learned term ``name(inputs)``; returns the expression to use."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ModelError(f"neural term name {shown(name)} is not a valid identifier")
        if name in self._symbols or name in self._functions or name in self.observables_:
            raise ModelError(f"neural term name {name!r} is already declared in this model")
        hidden_t = tuple(hidden)
        if not hidden_t or not all(isinstance(h, int) and 1 <= h <= 1024 for h in hidden_t):
            raise ModelError(f"neural term {name!r}: hidden must be layer sizes in 1..1024, "
                             f"got {hidden!r}")
        if activation not in _ACTIVATIONS:
            raise ModelError(f"neural term {name!r}: activation must be one of {_ACTIVATIONS}")
        exprs = tuple(
            validate_expr(x, self._known(), self._functions, f"neural term {name!r} input")
            for x in inputs
        )
        if not exprs:
            raise ModelError(f"neural term {name!r} needs at least one input")
        function = sp.Function(name)
        self._functions[name] = function
        self.neural_[name] = NeuralTerm(name, exprs, hidden_t, activation, doc)
        return function(*exprs)

    def flow(self, source: Any, target: Any, rate: Any, name: str | None = None) -> None:
        """Move mass at ``rate`` from ``source`` to ``target``; ``None`` is outside."""
        src = self._state_name(source, "flow source")
        dst = self._state_name(target, "flow target")
        if src is None and dst is None:
            raise ModelError("a flow needs a source or a target state (both were None)")
        if src == dst:
            raise ModelError(f"flow from {src} to itself has no effect; use m.rate for growth")
        label = name or f"{src or 'outside'}_to_{dst or 'outside'}"
        if not isinstance(label, str) or len(label) > 200 or not label.isprintable():
            raise ModelError(f"flow name {shown(label)} must be printable text of at most "
                             "200 characters")
        self._count_term(f"flow {label!r}")
        if any(f.name == label for f in self.flows):
            raise ModelError(f"flow name {label!r} is already used; pass name=...")
        expr = validate_expr(rate, self._known(), self._functions, f"flow {label!r} rate")
        self.flows.append(Flow(label, src, dst, expr))

    def rate(self, state: Any, expr: Any) -> None:
        """Add a direct term to d(state)/dt."""
        name = self._state_name(state, "rate term state")
        if name is None:
            raise ModelError("m.rate needs a state")
        self._count_term(f"rate term of {name}")
        value = validate_expr(expr, self._known(), self._functions, f"rate term of {name}")
        self.rates.append(RateTerm(name, value))

    def init(self, values: dict[str, Any] | None = None, /, **more: Any) -> None:
        """Initial conditions; values may be expressions of parameters and constants.

        ``m.init(S=990, I=10)``, or a dict ``m.init({"S": 990})`` for names that are not
        Python keywords (a model JSON's ``init`` is applied this way, whatever its keys).
        """
        allowed = set(self.params_) | set(self.constants_)
        for name, value in {**(values or {}), **more}.items():
            if not isinstance(name, str) or name not in self.states_:
                raise ModelError(f"init() names {shown(name)}, which is not a declared state; "
                                 f"states: {sorted(self.states_)}")
            self.inits[name] = validate_expr(value, allowed, (), f"initial condition of {name}")

    def observe(
        self, name: str, expr: Any, noise: Noise | None = None, doc: str = "", unit: str = ""
    ) -> None:
        """Declare a measured quantity and how its measurements scatter."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ModelError(f"observable name {shown(name)} is not a valid identifier")
        self._count_term(f"observable {name!r}")
        if name in self.observables_ or name in self._functions or (
            name in self._symbols and name not in self.states_
        ):
            raise ModelError(f"observable name {name!r} is already declared in this model")
        if noise is None:
            noise = Gaussian(1.0)
        if not isinstance(noise, Noise):
            raise ModelError(f"observable {name!r}: noise must be Gaussian(...), Poisson(), "
                             f"NegBinomial(...), LogNormalNoise(...) or PropAdd(...)")
        value = validate_expr(expr, self._known(), self._functions, f"observable {name!r}")
        noise = type(noise)(**{
            arg: validate_expr(arg_value, set(self.params_) | set(self.constants_), (),
                               f"observable {name!r} noise {arg}")
            for arg, arg_value in noise.arguments().items()
        })
        self.observables_[name] = Observable(name, value, noise, doc, unit)

    def _count_term(self, what: str) -> None:
        if len(self.flows) + len(self.rates) + len(self.observables_) >= MAX_TERMS:
            raise ModelError(f"{what}: a model may declare at most {MAX_TERMS} flows, rate "
                             "terms and observables")

    # ---------------------------------------------------------------------- queries
    def _known(self) -> set[str]:
        return {*self._symbols, "t"}

    def _state_name(self, value: Any, what: str) -> str | None:
        if value is None:
            return None
        name = value.name if isinstance(value, sp.Symbol) else value
        if not isinstance(name, str) or name not in self.states_:
            raise ModelError(f"{what} {value!r} is not a declared state; "
                             f"states: {sorted(self.states_)}")
        return name

    @property
    def state_names(self) -> list[str]:
        return list(self.states_)

    @property
    def param_names(self) -> list[str]:
        return list(self.params_)

    @property
    def free_param_names(self) -> list[str]:
        """Parameters that fitting estimates (all but those with a Fixed prior)."""
        return [n for n, p in self.params_.items() if not p.fixed]

    @property
    def control_names(self) -> list[str]:
        return list(self.controls_)

    @property
    def observable_names(self) -> list[str]:
        return list(self.observables_)

    @property
    def symbols(self) -> dict[str, sp.Symbol]:
        """Every declared symbol by name, plus the time symbol ``t``."""
        return {**self._symbols, "t": self.t}

    @property
    def functions(self) -> dict[str, type]:
        return dict(self._functions)

    def rhs(self) -> dict[str, sp.Expr]:
        """dX/dt for every state: inflows minus outflows plus direct rate terms."""
        out: dict[str, sp.Expr] = {name: sp.Integer(0) for name in self.states_}
        for f in self.flows:
            if f.source is not None:
                out[f.source] = out[f.source] - f.rate
            if f.target is not None:
                out[f.target] = out[f.target] + f.rate
        for r in self.rates:
            out[r.state] = out[r.state] + r.expr
        return out

    def initial_conditions(self) -> dict[str, sp.Expr]:
        """Initial value of every state (an undeclared one starts at 0, and a check says so)."""
        return {name: self.inits.get(name, sp.Integer(0)) for name in self.states_}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Model):
            return NotImplemented
        from mechanistic.serialize import model_to_dict

        return model_to_dict(self) == model_to_dict(other)

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        from mechanistic.serialize import model_to_dict

        return model_to_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        from mechanistic.serialize import model_to_json

        return model_to_json(self, indent=indent)

    def _repr_html_(self) -> str:
        """Jupyter shows a model as its equations and parameter table."""
        from mechanistic.formats.notebook import model_html

        return model_html(self)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | sp.Number):
        raise ModelError(f"{what} must be a number, got {shown(value)}")
    try:
        out = float(value)
    except (OverflowError, ValueError):
        out = float("inf")
    if out != out or abs(out) > 1e300:
        raise ModelError(f"{what} must be a finite number below 1e300, got {shown(value)}")
    return out
