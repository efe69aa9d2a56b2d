"""A structured answer (a model specification as JSON) validated, built and rendered.

The specification is untrusted data. :func:`build_spec` reads it once, field by field,
against the limits of :mod:`agent.structured.schema`; every problem it finds becomes a
:class:`SpecIssue` naming the field path (``flows[2].from``) and what to write instead,
and all of them are reported at once, so one repair can fix them together. Expressions
are parsed by :mod:`agent.structured.exprtext`, never evaluated. A specification without
issues becomes a :class:`~mechanistic.model.Model` through the model language's own
declarations (which validate again), then a module through
:func:`mechanistic.to_source.model_to_source`: the module that the sandbox, the checks
and the fit see, exactly like a module an LLM wrote by hand.

Why render to source rather than hand the Model to the fit: a candidate is a module; the
run folder, the review, the diff against a parent and the repair loop all work on
modules, and the sandboxed run is the same gate for every proposer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from agent.structured.exprtext import ExprTextError, parse_expression
from agent.structured.schema import (
    MAX_FLOWS,
    MAX_INPUTS,
    MAX_OBSERVABLES,
    MAX_PARAMETERS,
    MAX_STATES,
    NOISE_KINDS,
    PRIOR_KINDS,
)
from mechanistic.errors import ModelError
from mechanistic.model import Model
from mechanistic.noise import Gaussian, LogNormalNoise, NegBinomial, Noise, Poisson
from mechanistic.priors import Fixed, HalfNormal, LogNormal, LogUniform, Normal, Prior, Uniform
from mechanistic.to_source import model_to_source

__all__ = ["BuiltSpec", "SpecIssue", "build_spec", "render_issues"]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_RESERVED = {"t", "time", "nan", "inf", "m", "Model", "exp", "log", "sqrt", "tanh", "sin",
             "cos", "Min", "Max", "Piecewise", "Heaviside", "None", "True", "False"}
_Z95 = 1.959963984540054
MAX_ISSUES = 20


@dataclass(frozen=True)
class SpecIssue:
    """One problem with the answer: where (a field path) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class BuiltSpec:
    """What one answer gave: the model and its module, or the issues (never both)."""

    issues: list[SpecIssue] = field(default_factory=list)
    model: Model | None = None
    source: str = ""
    structure: str = "structured answer"


def render_issues(issues: list[SpecIssue]) -> str:
    """The issues as prompt text, one a line, each starting with its field path."""
    return "\n".join(f"- {issue}" for issue in issues)


class _Reader:
    """Collects issues while it reads; a field that fails is skipped, not guessed."""

    def __init__(self) -> None:
        self.issues: list[SpecIssue] = []

    def issue(self, path: str, message: str) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(SpecIssue(path, message))

    def items(self, spec: Mapping[str, Any], key: str, most: int, least: int = 0
              ) -> list[tuple[str, Mapping[str, Any]]]:
        value = spec.get(key, [])
        if value is None:
            value = []
        if not isinstance(value, list):
            self.issue(key, f"must be a list of objects, got {type(value).__name__}")
            return []
        if len(value) < least:
            self.issue(key, f"needs at least {least} entr{'y' if least == 1 else 'ies'}")
        if len(value) > most:
            self.issue(key, f"{len(value)} entries is more than the limit of {most}")
            value = value[:most]
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                self.issue(f"{key}[{i}]", f"must be an object, got {type(item).__name__}")
            else:
                out.append((f"{key}[{i}]", item))
        return out

    def name(self, item: Mapping[str, Any], path: str, key: str, taken: dict[str, str]
             ) -> str | None:
        value = item.get(key)
        where = f"{path}.{key}"
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            self.issue(where, f"{_short(value)} is not a name: letters, digits and '_', "
                              "starting with a letter, at most 32 characters")
            return None
        if value in _RESERVED:
            self.issue(where, f"{value!r} is reserved; choose another name")
            return None
        if value in taken:
            self.issue(where, f"{value!r} is already declared at {taken[value]}")
            return None
        taken[value] = where
        return value

    def number(self, item: Mapping[str, Any], path: str, key: str) -> float | None:
        value = item.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value) or abs(value) > 1e15:
            self.issue(f"{path}.{key}", f"must be a finite number, got {_short(value)}")
            return None
        return float(value)

    def expression(self, value: Any, path: str, names: set[str]) -> sp.Expr | None:
        try:
            return parse_expression(value, names, path)
        except ExprTextError as exc:
            message = str(exc)
            self.issue(path, message.removeprefix(f"{path}: "))
            return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _prior(kind: Any, lower: float, upper: float) -> Prior | str:
    """The prior of ``kind`` over the range [lower, upper], or why there is none."""
    if kind not in PRIOR_KINDS:
        return f"must be one of {', '.join(PRIOR_KINDS)}, got {_short(kind)}"
    if kind == "Fixed":
        if lower != upper:
            return f"a Fixed parameter has lower = upper (its value), got {lower} and {upper}"
        return Fixed(lower)
    if not lower < upper:
        return f"lower ({lower:g}) must be below upper ({upper:g})"
    if kind in ("LogUniform", "LogNormal") and lower <= 0:
        return f"a {kind} range must be positive, got lower = {lower:g}"
    if kind == "LogUniform":
        return LogUniform(lower, upper)
    if kind == "Uniform":
        return Uniform(lower, upper)
    if kind == "Normal":
        return Normal(0.5 * (lower + upper), (upper - lower) / (2 * _Z95))
    if kind == "LogNormal":
        lo, hi = math.log(lower), math.log(upper)
        return LogNormal(0.5 * (lo + hi), (hi - lo) / (2 * _Z95))
    if upper <= 0:
        return f"a HalfNormal range needs upper > 0, got {upper:g}"
    return HalfNormal(upper / _Z95)


def _noise(kind: Any, parameter: sp.Expr | None, path: str, reader: _Reader) -> Noise | None:
    if kind not in NOISE_KINDS:
        reader.issue(f"{path}.noise", f"must be one of {', '.join(NOISE_KINDS)}, got "
                                      f"{_short(kind)}")
        return None
    if kind == "Poisson":
        return Poisson()
    if parameter is None:
        reader.issue(f"{path}.noise_parameter", f"{kind} noise needs the name of a declared "
                                                f"parameter (its scale or dispersion)")
        return None
    return {"Gaussian": Gaussian, "LogNormal": LogNormalNoise,
            "NegBinomial": NegBinomial}[kind](parameter)


def build_spec(spec: Any, columns: list[str], inputs: list[str] | None = None,
               time_unit: str = "time") -> BuiltSpec:
    """Validate ``spec`` (an answer parsed under limits) and build its model and module.

    ``columns`` are the data's observed columns (each needs an observable), ``inputs`` the
    task's known inputs (each must be an input of the spec, not an observable)."""
    reader = _Reader()
    out = BuiltSpec()
    if not isinstance(spec, Mapping):
        reader.issue("(answer)", f"must be a JSON object, got {type(spec).__name__}")
        out.issues = reader.issues
        return out
    unknown = sorted(set(spec) - {"structure", "states", "inputs", "parameters", "flows",
                                  "rates", "observables"})
    if unknown:
        reader.issue("(answer)", f"unknown field(s) {', '.join(map(_short, unknown[:5]))}")
    label = spec.get("structure")
    if isinstance(label, str) and label.strip() and len(label) <= 80 and label.isprintable():
        out.structure = label.strip()
    else:
        reader.issue("structure", "must be a short label of the mechanism (1 to 80 "
                                  "printable characters)")
    taken: dict[str, str] = {}
    states = [(p, it, reader.name(it, p, "name", taken))
              for p, it in reader.items(spec, "states", MAX_STATES, least=1)]
    controls = [(p, it, reader.name(it, p, "name", taken))
                for p, it in reader.items(spec, "inputs", MAX_INPUTS)]
    params = [(p, it, reader.name(it, p, "name", taken))
              for p, it in reader.items(spec, "parameters", MAX_PARAMETERS, least=1)]
    state_names = {n for _, _, n in states if n}
    param_names = {n for _, _, n in params if n}
    all_names = state_names | param_names | {n for _, _, n in controls if n}

    priors: dict[str, Prior] = {}
    for path, item, name in params:
        lower, upper = reader.number(item, path, "lower"), reader.number(item, path, "upper")
        if name is None or lower is None or upper is None:
            continue
        try:
            prior = _prior(item.get("prior"), lower, upper)
        except ModelError as exc:
            prior = str(exc)
        if isinstance(prior, str):
            reader.issue(f"{path}.prior", prior)
        else:
            priors[name] = prior
    defaults: dict[str, float] = {}
    for path, item, name in controls:
        value = reader.number(item, path, "default")
        if name is not None and value is not None:
            defaults[name] = value
    inits: dict[str, sp.Expr] = {}
    for path, item, name in states:
        value = reader.expression(item.get("initial"), f"{path}.initial", param_names)
        if name is not None and value is not None:
            inits[name] = value

    def state_ref(item: Mapping[str, Any], path: str, key: str) -> tuple[bool, str | None]:
        value = item.get(key)
        if value is None:
            return True, None
        if isinstance(value, str) and value in state_names:
            return True, value
        reader.issue(f"{path}.{key}", f"{_short(value)} is not a declared state; states are "
                                      f"{', '.join(sorted(state_names)) or '(none)'}, or "
                                      f"null for outside the system")
        return False, None

    flows = []
    flow_names: set[str] = set()
    for path, item in reader.items(spec, "flows", MAX_FLOWS):
        ok_from, source = state_ref(item, path, "from")
        ok_to, target = state_ref(item, path, "to")
        if ok_from and ok_to and source is None and target is None:
            reader.issue(path, "a flow needs a state in 'from' or 'to' (both are null)")
        elif ok_from and ok_to and source == target:
            reader.issue(path, f"a flow from {source} to itself does nothing; use 'rates'")
        label = item.get("name")
        if not isinstance(label, str) or not _NAME.fullmatch(label) or label in flow_names:
            reader.issue(f"{path}.name", f"{_short(label)} must be a new name for this flow")
            label = None
        else:
            flow_names.add(label)
        rate = reader.expression(item.get("rate"), f"{path}.rate", all_names)
        flows.append((path, source, target, rate, label))
    rates = []
    for path, item in reader.items(spec, "rates", MAX_FLOWS):
        _, state = state_ref(item, path, "state")
        if item.get("state") is None:
            reader.issue(f"{path}.state", "a rate term needs the state it changes")
        expr = reader.expression(item.get("expression"), f"{path}.expression", all_names)
        rates.append((path, state, expr))
    observables = []
    seen: set[str] = set()
    for path, item in reader.items(spec, "observables", MAX_OBSERVABLES, least=1):
        column = item.get("column")
        if not isinstance(column, str) or column not in columns:
            reader.issue(f"{path}.column", f"{_short(column)} is not a data column; the "
                                           f"columns are {', '.join(columns)}")
            column = None
        elif column in seen:
            reader.issue(f"{path}.column", f"{column!r} is observed twice")
            column = None
        else:
            seen.add(column)
        expr = reader.expression(item.get("expression"), f"{path}.expression", all_names)
        parameter = None
        raw = item.get("noise_parameter")
        if raw is not None:
            if isinstance(raw, str) and raw in param_names:
                parameter = sp.Symbol(raw)
            else:
                reader.issue(f"{path}.noise_parameter", f"{_short(raw)} is not a declared "
                                                        f"parameter; parameters are "
                                                        f"{', '.join(sorted(param_names))}")
        noise = _noise(item.get("noise"), parameter, path, reader)
        observables.append((path, column, expr, noise))
    for column in columns:
        if column not in seen and column not in (inputs or []):
            reader.issue("observables", f"the data column {column!r} has no observable")
    for name in inputs or []:
        if name not in defaults:
            reader.issue("inputs", f"the known input {name!r} must be declared in 'inputs' "
                                   f"(it is set by the experimenter, not fitted)")
    if reader.issues:
        out.issues = reader.issues
        return out
    _declare(out, reader, time_unit, states, controls, params, priors, defaults, inits,
             flows, rates, observables)
    return out


def _declare(out: BuiltSpec, reader: _Reader, time_unit: str, states: list, controls: list,
             params: list, priors: dict[str, Prior], defaults: dict[str, float],
             inits: dict[str, sp.Expr], flows: list, rates: list, observables: list) -> None:
    """Declare the checked spec in the model language; its own errors are issues too."""
    model = Model(out.structure, time_unit=time_unit)
    steps: list[tuple[str, Any]] = []
    steps += [(p, lambda n=n: model.state(n)) for p, _, n in states]
    steps += [(p, lambda n=n: model.control(n, default=defaults[n])) for p, _, n in controls]
    steps += [(p, lambda n=n: model.param(n, priors[n])) for p, _, n in params]
    steps += [(p, lambda s=s, t=t, r=r, n=n: model.flow(s, t, r, name=n))
              for p, s, t, r, n in flows]
    steps += [(p, lambda s=s, e=e: model.rate(s, e)) for p, s, e in rates]
    steps += [("states", lambda: model.init(inits))]
    steps += [(p, lambda c=c, e=e, z=z: model.observe(c, e, noise=z))
              for p, c, e, z in observables]
    for path, step in steps:
        try:
            step()
        except ModelError as exc:
            reader.issue(path, str(exc))
    if reader.issues:
        out.issues = reader.issues
        return
    used = set().union(*(sp.sympify(f.rate).free_symbols for f in model.flows),
                       *(sp.sympify(r.expr).free_symbols for r in model.rates),
                       *(sp.sympify(v).free_symbols for v in model.inits.values()),
                       *(sp.sympify(o.expr).free_symbols for o in model.observables_.values()),
                       *(sp.sympify(a).free_symbols for o in model.observables_.values()
                         for a in o.noise.arguments().values()))
    for path, _, name in params:
        if sp.Symbol(name) not in used:
            reader.issue(f"{path}.name", f"parameter {name!r} is declared but never used")
    if reader.issues:
        out.issues = reader.issues
        return
    out.model = model
    out.source = f"# structure: {out.structure}\n" + model_to_source(model)
