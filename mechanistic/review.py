"""Review output: what a scientist reads before trusting a candidate model.

The equations are printed from the sympy model (sympy's LaTeX and string printers), never
from the generated code, so what is reviewed is exactly what is simulated. ``review_dict``
gathers everything as JSON-ready data for ``mmw show --json`` and the review web app.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from mechanistic.checks import CheckResult, errors, run_checks, warnings
from mechanistic.model import Model, NeuralTerm, Observable
from mechanistic.priors import Prior

__all__ = [
    "equations_latex",
    "equations_text",
    "parameter_table",
    "render_parameter_table",
    "render_review",
    "review_dict",
]


class _Latex(LatexPrinter):
    """sympy's LaTeX printer, with neural terms marked as learned: ``g_{\\mathrm{NN}}(I)``."""

    def __init__(self, neural: Sequence[str]) -> None:
        super().__init__({"full_prec": False})
        self._neural = set(neural)

    def _print_Function(self, expr: Any, exp: Any = None) -> str:
        name = type(expr).__name__
        if isinstance(expr, AppliedUndef) and name in self._neural:
            args = ", ".join(self._print(a) for a in expr.args)
            tex = rf"{_latex_name(name)}_{{\mathrm{{NN}}}}\left({args}\right)"
            return rf"{tex}^{{{exp}}}" if exp else tex
        return super()._print_Function(expr, exp)


def _latex_name(name: str) -> str:
    """A function name as LaTeX: one letter stays italic, longer names are upright."""
    return name if len(name) == 1 else r"\operatorname{" + name.replace("_", r"\_") + "}"


def _text_label(name: str) -> str:
    return r"\text{" + name.replace("_", r"\_") + "}"


def _tex(model: Model, expr: Any) -> str:
    return _Latex(list(model.neural_)).doprint(sp.sympify(expr))


def _str(expr: Any) -> str:
    return StrPrinter({"full_prec": False}).doprint(sp.sympify(expr))


def _neural_text(n: NeuralTerm) -> str:
    inputs = ", ".join(_str(x) for x in n.inputs)
    hidden = "x".join(str(h) for h in n.hidden)
    return f"{n.name}({inputs}) [MLP {hidden} {n.activation}]"


def _neural_latex(model: Model, n: NeuralTerm) -> tuple[str, str]:
    inputs = ", ".join(_tex(model, x) for x in n.inputs)
    hidden = r" \times ".join(str(h) for h in n.hidden)
    lhs = rf"{_latex_name(n.name)}_{{\mathrm{{NN}}}}\left({inputs}\right)"
    return lhs, rf"\mathrm{{MLP}}_{{{hidden},\ \mathrm{{{n.activation}}}}}\left({inputs}\right)"


def _observation_latex(model: Model, obs: Observable) -> tuple[str, str]:
    dist, transform, args = obs.noise.distribution(obs.expr)
    lhs = _text_label(obs.name)
    if transform == "log":
        lhs = rf"\log {lhs}"
    body = ", ".join(_tex(model, a) for a in args)
    return lhs, rf"\sim \mathrm{{{dist}}}\left({body}\right)"


def _observation_text(obs: Observable) -> str:
    dist, transform, args = obs.noise.distribution(obs.expr)
    lhs = f"log({obs.name})" if transform == "log" else obs.name
    return f"{lhs} ~ {dist}({', '.join(_str(a) for a in args)})"


# --------------------------------------------------------------------------- equations
def equations_latex(model: Model) -> str:
    """The ODE system, observation equations, neural terms and initial conditions as one
    LaTeX ``aligned`` block (for KaTeX/MathJax in the review app or a paper)."""
    lines: list[str] = []
    for name, rhs in model.rhs().items():
        x = _tex(model, sp.Symbol(name))
        lines.append(rf"\frac{{d {x}}}{{d t}} &= {_tex(model, rhs)}")
    for obs in model.observables_.values():
        lhs, rhs = _observation_latex(model, obs)
        lines.append(f"{lhs} &{rhs}")
    for n in model.neural_.values():
        lhs, rhs = _neural_latex(model, n)
        lines.append(f"{lhs} &= {rhs}")
    for name, value in model.initial_conditions().items():
        lines.append(rf"{_tex(model, sp.Symbol(name))}(0) &= {_tex(model, value)}")
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


def equations_text(model: Model) -> str:
    """The same system as plain text: ``dS/dt = -beta*S*I/N``, one equation a line."""
    lines = [f"d{name}/dt = {_str(rhs)}" for name, rhs in model.rhs().items()]
    lines += [_observation_text(obs) for obs in model.observables_.values()]
    lines += [_neural_text(n) for n in model.neural_.values()]
    lines += [f"{name}(0) = {_str(value)}" for name, value in model.initial_conditions().items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- parameters
def _bound(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _support_text(prior: Prior) -> str:
    s = prior.support
    if s.lower == s.upper:
        return f"{{{s.lower:g}}}"
    if s.kind == "real":
        return "(-inf, inf)"
    if s.kind == "lower":
        return f"[{s.lower:g}, inf)"
    return f"[{s.lower:g}, {s.upper:g}]"


def parameter_table(model: Model) -> list[dict[str, Any]]:
    """One JSON-ready row per parameter: prior, support, unit, doc, whether it is fixed."""
    rows = []
    for p in model.params_.values():
        prior = p.prior.to_dict()
        rows.append({
            "name": p.name,
            "prior": p.prior.describe(),
            "prior_kind": prior.pop("kind"),
            "prior_args": prior,
            "support": _support_text(p.prior),
            "lower": _bound(p.prior.support.lower),
            "upper": _bound(p.prior.support.upper),
            "typical": float(p.prior.typical),
            "unit": p.unit,
            "doc": p.doc,
            "fixed": p.fixed,
        })
    return rows


def _render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def render_parameter_table(model: Model) -> str:
    """The parameter table as aligned plain text (for ``mmw show``)."""
    if not model.params_:
        return "(no parameters)"
    rows = [[r["name"], r["prior"], r["support"], r["unit"], "yes" if r["fixed"] else "",
             r["doc"]] for r in parameter_table(model)]
    return _render_table(["name", "prior", "support", "unit", "fixed", "doc"], rows)


# ------------------------------------------------------------------------------ review
def review_dict(model: Model, checks: Sequence[CheckResult] | None = None) -> dict[str, Any]:
    """Everything a reviewer sees, as JSON-ready data (``mmw show --json``, review app).

    ``checks`` may be passed when they were already run (the pipeline stores them);
    otherwise they are run here.
    """
    results = list(run_checks(model) if checks is None else checks)
    inits = model.initial_conditions()
    rhs = model.rhs()
    return {
        "name": model.name,
        "doc": model.doc,
        "time_unit": model.time_unit,
        "states": [
            {"name": s.name, "doc": s.doc, "unit": s.unit, "declared_init": s.name in model.inits,
             "init_text": _str(inits[s.name]), "init_latex": _tex(model, inits[s.name]),
             "rhs_text": _str(rhs[s.name]), "rhs_latex": _tex(model, rhs[s.name])}
            for s in model.states_.values()
        ],
        "equations": {"latex": equations_latex(model), "text": equations_text(model)},
        "parameters": parameter_table(model),
        "constants": [{"name": c.name, "value": c.value, "doc": c.doc, "unit": c.unit}
                      for c in model.constants_.values()],
        "controls": [{"name": c.name, "default": c.default, "doc": c.doc, "unit": c.unit}
                     for c in model.controls_.values()],
        "neural": [{"name": n.name, "inputs": [_str(x) for x in n.inputs],
                    "hidden": list(n.hidden), "activation": n.activation, "doc": n.doc,
                    "text": _neural_text(n), "latex": _neural_latex(model, n)[0]}
                   for n in model.neural_.values()],
        "flows": [{"name": f.name, "source": f.source, "target": f.target,
                   "rate_text": _str(f.rate), "rate_latex": _tex(model, f.rate)}
                  for f in model.flows],
        "rates": [{"state": r.state, "expr_text": _str(r.expr), "expr_latex": _tex(model, r.expr)}
                  for r in model.rates],
        "observables": [
            {"name": o.name, "doc": o.doc, "unit": o.unit,
             "expr_text": _str(o.expr), "expr_latex": _tex(model, o.expr),
             "noise": o.noise.kind, "noise_formula": o.noise.formula,
             "noise_args": {k: _str(v) for k, v in o.noise.arguments().items()},
             "text": _observation_text(o),
             "latex": " ".join(_observation_latex(model, o))}
            for o in model.observables_.values()
        ],
        "checks": [r.to_dict() for r in results],
        "summary": {"errors": len(errors(results)), "warnings": len(warnings(results)),
                    "passed": not errors(results)},
    }


def render_review(model: Model, checks: Sequence[CheckResult] | None = None) -> str:
    """The plain-text review ``mmw show`` prints: equations, parameters, checks."""
    results = list(run_checks(model) if checks is None else checks)
    marks = {True: "ok  ", False: "FAIL"}
    lines = [f"{model.name} (time in {model.time_unit})", "", equations_text(model), "",
             render_parameter_table(model), "", "checks:"]
    for r in results:
        mark = marks[r.passed] if r.passed or r.severity == "error" else "warn"
        lines.append(f"  [{mark}] {r.name}: {r.message}")
    return "\n".join(lines)
