"""The field rules a task document is checked with, and the error that names the field.

Every check raises :class:`Invalid` with the field's path inside the document
(``counterfactuals[0].interventions[1].start``); whoever knows which document it is
(a task being built, a file being read) turns it into a :class:`TaskError` naming both.
A benchmark that silently scores against a typo is worse than one that refuses to load,
so a bad field is always reported by its path. These rules know nothing of
:class:`~evals.task.BenchTask`: the task's own rules are in :mod:`evals.task_rules`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mechanistic.errors import ModelError
from mechanistic.interventions import (
    Dose,
    Infusion,
    Intervention,
    Scale,
    SetValue,
    Transfer,
    validate_interventions,
)
from mechanistic.model import Model

if TYPE_CHECKING:
    from evals.task_parts import Counterfactual

__all__ = ["Invalid", "TaskError", "check_counterfactual", "check_intervention", "names",
           "number", "text"]


class TaskError(ValueError):
    """A malformed task; the message names the document and the field at fault."""

    def __init__(self, where: str, field_path: str, reason: str) -> None:
        self.where, self.field, self.reason = where, field_path, reason
        super().__init__(f"{where}: {field_path}: {reason}")


class Invalid(Exception):
    """Raised inside validation with a field path; turned into a TaskError by the caller."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


def text(value: Any, path: str, *, pattern: re.Pattern[str] | None = None,
         choices: Sequence[str] | None = None) -> str:
    """A non-empty string, optionally one of ``choices`` or matching ``pattern``."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(path, f"expected a non-empty string, got {value!r}")
    if choices is not None and value not in choices:
        raise Invalid(path, f"must be one of {', '.join(choices)}, got {value!r}")
    if pattern is not None and not pattern.match(value):
        raise Invalid(path, f"{value!r} is not a valid name: use lowercase letters and digits "
                            f"joined by '-' (names) or '_' (roles)")
    return value


def number(value: Any, path: str, *, allow_none: bool = False) -> float | None:
    """A finite int or float (a bool is not a number)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(path, f"expected a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise Invalid(path, f"expected a finite number, got {value!r}")
    return float(value)


def names(value: Any, path: str) -> tuple[str, ...]:
    """A tuple of distinct non-empty strings."""
    if not isinstance(value, tuple):
        raise Invalid(path, f"expected a list of names, got {value!r}")
    for i, v in enumerate(value):
        text(v, f"{path}[{i}]")
    if len(set(value)) != len(value):
        raise Invalid(path, f"names repeat: {list(value)}")
    return value


def check_intervention(item: Any, model: Model | None, path: str) -> None:
    """An :class:`Intervention`, and (given the truth) one on the truth's own names; a
    wrong name is reported on the field that holds it (``.state``, ``.source``...)."""
    if not isinstance(item, Intervention):
        raise Invalid(path, f"expected an intervention, got {item!r}")
    if model is None:
        return
    try:
        validate_interventions(model, [item])
    except ModelError as exc:
        reason = str(exc).split(": ", 1)[-1]
        sub = {SetValue: "target", Scale: "target", Dose: "state",
               Infusion: "target"}.get(type(item), "")
        if isinstance(item, Transfer):
            sub = "source" if item.source not in model.states_ else "target"
        raise Invalid(f"{path}.{sub}" if sub else path, reason) from None


def check_counterfactual(cf: Counterfactual, path: str) -> None:
    """A what-if question's own fields, checked when it is built; its interventions are
    checked against the truth by the task holding it (:mod:`evals.task_rules`)."""
    text(cf.question, f"{path}.question")
    if not cf.interventions:
        raise Invalid(f"{path}.interventions", "a counterfactual needs at least one "
                                               "intervention")
    for i, item in enumerate(cf.interventions):
        check_intervention(item, None, f"{path}.interventions[{i}]")
    number(cf.scored_from, f"{path}.scored_from")
