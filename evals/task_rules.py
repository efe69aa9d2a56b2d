"""The rules a benchmark task must satisfy: its names, windows, truth, questions and inputs.

:func:`check_task` runs once, when a :class:`~evals.task.BenchTask` is built (from Python
or from JSON by :mod:`evals.task_json`), and raises :class:`~evals.task_fields.Invalid`
with the path of the first field at fault. A simulated task's parameters, interventions,
questions and inputs are checked against its truth model's own names; a real-data task's
observed columns and times against its CSV file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evals.task_fields import Invalid, check_intervention, names, number, text
from evals.task_parts import Counterfactual, TaskInput
from mechanistic.data import load_csv
from mechanistic.errors import DataError
from mechanistic.model import Model

if TYPE_CHECKING:
    from evals.task import BenchTask

__all__ = ["DIFFICULTIES", "DOMAINS", "REPO", "VARIANTS", "check_task", "resolve"]

DOMAINS = ("epidemiology", "oncology", "ecology", "pharmacology", "physiology", "bioprocess",
           "chemistry", "systems-biology", "hydrology")
DIFFICULTIES = ("easy", "medium", "hard")
VARIANTS = ("full", "partial", "real")
REPO = Path(__file__).resolve().parent.parent  # relative data paths are read from here

_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ROLE = re.compile(r"^[a-z][a-z0-9_]*$")


def resolve(path: str) -> Path:
    """A task's data path: absolute, or relative to the repository."""
    p = Path(path)
    return p if p.is_absolute() else REPO / p


def check_task(task: BenchTask) -> None:
    """Every rule a task must satisfy, in the order its fields are read; the first broken
    one raises :class:`Invalid` with its path."""
    text(task.name, "name", pattern=_NAME)
    text(task.domain, "domain", choices=DOMAINS)
    text(task.difficulty, "difficulty", choices=DIFFICULTIES)
    text(task.variant, "variant", choices=VARIANTS)
    for i, tag in enumerate(names(task.tags, "tags")):
        text(tag, f"tags[{i}]", pattern=_NAME)
    if len(text(task.description, "description")) < 40:
        raise Invalid("description", "too short to describe a system (under 40 characters)")
    text(task.time_unit, "time_unit")
    t = task.times
    if t.ndim != 1 or t.size < 4 or not np.isfinite(t).all():
        raise Invalid("times", "expected at least 4 finite observation times")
    if not (np.diff(t) > 0).all():
        raise Invalid("times", "must be strictly increasing")
    train = number(task.train_until, "train_until")
    valid = number(task.validate_until, "validate_until")
    if not t[1] <= train < t[-1]:  # type: ignore[operator]
        raise Invalid("train_until", f"{train:g} must leave at least two training rows and "
                                      f"lie before the last time {t[-1]:g}")
    if not train < valid < t[-1]:  # type: ignore[operator]
        raise Invalid("validate_until", f"{valid:g} must lie after train_until={train:g} and "
                                         f"before the last time {t[-1]:g} (a test window)")
    observed = names(task.observed, "observed")
    if not observed:
        raise Invalid("observed", "at least one observed column is needed")
    hidden = names(task.hidden, "hidden")
    if isinstance(task.noise_seed, bool) or not isinstance(task.noise_seed, int) \
            or task.noise_seed < 0:
        raise Invalid("noise_seed", f"expected a non-negative integer, got {task.noise_seed!r}")
    number(task.solver_dt, "solver_dt", allow_none=True)
    if task.solver_dt is not None and task.solver_dt <= 0:
        raise Invalid("solver_dt", f"must be > 0, got {task.solver_dt!r}")
    model = task.truth_model
    if model is not None and not isinstance(model, Model):
        raise Invalid("truth_model", f"expected a Model or null, got {type(model).__name__}")
    if task.wrong_model is not None and not isinstance(task.wrong_model, Model):
        raise Invalid("wrong_model", f"expected a Model or null, got "
                                      f"{type(task.wrong_model).__name__}")
    if not isinstance(task.truth_params, dict):
        raise Invalid("truth_params", "expected an object of parameter values")
    if not isinstance(task.recover, dict):
        raise Invalid("recover", "expected an object mapping roles to truth parameters")
    for name, value in task.truth_params.items():
        number(value, f"truth_params.{name}")
    for role, param in task.recover.items():
        text(param, f"recover.{role}")
    if not isinstance(task.conditions, tuple):
        raise Invalid("conditions", "expected a list of interventions")
    if not isinstance(task.counterfactuals, tuple):
        raise Invalid("counterfactuals", "expected a list of counterfactuals")

    if task.variant == "real" or model is None:
        if task.variant != "real":
            raise Invalid("truth_model", "only a real-data task (variant 'real') may have none")
        if model is not None:
            raise Invalid("truth_model", "a real-data task has no truth model (null)")
        if task.data_path is None:
            raise Invalid("data_path", "a real-data task needs its CSV file")
        for key in ("truth_params", "recover"):
            if getattr(task, key):
                raise Invalid(key, "a real-data task has no ground truth; leave it empty")
        for key in ("conditions", "counterfactuals", "hidden"):
            if getattr(task, key):
                raise Invalid(key, "a real-data task is forecast-only; leave it empty")
        _check_real_data(task)
    else:
        if task.data_path is not None:
            raise Invalid("data_path", "a simulated task has no data file (null)")
        _check_truth(task, model)
    if task.wrong_model is not None:
        missing = [o for o in observed if o not in task.wrong_model.observables_]
        if missing:
            raise Invalid("wrong_model", f"must observe every observed column; it lacks "
                                          f"{missing}")
    for i, name in enumerate(hidden):
        if model is not None and name not in model.states_:
            raise Invalid(f"hidden[{i}]", f"{name!r} is not a state of the truth; states: "
                                           f"{model.state_names}")
    _check_inputs(task, model)


def _check_inputs(task: BenchTask, model: Model | None) -> None:
    from mechanistic.inputs import INTERPOLATIONS

    seen: set[str] = set()
    for i, item in enumerate(task.inputs):
        where = f"inputs[{i}]"
        if not isinstance(item, TaskInput):
            raise Invalid(where, f"expected a TaskInput, got {item!r}")
        text(item.name, f"{where}.name")
        if item.name in seen or item.name in task.observed:
            raise Invalid(f"{where}.name", f"{item.name!r} is already an input or an observed "
                                            f"column")
        seen.add(item.name)
        if model is not None and item.name not in model.controls_:
            raise Invalid(f"{where}.name", f"{item.name!r} is not a control of the truth; "
                                            f"controls: {model.control_names}")
        text(item.interpolation, f"{where}.interpolation", choices=INTERPOLATIONS)
        values = np.asarray(item.values, dtype=float)
        if values.shape != task.times.shape or not np.isfinite(values).all():
            raise Invalid(f"{where}.values", f"expected {task.times.size} finite numbers, one "
                                              f"per time")


def _check_truth(task: BenchTask, model: Model) -> None:
    for i, name in enumerate(task.observed):
        if name not in model.observables_:
            raise Invalid(f"observed[{i}]", f"{name!r} is not an observable of the truth; it "
                                             f"observes {model.observable_names}")
    for name, value in task.truth_params.items():
        where = f"truth_params.{name}"
        if name not in model.params_:
            raise Invalid(where, f"{name!r} is not a parameter of the truth; parameters: "
                                  f"{model.param_names}")
        v = float(value)
        if not np.isfinite(model.params_[name].prior.log_prob(np.array([v]))).all():
            raise Invalid(where, f"{v:g} lies outside its prior "
                                  f"{model.params_[name].prior.describe()}")
    missing = [p for p in model.param_names if p not in task.truth_params]
    if missing:
        raise Invalid("truth_params", f"no value for truth parameter(s) {missing}")
    for i, item in enumerate(task.conditions):
        check_intervention(item, model, f"conditions[{i}]")
    if not task.counterfactuals:
        raise Invalid("counterfactuals", "a simulated task needs at least one what-if question")
    for i, cf in enumerate(task.counterfactuals):
        if not isinstance(cf, Counterfactual):
            raise Invalid(f"counterfactuals[{i}]", f"expected a Counterfactual, got {cf!r}")
        _check_question(cf, f"counterfactuals[{i}]", model, task.times)
    for role, param in task.recover.items():
        text(role, f"recover.{role}", pattern=_ROLE)
        if param not in model.params_:
            raise Invalid(f"recover.{role}", f"{param!r} is not a parameter of the truth")


def _check_real_data(task: BenchTask) -> None:
    path = resolve(text(task.data_path, "data_path"))
    try:
        data = load_csv(path)
    except DataError as exc:
        raise Invalid("data_path", str(exc)) from None
    for i, name in enumerate(task.observed):
        if name not in data.values:
            raise Invalid(f"observed[{i}]", f"{name!r} is not a column of {task.data_path}; "
                                             f"columns: {data.columns}")
    if data.t.shape != task.times.shape or not np.allclose(data.t, task.times):
        raise Invalid("times", f"must be the time column of {task.data_path}")




def _check_question(cf: Counterfactual, path: str, model: Model, times: np.ndarray) -> None:
    """A what-if question against the truth: its interventions on the truth's names, and
    its scoring start inside the observation times (its own fields were checked when it
    was built)."""
    for i, item in enumerate(cf.interventions):
        check_intervention(item, model, f"{path}.interventions[{i}]")
    start = cf.scored_from
    if not times[0] <= start < times[-1]:
        raise Invalid(f"{path}.scored_from", f"{start:g} is outside the observation times "
                                             f"[{times[0]:g}, {times[-1]:g})")
