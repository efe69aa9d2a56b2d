"""Reading a task document (``mmw.task/1``, the format ``BenchTask.to_json`` writes).

A task file is untrusted data: it is parsed under :data:`TASK_JSON_LIMITS`, then read
field by field into the task's parts. This module checks only what the document's shape
decides (known and required fields, lists and objects where they belong, numbers where
an intervention or a time is built from them); the task's own rules run once, when the
:class:`~evals.task.BenchTask` is built (:mod:`evals.task_rules`). Either way the error
is a :class:`~evals.task_fields.TaskError` naming the file and the field path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from evals.task import FORMAT, BenchTask
from evals.task_fields import Invalid, TaskError, number, text
from evals.task_parts import Counterfactual, TaskInput
from mechanistic.errors import ModelError, UntrustedDataError
from mechanistic.expr import EXPR_LIMITS
from mechanistic.interventions import Intervention, intervention_from_dict
from mechanistic.model import Model
from mechanistic.serialize import model_from_dict
from mechanistic.untrusted import JsonLimits, parse_json

__all__ = ["TASK_JSON_LIMITS", "read_task"]

TASK_JSON_LIMITS = JsonLimits(max_bytes=64 * 1024 * 1024, max_depth=2 * EXPR_LIMITS.max_depth + 12)
"""A task file carries a model's JSON and its data: bounded like model JSON, a little larger."""

_FIELDS = ("format", "name", "domain", "difficulty", "tags", "variant", "description",
           "time_unit", "times", "train_until", "validate_until", "observed", "hidden",
           "truth_model", "truth_params", "conditions", "counterfactuals", "recover",
           "wrong_model", "noise_seed", "data_path", "solver_dt", "inputs")
_OPTIONAL = {"data_path": None, "solver_dt": None, "hidden": [], "conditions": [],
             "recover": {}, "wrong_model": None, "tags": [], "inputs": []}


def _numbers(value: Any, path: str) -> None:
    if not isinstance(value, list) or not value:
        raise Invalid(path, f"expected a non-empty list of numbers, got {value!r}")
    for j, x in enumerate(value):
        number(x, f"{path}[{j}]")


@dataclass(frozen=True)
class _Field:
    """One field of an intervention's JSON form: how its value is checked, whether it may
    be left out and whether it may be null."""

    check: Callable[[Any, str], object]
    required: bool = True
    nullable: bool = False


_NAME = _Field(text)
_NUMBER = _Field(number)
_START = _Field(number, required=False)
_END = _Field(number, required=False, nullable=True)
# in the order each kind's fields are checked (the first problem is the one reported)
_INTERVENTION_FIELDS: dict[str, dict[str, _Field]] = {
    "set": {"target": _NAME, "value": _NUMBER, "start": _START, "end": _END},
    "scale": {"target": _NAME, "factor": _NUMBER, "start": _START, "end": _END},
    "dose": {"state": _NAME, "amount": _NUMBER, "times": _Field(_numbers)},
    "transfer": {"source": _NAME, "target": _Field(text, nullable=True), "rate": _NUMBER,
                 "start": _START, "end": _END},
    "infusion": {"target": _NAME, "rate": _NUMBER, "start": _START, "end": _END},
}


def _intervention(data: Any, path: str) -> Intervention:
    """One intervention object, each field checked with its path before construction."""
    if not isinstance(data, dict):
        raise Invalid(path, f"expected an object, got {data!r}")
    kind = data.get("kind")
    spec = _INTERVENTION_FIELDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise Invalid(f"{path}.kind", f"must be one of {', '.join(_INTERVENTION_FIELDS)}, "
                                      f"got {kind!r}")
    for key in data:
        if key != "kind" and key not in spec:
            raise Invalid(f"{path}.{key}", f"unknown field for a {kind!r} intervention; "
                                           f"fields are {sorted(spec)}")
    for key, rule in spec.items():
        where = f"{path}.{key}"
        if key not in data:
            if not rule.required:
                continue
            raise Invalid(where, "missing")
        if data[key] is None and rule.nullable:
            continue
        rule.check(data[key], where)
    try:
        return intervention_from_dict(data)
    except ModelError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise Invalid(f"{path}.end" if "start < end" in reason else path, reason) from None


def _model(data: Any, path: str) -> Model | None:
    if data is None:
        return None
    try:
        return model_from_dict(data)
    except ModelError as exc:  # SerializationError is a ModelError
        raise Invalid(path, str(exc)) from None


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise Invalid(key, f"expected a list, got {value!r}")
    return value


def _object(value: Any, path: str, fields: tuple[str, ...], required: tuple[str, ...]
            ) -> dict[str, Any]:
    """A JSON object with only ``fields``, and every one of ``required``."""
    if not isinstance(value, dict):
        raise Invalid(path, f"expected an object, got {value!r}")
    for key in value:
        if key not in fields:
            raise Invalid(f"{path}.{key}", f"unknown field; fields are {', '.join(fields)}")
    for key in required:
        if key not in value:
            raise Invalid(f"{path}.{key}", "missing")
    return value


def _counterfactual(c: Any, where: str) -> Counterfactual:
    fields = ("question", "interventions", "scored_from")
    c = _object(c, where, fields, fields)
    if not isinstance(c["interventions"], list):
        raise Invalid(f"{where}.interventions", "expected a list of interventions")
    items = tuple(_intervention(x, f"{where}.interventions[{j}]")
                  for j, x in enumerate(c["interventions"]))
    try:
        return Counterfactual(c["question"], items, c["scored_from"])
    except TaskError as exc:  # its own fields, checked where it is built
        raise Invalid(f"{where}{exc.field.removeprefix('counterfactual')}",
                      exc.reason) from None


def _input(item: Any, where: str) -> TaskInput:
    item = _object(item, where, ("name", "values", "interpolation", "doc"), ("name", "values"))
    if not isinstance(item["values"], list):
        raise Invalid(f"{where}.values", "expected a list of numbers")
    for j, x in enumerate(item["values"]):
        number(x, f"{where}.values[{j}]")
    text(item.get("doc", "") or "-", f"{where}.doc")
    return TaskInput(item["name"], tuple(item["values"]), item.get("interpolation", "previous"),
                     item.get("doc", ""))


def _parse(data: Any) -> BenchTask:
    if not isinstance(data, dict):
        raise Invalid("(document)", f"expected a JSON object, got {type(data).__name__}")
    for key in data:
        if key not in _FIELDS:
            raise Invalid(key, f"unknown field; fields are {', '.join(_FIELDS)}")
    data = {**_OPTIONAL, **data}
    for key in _FIELDS:
        if key not in data:
            raise Invalid(key, "missing")
    if data["format"] != FORMAT:
        raise Invalid("format", f"expected {FORMAT!r}, got {data['format']!r}")
    times = _list(data, "times")
    for i, x in enumerate(times):
        number(x, f"times[{i}]")
    for key in ("tags", "observed", "hidden"):
        _list(data, key)
    for key in ("truth_params", "recover"):
        if not isinstance(data[key], dict):
            raise Invalid(key, f"expected an object, got {data[key]!r}")
    conditions = tuple(_intervention(x, f"conditions[{i}]")
                       for i, x in enumerate(_list(data, "conditions")))
    cfs = tuple(_counterfactual(c, f"counterfactuals[{i}]")
                for i, c in enumerate(_list(data, "counterfactuals")))
    inputs = tuple(_input(item, f"inputs[{i}]") for i, item in enumerate(_list(data, "inputs")))
    return BenchTask(
        name=data["name"], domain=data["domain"], difficulty=data["difficulty"],
        tags=tuple(data["tags"]), variant=data["variant"], description=data["description"],
        time_unit=data["time_unit"], times=np.asarray(times, dtype=float),
        train_until=data["train_until"], validate_until=data["validate_until"],
        observed=tuple(data["observed"]), hidden=tuple(data["hidden"]),
        truth_model=_model(data["truth_model"], "truth_model"),
        truth_params=dict(data["truth_params"]), conditions=conditions,
        counterfactuals=cfs, recover=dict(data["recover"]),
        wrong_model=_model(data["wrong_model"], "wrong_model"),
        noise_seed=data["noise_seed"], data_path=data["data_path"],
        solver_dt=data["solver_dt"], inputs=inputs)


def read_task(text_or_dict: str | bytes | Mapping[str, Any],
              source: str = "<task>") -> BenchTask:
    """Load and validate a task from its JSON text or parsed object.

    Raises :class:`TaskError` naming ``source`` and the field path of the first problem.
    """
    if isinstance(text_or_dict, str | bytes):
        try:
            data = parse_json(text_or_dict, "JSON", TASK_JSON_LIMITS)
        except UntrustedDataError as exc:
            raise TaskError(source, "(document)", str(exc).removeprefix("JSON: ")) from None
    else:
        data = dict(text_or_dict) if isinstance(text_or_dict, Mapping) else text_or_dict
    try:
        return _parse(data)
    except Invalid as exc:
        raise TaskError(source, exc.path, exc.reason) from None
    except TaskError as exc:
        raise TaskError(source, exc.field, exc.reason) from None
