"""Structural checks of a declared model, returned as data.

Checks run before anything is simulated or fitted: a state with no dynamics, a parameter
nothing reads, or an outflow that can drive a compartment negative is cheaper to report
from the equations than to discover as a bad fit. Every check returns
:class:`CheckResult` values (never raises on a bad model), so the repair loop can hand the
messages back to the proposer and the review app can list them.

Each check yields one passing result when all is well, or one failing result per problem
found. ``severity`` says whether a failure should block the candidate (``"error"``) or only
be shown (``"warning"``); warnings are also used when sympy cannot decide a question.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef

from mechanistic.expr import free_names, neural_calls
from mechanistic.model import Model

__all__ = ["CheckResult", "errors", "run_checks", "run_checks_bounded", "warnings"]


@dataclass(frozen=True)
class CheckResult:
    """One finding: which check, whether it passed, and what to do about it."""

    name: str
    passed: bool
    message: str
    severity: str = "error"  # "error" or "warning"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message,
                "severity": self.severity}


def errors(results: Iterable[CheckResult]) -> list[CheckResult]:
    """Failed checks that should block a candidate."""
    return [r for r in results if not r.passed and r.severity == "error"]


def warnings(results: Iterable[CheckResult]) -> list[CheckResult]:
    """Failed checks that are worth showing but do not block."""
    return [r for r in results if not r.passed and r.severity == "warning"]


def _ok(name: str, message: str, severity: str = "error") -> CheckResult:
    return CheckResult(name, True, message, severity)


def _fail(name: str, message: str, severity: str = "error") -> CheckResult:
    return CheckResult(name, False, message, severity)


def _short(expr: sp.Basic, limit: int = 160) -> str:
    """An expression as text, cut short so a message stays readable."""
    text = sp.sstr(expr, full_prec=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))


# Functions whose value sympy usually cannot sign or simplify at a boundary: a term that
# contains one and does not visibly vanish is reported as undecidable, not as wrong.
_OPAQUE = (sp.Piecewise, sp.Min, sp.Max, sp.Heaviside, AppliedUndef, sp.sin, sp.cos,
           sp.tanh, sp.log)


def _is_opaque(expr: sp.Basic) -> bool:
    return any(expr.has(cls) for cls in _OPAQUE)


def _clearly_nonzero(expr: sp.Basic) -> bool:
    """A numeric witness: ``expr`` is non-zero at a random point (neural calls and symbols
    get independent values). Cheap, and it spares ``simplify`` in the common case."""
    rng = random.Random(0)
    values = {a: sp.Float(rng.uniform(0.5, 2.0), 30)
              for a in (*expr.atoms(AppliedUndef), *expr.free_symbols)}
    try:
        value = complex(expr.xreplace(values).evalf(30))
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    return math.isfinite(abs(value)) and abs(value) > 1e-12


def _is_zero(expr: sp.Basic) -> bool:
    """True when ``expr`` is identically zero (cheap tests first, then ``simplify``)."""
    if expr == 0:
        return True
    if _clearly_nonzero(expr):
        return False
    if sp.expand(expr) == 0:
        return True
    return bool(sp.simplify(expr) == 0)


def _every_expression(model: Model) -> list[tuple[str, sp.Basic, set[str]]]:
    """(where, expression, names it may read) for every expression the model holds."""
    dynamic = {*model.symbols}
    static = {*model.params_, *model.constants_}
    out: list[tuple[str, sp.Basic, set[str]]] = []
    for f in model.flows:
        out.append((f"flow {f.name!r} rate", f.rate, dynamic))
    for r in model.rates:
        out.append((f"rate term of {r.state}", r.expr, dynamic))
    for n in model.neural_.values():
        for i, x in enumerate(n.inputs):
            out.append((f"neural term {n.name!r} input {i}", x, dynamic))
    for o in model.observables_.values():
        out.append((f"observable {o.name!r}", o.expr, dynamic))
        for arg, value in o.noise.arguments().items():
            out.append((f"observable {o.name!r} noise {arg}", value, static))
    for state, value in model.inits.items():
        out.append((f"initial condition of {state}", value, static))
    return out


# ------------------------------------------------------------------------------- checks
def check_dynamics(model: Model) -> list[CheckResult]:
    """Every state changes: a state with dX/dt = 0 is a constant in disguise or a typo."""
    rhs = model.rhs()
    dead = [name for name, expr in rhs.items() if _is_zero(expr)]
    out = [_fail("state_dynamics",
                 f"state {name} has no dynamics (d{name}/dt = 0): connect it with m.flow(...) "
                 f"or m.rate({name}, ...), or declare it as a constant/parameter instead")
           for name in dead]
    return out or [_ok("state_dynamics", f"all {len(rhs)} states have dynamics")]


def check_usage(model: Model) -> list[CheckResult]:
    """Every parameter, control and constant is read somewhere; unused ones cannot be fitted
    (a parameter nothing reads is unidentifiable) and controls nothing reads make
    interventions silently do nothing."""
    used: set[str] = set()
    for _, expr, _ in _every_expression(model):
        used |= free_names(expr)
    out: list[CheckResult] = []
    kinds = (("parameter", "parameters_used", model.params_, "error"),
             ("control", "controls_used", model.controls_, "error"),
             ("constant", "constants_used", model.constants_, "warning"))
    for what, name, declared, severity in kinds:
        unused = [n for n in declared if n not in used]
        out += [_fail(name, f"{what} {n} is declared but never used in the dynamics, "
                            f"observables, initial conditions or noise; use it or remove it",
                      severity) for n in unused]
        if not declared:
            out.append(_ok(name, f"no {what}s declared", severity))
        elif not unused:
            out.append(_ok(name, f"all {len(declared)} {what}(s) are used", severity))
    return out


def check_conservation(model: Model) -> list[CheckResult]:
    """The total of all states changes only through declared exchanges with the outside.

    Flows are conserving by construction, so the sum of dX/dt must equal inflows from
    outside minus outflows to outside plus the direct rate terms. Rate terms are how births,
    deaths and predation are written, so a non-zero sum of them is a warning naming the
    states involved: it is a mistake only when the modeller meant a transfer.
    """
    total = sp.Add(*model.rhs().values())
    external = sp.Integer(0)
    for f in model.flows:
        if f.source is None:
            external += f.rate
        elif f.target is None:
            external -= f.rate
    by_state: dict[str, sp.Expr] = {}
    for r in model.rates:
        by_state[r.state] = by_state.get(r.state, sp.Integer(0)) + r.expr
    rate_total = sp.Add(*by_state.values())
    if not _is_zero(total - external - rate_total):
        return [_fail("conservation", f"the sum of dX/dt ({total}) does not equal the external "
                                      f"flows plus rate terms; the flow bookkeeping is broken")]
    open_flows = [f.name for f in model.flows if f.source is None or f.target is None]
    note = f" (open system: flows to/from outside: {', '.join(open_flows)})" if open_flows else ""
    if by_state and not _is_zero(rate_total):
        states = [s for s, e in by_state.items() if not _is_zero(e)] or list(by_state)
        return [_fail("conservation",
                      f"rate terms on {', '.join(states)} change the total "
                      f"(their sum is {_short(rate_total)}){note}: fine for "
                      f"births, deaths, growth or predation, but if they move material between "
                      f"compartments declare them with m.flow(source, target, rate) instead",
                      "warning")]
    return [_ok("conservation", f"flows conserve the total{note}", "warning")]


def _assumed_symbols(model: Model) -> dict[sp.Symbol, sp.Symbol]:
    """Replace symbols by ones carrying the signs a modeller means, so sympy can decide
    e.g. ``Min(S, K) = 0`` at ``S = 0``: states, controls and time are non-negative;
    a parameter or constant takes the sign of its support or value."""
    out: dict[sp.Symbol, sp.Symbol] = {}
    for name in (*model.states_, *model.controls_, "t"):
        out[sp.Symbol(name)] = sp.Symbol(name, nonnegative=True)
    for name, p in model.params_.items():
        lower = p.prior.support.lower
        out[sp.Symbol(name)] = (sp.Symbol(name, positive=True) if lower > 0 else
                                sp.Symbol(name, nonnegative=True) if lower == 0 else
                                sp.Symbol(name, real=True))
    for name, c in model.constants_.items():
        out[sp.Symbol(name)] = (sp.Symbol(name, positive=True) if c.value > 0 else
                                sp.Symbol(name, nonnegative=True) if c.value == 0 else
                                sp.Symbol(name, real=True))
    return out


def _vanishes_at_zero(expr: sp.Basic, state: sp.Symbol) -> bool | None:
    """Whether ``expr`` is 0 when ``state`` is 0: True, False, or None if undecidable."""
    try:
        value = expr.subs(state, 0)
        if value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
            value = sp.limit(expr, state, 0, "+")
        if _is_zero(value):
            return True
    except Exception:  # sympy can fail on exotic trees; that is "undecidable", not a crash
        return None
    if value.is_zero is False or not _is_opaque(value):
        return False
    return None


def _additive_terms(expr: sp.Basic) -> tuple[sp.Basic, ...]:
    return sp.Add.make_args(sp.expand(expr, deep=False, power_exp=False, log=False))


def check_nonnegativity(model: Model) -> list[CheckResult]:
    """A state stays >= 0 when everything that can push it down vanishes at 0.

    Outflows are checked whole (``(1 - u)*beta*S*I/N`` is one flow); rate terms are split
    into additive terms and each term with a negative sign, or whose sign sympy cannot
    determine, must vanish at X = 0. Undecidable cases (Min, Piecewise, neural terms) are
    warnings.
    """
    assumed = _assumed_symbols(model)
    out: list[CheckResult] = []

    def fails(state: str, what: str, advice: str) -> CheckResult:
        return _fail("non_negativity", f"{what} which does not vanish at {state} = 0: {state} "
                                       f"can become negative; {advice}")

    def undecided(state: str, what: str) -> CheckResult:
        return _fail("non_negativity", f"{what}; sympy cannot decide whether it vanishes at "
                                       f"{state} = 0: check that {state} cannot become "
                                       f"negative", "warning")

    for f in model.flows:
        if f.source is None:
            continue
        what = f"flow {f.name!r} out of {f.source} has rate {_short(f.rate)}"
        decided = _vanishes_at_zero(f.rate.xreplace(assumed), sp.Symbol(f.source, nonnegative=True))
        if decided is False:
            out.append(fails(f.source, what, f"make the outflow proportional to {f.source} "
                                             f"(e.g. k*{f.source})"))
        elif decided is None:
            out.append(undecided(f.source, what))
    for r in model.rates:
        x = sp.Symbol(r.state, nonnegative=True)
        for term in _additive_terms(r.expr.xreplace(assumed)):
            if term.is_nonnegative:
                continue
            negative = term.could_extract_minus_sign() or term.is_negative
            what = f"d{r.state}/dt has term {_short(term)}"
            decided = _vanishes_at_zero(term, x)
            if decided is True:
                continue
            if negative and decided is False:
                out.append(fails(r.state, what, f"make the term proportional to {r.state}"))
            elif negative:
                out.append(undecided(r.state, what))
            else:  # sign unknown (a neural term, sin, a parameter that may be negative)
                out.append(_fail("non_negativity",
                                 f"{what}, whose sign cannot be determined and which does not "
                                 f"visibly vanish at {r.state} = 0: if it turns negative, "
                                 f"{r.state} can become negative; make it proportional to "
                                 f"{r.state} or make sure it stays >= 0", "warning"))
    return out or [_ok("non_negativity", "every negative term in dX/dt vanishes at X = 0")]


def check_known_symbols(model: Model) -> list[CheckResult]:
    """Every expression reads only declared symbols and neural terms. True by construction
    for a model built with the DSL; this covers models rebuilt from hand-edited JSON or
    edited in place."""
    out: list[CheckResult] = []
    for where, expr, allowed in _every_expression(model):
        unknown = free_names(expr) - allowed
        if unknown:
            scope = "declared symbols" if "t" in allowed else "parameters and constants"
            out.append(_fail("known_symbols", f"{where} uses {_names(unknown)}, which "
                                              f"{'is' if len(unknown) == 1 else 'are'} not "
                                              f"among the model's {scope}; declare "
                                              f"{'it' if len(unknown) == 1 else 'them'} or "
                                              f"fix the expression"))
        calls = neural_calls(expr) - set(model.neural_)
        if calls:
            out.append(_fail("known_symbols", f"{where} calls {_names(calls)}(), which is not a "
                                              f"declared neural term; declare it with "
                                              f"m.neural(name, inputs=[...])"))
    return out or [_ok("known_symbols", "all expressions reference declared symbols only")]


def check_initial_conditions(model: Model) -> list[CheckResult]:
    """A state without an initial condition silently starts at 0."""
    missing = [s for s in model.states_ if s not in model.inits]
    out = [_fail("initial_conditions", f"state {s} has no initial condition and starts at 0; "
                                       f"declare it with m.init({s}=...)", "warning")
           for s in missing]
    return out or [_ok("initial_conditions", "every state has an initial condition", "warning")]


def check_neural_terms(model: Model) -> list[CheckResult]:
    """Neural terms read existing symbols and are used: an unused one adds weights that
    nothing constrains."""
    known = set(model.symbols)
    used: set[str] = set()
    for f in model.flows:
        used |= neural_calls(f.rate)
    for r in model.rates:
        used |= neural_calls(r.expr)
    for o in model.observables_.values():
        used |= neural_calls(o.expr)
    out: list[CheckResult] = []
    for n in model.neural_.values():
        missing = set().union(*(free_names(x) for x in n.inputs)) - known if n.inputs else set()
        if missing:
            out.append(_fail("neural_terms", f"neural term {n.name} reads {_names(missing)}, "
                                             f"which {'is' if len(missing) == 1 else 'are'} "
                                             f"not declared; use declared states, parameters, "
                                             f"controls or t as inputs"))
        if not n.inputs:
            out.append(_fail("neural_terms", f"neural term {n.name} has no inputs; give it at "
                                             f"least one input"))
        if n.name not in used:
            out.append(_fail("neural_terms", f"neural term {n.name} is declared but never used "
                                             f"in a flow, rate term or observable; use it or "
                                             f"remove it"))
    if not model.neural_:
        return [_ok("neural_terms", "no neural terms")]
    return out or [_ok("neural_terms", f"all {len(model.neural_)} neural term(s) have declared "
                                       f"inputs and are used")]


def check_observables(model: Model) -> list[CheckResult]:
    """Without an observable there is nothing to fit the model to."""
    if not model.observables_:
        return [_fail("observables", "the model declares no observables, so it cannot be "
                                     "fitted to data; add m.observe(name, expr, noise=...)",
                      "warning")]
    return [_ok("observables", f"{len(model.observables_)} observable(s) declared", "warning")]


CHECKS: tuple[Callable[[Model], list[CheckResult]], ...] = (
    check_dynamics,
    check_usage,
    check_conservation,
    check_nonnegativity,
    check_known_symbols,
    check_initial_conditions,
    check_neural_terms,
    check_observables,
)


def run_checks(model: Model) -> list[CheckResult]:
    """Run every structural check; a check that crashes is itself reported, not raised."""
    out: list[CheckResult] = []
    for check in CHECKS:
        name = check.__name__.removeprefix("check_")
        try:
            out.extend(check(model))
        except Exception as exc:  # a bug or a sympy failure must not hide the other checks
            out.append(_fail(name, f"check {name} could not run: {type(exc).__name__}: {exc}",
                             "warning"))
    return out


def run_checks_bounded(model: Model, seconds: float | None = None) -> list[CheckResult]:
    """:func:`run_checks` on a model from outside the host's own code, in a child process
    under a time and memory bound (:mod:`mechanistic.bounded`); HostLimitError past it.
    Every command and the search check untrusted models this way, never unbounded."""
    from mechanistic.bounded import CHECK_SECONDS, call_bounded

    rows = call_bounded(lambda: [c.to_dict() for c in run_checks(model)],
                        "the structural checks", seconds=seconds or CHECK_SECONDS)
    return [CheckResult(str(r["name"]), bool(r["passed"]), str(r["message"]),
                        str(r["severity"])) for r in rows]
