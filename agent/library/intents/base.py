"""What every intent shares: the question being read, the answer it gives, and the words
used to say back what was understood.

An intent (one module of :mod:`agent.library.intents` each family) is a function
``Ask -> Answer | None``: ``None`` when the question is not about it, ``ValueError`` when it
is but cannot be mapped with confidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.library.questions import (
    factor,
    parse_window,
)
from mechanistic.interventions import Dose, Intervention, Scale

__all__ = ["Answer", "Ask", "need_role", "per_text", "scaled", "times_text", "window_text"]


@dataclass(frozen=True)
class Ask:
    """One question being read: its text, the model's names, and the study's context."""

    question: str                      # as written (short input names are case-sensitive)
    q: str                             # normalised
    roles: Mapping[str, str]
    unit: str | None                   # the model's canonical time unit
    inputs: Mapping[str, str]
    regimen: tuple[Dose, ...]
    horizon: float | None


@dataclass(frozen=True)
class Answer:
    """What a question was understood as: the interventions, whether (and from when) the
    study's own dosing is replaced, and the sentence saying so."""

    items: list[Intervention]
    summary: str
    replaces_from: float | None = None  # None: the study's doses all stay


def need_role(roles: Mapping[str, str], *keys: str, what: str) -> str:
    for k in keys:
        if roles.get(k):
            return roles[k]
    raise ValueError(f"cannot map {what}: this model declares none of the roles "
                     f"{', '.join(keys)} (its roles: {', '.join(sorted(roles)) or 'none'})")


def scaled(a: Ask, target: str, label: str, missing: str) -> Answer:
    """``target`` multiplied by the question's factor over its window; a question without
    a readable factor is refused with ``missing`` as the reason."""
    f = factor(a.q)
    if f is None:
        raise ValueError(f"question {a.question!r} {missing}")
    start, end = parse_window(a.q, a.unit)
    return Answer([Scale(target, f, start, end)],
                  f"multiply {label} by {f:g} {window_text(start, end, a.unit)}")


def window_text(start: float, end: float, unit: str | None) -> str:
    units = f" ({unit}s)" if unit else ""
    if end == math.inf:
        return f"from t={start:g} on{units}" if start else f"throughout{units}"
    return f"from t={start:g} to t={end:g}{units}"


def per_text(unit: str | None) -> str:
    return f"per {unit}" if unit else "per unit time"


def times_text(times: Sequence[float]) -> str:
    shown = ", ".join(f"{t:g}" for t in times[:6])
    return f"t={shown}{', ...' if len(times) > 6 else ''}"
