"""Equations as MathML, so a review page shows real mathematics with no CDN and no script.

The model is rebuilt from ``model.json`` (``mechanistic.serialize.model_from_json``: no
eval of anything generated), and the equations are printed from the sympy model, so the
page shows exactly what is simulated, not what the code's comments claim.

sympy's MathML printer does not escape symbol names. Names are validated identifiers
today, but review pages must stay safe if that ever changes, so every printed fragment is
parsed and rebuilt from an allow-list of MathML elements and attributes; anything else
(an ``<img>`` smuggled in a name) makes the fragment fall back to escaped plain text.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.entities import html5
from typing import Any

__all__ = ["EquationRow", "model_equations", "safe_mathml"]

_TAGS = frozenset({
    "math", "mrow", "mi", "mn", "mo", "mtext", "mspace", "ms", "mfrac", "msqrt", "mroot",
    "msub", "msup", "msubsup", "munder", "mover", "munderover", "mtable", "mtr", "mtd",
    "mstyle", "mpadded", "mphantom", "menclose", "mfenced"})
_ATTRS = frozenset({
    "mathvariant", "stretchy", "fence", "separator", "linethickness", "open", "close",
    "separators", "accent", "accentunder", "form", "lspace", "rspace", "columnalign",
    "displaystyle", "scriptlevel", "notation", "display"})
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")


def _numeric_entities(text: str) -> str:
    """sympy writes HTML named entities (``&InvisibleTimes;``) that XML does not know."""

    def repl(match: re.Match[str]) -> str:
        value = html5.get(match.group(1) + ";")
        if value is None or match.group(1) in ("amp", "lt", "gt", "quot", "apos"):
            return match.group(0)
        return "".join(f"&#{ord(ch)};" for ch in value)

    return _ENTITY.sub(repl, text)


def _clean(element: ET.Element) -> None:
    if element.tag not in _TAGS:
        raise ValueError(f"unexpected element {element.tag!r}")
    for name in list(element.attrib):
        if name not in _ATTRS:
            del element.attrib[name]
    for child in element:
        _clean(child)


def safe_mathml(fragment: str, fallback: str) -> str:
    """``fragment`` wrapped in ``<math>`` after an allow-list rebuild, else the escaped
    ``fallback`` text in a ``<code>``."""
    try:
        root = ET.fromstring(f"<math>{_numeric_entities(fragment)}</math>")
        _clean(root)
    except (ET.ParseError, ValueError):
        return f'<code class="eq-text">{html.escape(fallback)}</code>'
    return ET.tostring(root, encoding="unicode", method="html")


def _mml(expr: Any) -> str:
    import sympy as sp
    from sympy.printing.mathml import mathml

    try:
        printed = mathml(sp.sympify(expr), printer="presentation", mul_symbol="dot")
    except Exception:  # a printer gap must not take the page down
        printed = ""
    return safe_mathml(printed, str(expr)) if printed else \
        f'<code class="eq-text">{html.escape(str(expr))}</code>'


def _mtext(text: str) -> str:
    return f"<math><mtext>{html.escape(text)}</mtext></math>"


def _derivative(name: str) -> str:
    import sympy as sp

    inner = _mml(sp.Symbol(name))
    body = inner.removeprefix("<math>").removesuffix("</math>")
    return (f"<math><mfrac><mrow><mi>d</mi>{body}</mrow><mrow><mi>d</mi><mi>t</mi></mrow>"
            f"</mfrac></math>")


@dataclass(frozen=True)
class EquationRow:
    """One line of the system: left side, relation, right side (each MathML), and the same
    line as plain text for copying and for the accessibility of the page."""

    kind: str
    lhs: str
    rel: str
    rhs: str
    text: str


def model_equations(model: Any) -> list[EquationRow]:
    """The ODE right-hand sides, observation models, neural terms and initial conditions."""
    import sympy as sp

    rows: list[EquationRow] = []
    for name, rhs in model.rhs().items():
        rows.append(EquationRow("ode", _derivative(name), "=", _mml(rhs),
                                f"d{name}/dt = {rhs}"))
    for obs in model.observables_.values():
        args = [obs.expr, *obs.noise.arguments().values()]
        dist, formula = obs.noise.kind, obs.noise.formula
        body = "".join(_mml(a).removeprefix("<math>").removesuffix("</math>") +
                       ("<mo>,</mo>" if i < len(args) - 1 else "") for i, a in enumerate(args))
        rhs_html = (f"<math><mtext>{html.escape(dist)}</mtext><mrow><mo>(</mo>{body}"
                    f"<mo>)</mo></mrow></math>")
        rows.append(EquationRow("observation", _mtext(obs.name), "~", rhs_html,
                                f"{obs.name} ~ {dist}({', '.join(map(str, args))})"
                                + (f"   [{formula}]" if formula else "")))
    for n in model.neural_.values():
        call = sp.Function(n.name)(*n.inputs)
        hidden = "×".join(str(h) for h in n.hidden)
        rows.append(EquationRow("neural", _mml(call), "=",
                                _mtext(f"MLP {hidden} ({n.activation}), learned"),
                                f"{call} = MLP {hidden} {n.activation}"))
    for name, value in model.initial_conditions().items():
        rows.append(EquationRow("initial", _mml(sp.Function(name)(0)), "=", _mml(value),
                                f"{name}(0) = {value}"))
    return rows
