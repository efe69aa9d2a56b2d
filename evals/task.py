"""Benchmark tasks: a ground truth, how it was observed, and what-if questions about it.

A :class:`BenchTask` is everything the evaluation needs and nothing an agent may see
beyond its description and training rows. Tasks are data: they round-trip through JSON
(models through :mod:`mechanistic.serialize`, interventions through their ``to_dict``),
so a suite can be shipped, edited and reloaded without running any code that came with
it. Every field is validated when a task is built or loaded, and a bad one is reported by
its path in the document ("seir.json: counterfactuals[0].interventions[1].start: expected
a number, got 'abc'") because a benchmark that silently scores against a typo is worse
than one that refuses to load.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from mechanistic.data import ObservedData, load_csv
from mechanistic.errors import DataError, ModelError, UntrustedDataError
from mechanistic.expr import EXPR_LIMITS
from mechanistic.interventions import (
    Dose,
    Infusion,
    Intervention,
    Scale,
    SetValue,
    Transfer,
    intervention_from_dict,
    validate_interventions,
)
from mechanistic.model import Model
from mechanistic.serialize import model_from_dict, model_to_dict
from mechanistic.untrusted import JsonLimits, parse_json

__all__ = [
    "DIFFICULTIES",
    "DOMAINS",
    "FORMAT",
    "VARIANTS",
    "BenchTask",
    "Counterfactual",
    "TaskError",
    "TaskInput",
    "task_from_json",
]

FORMAT = "mmw.task/1"
DOMAINS = ("epidemiology", "oncology", "ecology", "pharmacology", "physiology", "bioprocess",
           "chemistry", "systems-biology")
DIFFICULTIES = ("easy", "medium", "hard")
VARIANTS = ("full", "partial", "real")
REPO = Path(__file__).resolve().parent.parent  # relative data paths are read from here

_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ROLE = re.compile(r"^[a-z][a-z0-9_]*$")
# A measurement this far below the series' peak is "below the limit of quantification":
# a log-normal sample of (almost) zero carries no information and breaks log-likelihoods.


class TaskError(ValueError):
    """A malformed task; the message names the document and the field at fault."""

    def __init__(self, where: str, field_path: str, reason: str) -> None:
        self.where, self.field, self.reason = where, field_path, reason
        super().__init__(f"{where}: {field_path}: {reason}")


class _Invalid(Exception):
    """Raised inside validation with a field path; turned into a TaskError by the caller."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Counterfactual:
    """A what-if question in plain language, and its answer on the truth's own names."""

    question: str
    interventions: tuple[Intervention, ...]
    scored_from: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "interventions", tuple(self.interventions))
        try:
            _check_counterfactual(self, "counterfactual")
        except _Invalid as exc:
            raise TaskError("counterfactual", exc.path, exc.reason) from None
        object.__setattr__(self, "scored_from", float(self.scored_from))

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question,
                "interventions": [i.to_dict() for i in self.interventions],
                "scored_from": self.scored_from}


@dataclass(frozen=True)
class TaskInput:
    """A known input of the study (a feed or dilution rate, a dose rate, a temperature):
    one value per observation time, a control of the truth with the same name. Agents are
    handed it as a known input (``mechanistic.inputs.InputSeries``), never as an
    observation to fit."""

    name: str
    values: tuple[float, ...]
    interpolation: str = "previous"
    doc: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))

    def series(self, times: np.ndarray) -> Any:
        from mechanistic.inputs import InputSeries

        return InputSeries(self.name, times, np.asarray(self.values), self.interpolation,
                           self.doc)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "values": list(self.values),
                "interpolation": self.interpolation, "doc": self.doc}


@dataclass(frozen=True, eq=False)
class BenchTask:
    """One benchmark task: what the agent reads, the truth behind it, and the questions.

    Rows with ``t <= train_until`` are for fitting, ``(train_until, validate_until]`` for
    ranking candidates, and later rows are the test window: shown to no agent.
    """

    name: str
    domain: str
    difficulty: str
    tags: tuple[str, ...]
    variant: str
    description: str
    time_unit: str
    times: np.ndarray
    train_until: float
    validate_until: float
    observed: tuple[str, ...]
    hidden: tuple[str, ...]
    truth_model: Model | None
    truth_params: dict[str, float]
    conditions: tuple[Intervention, ...]
    counterfactuals: tuple[Counterfactual, ...]
    recover: dict[str, str]
    wrong_model: Model | None
    noise_seed: int
    data_path: str | None = None
    solver_dt: float | None = field(default=None)  # fixed RK4 step; None: adaptive Dopri5
    inputs: tuple[TaskInput, ...] = ()

    def __post_init__(self) -> None:
        for name in ("tags", "observed", "hidden", "conditions", "counterfactuals", "inputs"):
            value = getattr(self, name)
            if isinstance(value, list | tuple):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.truth_params, Mapping):
            object.__setattr__(self, "truth_params", dict(self.truth_params))
        if isinstance(self.recover, Mapping):
            object.__setattr__(self, "recover", dict(self.recover))
        try:
            times = np.asarray(self.times, dtype=float)
        except (TypeError, ValueError):
            raise TaskError(self._where, "times", "expected a list of numbers") from None
        times = times.copy()
        times.setflags(write=False)
        object.__setattr__(self, "times", times)
        try:
            _check_task(self)
        except _Invalid as exc:
            raise TaskError(self._where, exc.path, exc.reason) from None
        # numbers as floats, so a task built in Python and its JSON reload are identical
        object.__setattr__(self, "truth_params",
                           {k: float(v) for k, v in self.truth_params.items()})
        for name in ("train_until", "validate_until"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "_compiled", None)
        object.__setattr__(self, "_cache", {})

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_compiled"] = None  # a compiled simulator is a cache, rebuilt on demand
        state["_cache"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def _where(self) -> str:
        return f"task {self.name!r}" if isinstance(self.name, str) else "task"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BenchTask):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ truth
    def _solver(self) -> Any:
        """Adaptive Dormand-Prince at tight tolerances unless the task fixes an RK4 step:
        the truth should be exact to well below any noise, whatever its time scales."""
        from mechanistic.simulate import RK4, Dopri5

        if self.solver_dt is not None:
            return RK4(dt=self.solver_dt)
        return Dopri5(rtol=1e-7, atol=1e-9)

    def truth_mean(self, t: Sequence[float] | np.ndarray,
                   interventions: Sequence[Intervention] = ()) -> dict[str, np.ndarray]:
        """Noise-free observed quantities of the truth on ``t``, with the study's
        conditions (doses, treatments) and then ``interventions`` applied.

        Results are memoised per (times, interventions): scoring asks for the same
        baseline and counterfactual trajectories again and again."""
        if self.truth_model is None:
            raise TaskError(self._where, "truth_model", "a real-data task has no truth model")
        grid = np.asarray(t, dtype=float)
        items = list(interventions)
        key = (grid.tobytes(), json.dumps([i.to_dict() for i in items]))
        cache: dict[Any, dict[str, np.ndarray]] = self._cache  # type: ignore[has-type]
        if key not in cache:
            import torch

            from mechanistic.simulate import compile_model

            if self._compiled is None:  # type: ignore[has-type]
                object.__setattr__(self, "_compiled", compile_model(self.truth_model))
            params = {k: torch.tensor([v], dtype=torch.float64)
                      for k, v in self.truth_params.items()}
            with torch.no_grad():
                sim = self._compiled.simulate(  # type: ignore[has-type]
                    params, grid, solver=self._solver(),
                    interventions=[*self.conditions, *items], controls=self.controls,
                    t0=float(self.times[0]))
            if len(cache) >= 64:
                cache.pop(next(iter(cache)))
            cache[key] = {name: sim.observable(name)[0].detach().numpy().copy()
                          for name in self.observed}
        return {name: values.copy() for name, values in cache[key].items()}

    def sample_noisy(self, mean: Mapping[str, np.ndarray],
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One noisy realisation of ``mean`` under each observable's declared noise, at the
        truth's parameter values, by the noise kind's own sampler (log-normal values below
        the limit of quantification, e.g. before the first dose, are NaN)."""
        if self.truth_model is None:
            raise TaskError(self._where, "truth_model",
                            "a real-data task has no declared noise to sample from")
        out = {}
        for name, values in mean.items():
            obs = self.truth_model.observables_.get(name)
            if obs is None:
                raise TaskError(self._where, "observed", f"{name!r} is not an observable")
            f = np.asarray(values, dtype=float)
            noise = obs.noise
            arg = {k: self._value(v) for k, v in noise.arguments().items()}
            y = noise.sample(f, arg, rng)
            out[name] = y
        return out

    def _value(self, expr: sp.Expr) -> float:
        """A noise argument (a parameter, constant or expression of them) at the truth."""
        assert self.truth_model is not None
        subs = {sp.Symbol(k): v for k, v in self.truth_params.items()}
        subs.update({sp.Symbol(c.name): c.value for c in self.truth_model.constants_.values()})
        return float(sp.sympify(expr).subs(subs))

    # ------------------------------------------------------------------ data
    def observations(self, seed: int) -> ObservedData:
        """The data an experiment would have produced: the truth's mean plus declared
        noise, seeded by ``(noise_seed, seed)``; the CSV itself for a real-data task."""
        tname = {"day": "day", "hour": "hour", "year": "year", "week": "week"}.get(
            self.time_unit, "t")
        if self.truth_model is None:
            assert self.data_path is not None
            data = load_csv(_resolve(self.data_path))
            return ObservedData(data.t, {c: data.values[c] for c in self.observed},
                                time_name=data.time_name, source=f"bench:{self.name}")
        rng = np.random.default_rng(np.random.SeedSequence([self.noise_seed, int(seed)]))
        values = self.sample_noisy(self.truth_mean(self.times), rng)
        return ObservedData(self.times, {c: values[c] for c in self.observed},
                            time_name=tname, source=f"bench:{self.name}")

    @property
    def controls(self) -> dict[str, Any]:
        """The known inputs' schedules, as the truth and every agent simulate them."""
        return {i.name: i.series(self.times).schedule() for i in self.inputs}

    def input_series(self) -> tuple[Any, ...]:
        return tuple(i.series(self.times) for i in self.inputs)

    def agent_task(self, seed: int) -> Any:
        """What an agent is handed: the description and every row, the test window held
        out by ``validate_until`` (the search fits and ranks only on earlier rows), and the
        known inputs over the whole span (they are set by the experimenter, not measured)."""
        from agent.core import Task

        return Task(self.description, self.observations(seed), train_until=self.train_until,
                    validate_until=self.validate_until, time_unit=self.time_unit,
                    inputs=self.input_series())

    def test_mask(self) -> np.ndarray:
        return self.times > self.validate_until

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "domain": self.domain,
            "difficulty": self.difficulty,
            "tags": list(self.tags),
            "variant": self.variant,
            "description": self.description,
            "time_unit": self.time_unit,
            "times": [float(x) for x in self.times],
            "train_until": self.train_until,
            "validate_until": self.validate_until,
            "observed": list(self.observed),
            "hidden": list(self.hidden),
            "truth_model": None if self.truth_model is None else model_to_dict(self.truth_model),
            "truth_params": dict(self.truth_params),
            "conditions": [i.to_dict() for i in self.conditions],
            "counterfactuals": [c.to_dict() for c in self.counterfactuals],
            "recover": dict(self.recover),
            "wrong_model": None if self.wrong_model is None else model_to_dict(self.wrong_model),
            "noise_seed": self.noise_seed,
            "data_path": self.data_path,
            "solver_dt": self.solver_dt,
            "inputs": [i.to_dict() for i in self.inputs],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else REPO / p


# ---------------------------------------------------------------------- validation
def _text(value: Any, path: str, *, pattern: re.Pattern[str] | None = None,
          choices: Sequence[str] | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(path, f"expected a non-empty string, got {value!r}")
    if choices is not None and value not in choices:
        raise _Invalid(path, f"must be one of {', '.join(choices)}, got {value!r}")
    if pattern is not None and not pattern.match(value):
        raise _Invalid(path, f"{value!r} is not a valid name: use lowercase letters and digits "
                             f"joined by '-' (names) or '_' (roles)")
    return value


def _number(value: Any, path: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(path, f"expected a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise _Invalid(path, f"expected a finite number, got {value!r}")
    return float(value)


def _names(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, tuple):
        raise _Invalid(path, f"expected a list of names, got {value!r}")
    for i, v in enumerate(value):
        _text(v, f"{path}[{i}]")
    if len(set(value)) != len(value):
        raise _Invalid(path, f"names repeat: {list(value)}")
    return value


def _check_intervention(item: Any, model: Model | None, path: str) -> None:
    if not isinstance(item, Intervention):
        raise _Invalid(path, f"expected an intervention, got {item!r}")
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
        raise _Invalid(f"{path}.{sub}" if sub else path, reason) from None


def _check_counterfactual(cf: Counterfactual, path: str, model: Model | None = None,
                          times: np.ndarray | None = None) -> None:
    _text(cf.question, f"{path}.question")
    if not cf.interventions:
        raise _Invalid(f"{path}.interventions", "a counterfactual needs at least one "
                                                "intervention")
    for i, item in enumerate(cf.interventions):
        _check_intervention(item, model, f"{path}.interventions[{i}]")
    start = _number(cf.scored_from, f"{path}.scored_from")
    if times is not None and not times[0] <= start < times[-1]:  # type: ignore[operator]
        raise _Invalid(f"{path}.scored_from", f"{start:g} is outside the observation times "
                                              f"[{times[0]:g}, {times[-1]:g})")


def _check_task(task: BenchTask) -> None:
    _text(task.name, "name", pattern=_NAME)
    _text(task.domain, "domain", choices=DOMAINS)
    _text(task.difficulty, "difficulty", choices=DIFFICULTIES)
    _text(task.variant, "variant", choices=VARIANTS)
    for i, tag in enumerate(_names(task.tags, "tags")):
        _text(tag, f"tags[{i}]", pattern=_NAME)
    if len(_text(task.description, "description")) < 40:
        raise _Invalid("description", "too short to describe a system (under 40 characters)")
    _text(task.time_unit, "time_unit")
    t = task.times
    if t.ndim != 1 or t.size < 4 or not np.isfinite(t).all():
        raise _Invalid("times", "expected at least 4 finite observation times")
    if not (np.diff(t) > 0).all():
        raise _Invalid("times", "must be strictly increasing")
    train = _number(task.train_until, "train_until")
    valid = _number(task.validate_until, "validate_until")
    if not t[1] <= train < t[-1]:  # type: ignore[operator]
        raise _Invalid("train_until", f"{train:g} must leave at least two training rows and "
                                      f"lie before the last time {t[-1]:g}")
    if not train < valid < t[-1]:  # type: ignore[operator]
        raise _Invalid("validate_until", f"{valid:g} must lie after train_until={train:g} and "
                                         f"before the last time {t[-1]:g} (a test window)")
    observed = _names(task.observed, "observed")
    if not observed:
        raise _Invalid("observed", "at least one observed column is needed")
    hidden = _names(task.hidden, "hidden")
    if isinstance(task.noise_seed, bool) or not isinstance(task.noise_seed, int) \
            or task.noise_seed < 0:
        raise _Invalid("noise_seed", f"expected a non-negative integer, got {task.noise_seed!r}")
    _number(task.solver_dt, "solver_dt", allow_none=True)
    if task.solver_dt is not None and task.solver_dt <= 0:
        raise _Invalid("solver_dt", f"must be > 0, got {task.solver_dt!r}")
    model = task.truth_model
    if model is not None and not isinstance(model, Model):
        raise _Invalid("truth_model", f"expected a Model or null, got {type(model).__name__}")
    if task.wrong_model is not None and not isinstance(task.wrong_model, Model):
        raise _Invalid("wrong_model", f"expected a Model or null, got "
                                      f"{type(task.wrong_model).__name__}")
    if not isinstance(task.truth_params, dict):
        raise _Invalid("truth_params", "expected an object of parameter values")
    if not isinstance(task.recover, dict):
        raise _Invalid("recover", "expected an object mapping roles to truth parameters")
    if not isinstance(task.conditions, tuple):
        raise _Invalid("conditions", "expected a list of interventions")
    if not isinstance(task.counterfactuals, tuple):
        raise _Invalid("counterfactuals", "expected a list of counterfactuals")

    if task.variant == "real" or model is None:
        if task.variant != "real":
            raise _Invalid("truth_model", "only a real-data task (variant 'real') may have none")
        if model is not None:
            raise _Invalid("truth_model", "a real-data task has no truth model (null)")
        if task.data_path is None:
            raise _Invalid("data_path", "a real-data task needs its CSV file")
        for key in ("truth_params", "recover"):
            if getattr(task, key):
                raise _Invalid(key, "a real-data task has no ground truth; leave it empty")
        for key in ("conditions", "counterfactuals", "hidden"):
            if getattr(task, key):
                raise _Invalid(key, "a real-data task is forecast-only; leave it empty")
        _check_real_data(task)
    else:
        if task.data_path is not None:
            raise _Invalid("data_path", "a simulated task has no data file (null)")
        _check_truth(task, model)
    if task.wrong_model is not None:
        missing = [o for o in observed if o not in task.wrong_model.observables_]
        if missing:
            raise _Invalid("wrong_model", f"must observe every observed column; it lacks "
                                          f"{missing}")
    for i, name in enumerate(hidden):
        if model is not None and name not in model.states_:
            raise _Invalid(f"hidden[{i}]", f"{name!r} is not a state of the truth; states: "
                                           f"{model.state_names}")
    _check_inputs(task, model)


def _check_inputs(task: BenchTask, model: Model | None) -> None:
    from mechanistic.inputs import INTERPOLATIONS

    seen: set[str] = set()
    for i, item in enumerate(task.inputs):
        where = f"inputs[{i}]"
        if not isinstance(item, TaskInput):
            raise _Invalid(where, f"expected a TaskInput, got {item!r}")
        _text(item.name, f"{where}.name")
        if item.name in seen or item.name in task.observed:
            raise _Invalid(f"{where}.name", f"{item.name!r} is already an input or an observed "
                                            f"column")
        seen.add(item.name)
        if model is not None and item.name not in model.controls_:
            raise _Invalid(f"{where}.name", f"{item.name!r} is not a control of the truth; "
                                            f"controls: {model.control_names}")
        _text(item.interpolation, f"{where}.interpolation", choices=INTERPOLATIONS)
        values = np.asarray(item.values, dtype=float)
        if values.shape != task.times.shape or not np.isfinite(values).all():
            raise _Invalid(f"{where}.values", f"expected {task.times.size} finite numbers, one "
                                              f"per time")


def _check_truth(task: BenchTask, model: Model) -> None:
    for i, name in enumerate(task.observed):
        if name not in model.observables_:
            raise _Invalid(f"observed[{i}]", f"{name!r} is not an observable of the truth; it "
                                             f"observes {model.observable_names}")
    for name, value in task.truth_params.items():
        where = f"truth_params.{name}"
        if name not in model.params_:
            raise _Invalid(where, f"{name!r} is not a parameter of the truth; parameters: "
                                  f"{model.param_names}")
        v = _number(value, where)
        if not np.isfinite(model.params_[name].prior.log_prob(np.array([v]))).all():
            raise _Invalid(where, f"{v:g} lies outside its prior "
                                  f"{model.params_[name].prior.describe()}")
    missing = [p for p in model.param_names if p not in task.truth_params]
    if missing:
        raise _Invalid("truth_params", f"no value for truth parameter(s) {missing}")
    for i, item in enumerate(task.conditions):
        _check_intervention(item, model, f"conditions[{i}]")
    if not task.counterfactuals:
        raise _Invalid("counterfactuals", "a simulated task needs at least one what-if question")
    for i, cf in enumerate(task.counterfactuals):
        if not isinstance(cf, Counterfactual):
            raise _Invalid(f"counterfactuals[{i}]", f"expected a Counterfactual, got {cf!r}")
        _check_counterfactual(cf, f"counterfactuals[{i}]", model, task.times)
    for role, param in task.recover.items():
        _text(role, f"recover.{role}", pattern=_ROLE)
        if param not in model.params_:
            raise _Invalid(f"recover.{role}", f"{param!r} is not a parameter of the truth")


def _check_real_data(task: BenchTask) -> None:
    path = _resolve(_text(task.data_path, "data_path"))
    try:
        data = load_csv(path)
    except DataError as exc:
        raise _Invalid("data_path", str(exc)) from None
    for i, name in enumerate(task.observed):
        if name not in data.values:
            raise _Invalid(f"observed[{i}]", f"{name!r} is not a column of {task.data_path}; "
                                             f"columns: {data.columns}")
    if data.t.shape != task.times.shape or not np.allclose(data.t, task.times):
        raise _Invalid("times", f"must be the time column of {task.data_path}")


# ---------------------------------------------------------------------- loading
_FIELDS = ("format", "name", "domain", "difficulty", "tags", "variant", "description",
           "time_unit", "times", "train_until", "validate_until", "observed", "hidden",
           "truth_model", "truth_params", "conditions", "counterfactuals", "recover",
           "wrong_model", "noise_seed", "data_path", "solver_dt", "inputs")
_OPTIONAL = {"data_path": None, "solver_dt": None, "hidden": [], "conditions": [],
             "recover": {}, "wrong_model": None, "tags": [], "inputs": []}
_INTERVENTION_FIELDS: dict[str, dict[str, str]] = {
    "set": {"target": "name", "value": "number", "start": "number?", "end": "number|null?"},
    "scale": {"target": "name", "factor": "number", "start": "number?", "end": "number|null?"},
    "dose": {"state": "name", "amount": "number", "times": "numbers"},
    "transfer": {"source": "name", "target": "name|null", "rate": "number",
                 "start": "number?", "end": "number|null?"},
    "infusion": {"target": "name", "rate": "number", "start": "number?",
                 "end": "number|null?"},
}


def _intervention(data: Any, path: str) -> Intervention:
    """One intervention object, each field checked with its path before construction."""
    if not isinstance(data, dict):
        raise _Invalid(path, f"expected an object, got {data!r}")
    kind = data.get("kind")
    spec = _INTERVENTION_FIELDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise _Invalid(f"{path}.kind", f"must be one of {', '.join(_INTERVENTION_FIELDS)}, "
                                       f"got {kind!r}")
    for key in data:
        if key != "kind" and key not in spec:
            raise _Invalid(f"{path}.{key}", f"unknown field for a {kind!r} intervention; "
                                            f"fields are {sorted(spec)}")
    for key, rule in spec.items():
        where = f"{path}.{key}"
        if key not in data:
            if rule.endswith("?"):
                continue
            raise _Invalid(where, "missing")
        value = data[key]
        if value is None and "null" in rule:
            continue
        if rule.startswith("name"):
            _text(value, where)
        elif rule.startswith("number") and rule != "numbers":
            _number(value, where)
        else:
            if not isinstance(value, list) or not value:
                raise _Invalid(where, f"expected a non-empty list of numbers, got {value!r}")
            for j, x in enumerate(value):
                _number(x, f"{where}[{j}]")
    try:
        return intervention_from_dict(data)
    except ModelError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise _Invalid(f"{path}.end" if "start < end" in reason else path, reason) from None


def _model(data: Any, path: str) -> Model | None:
    if data is None:
        return None
    try:
        return model_from_dict(data)
    except ModelError as exc:  # SerializationError is a ModelError
        raise _Invalid(path, str(exc)) from None


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise _Invalid(key, f"expected a list, got {value!r}")
    return value


def _parse(data: Any) -> BenchTask:
    if not isinstance(data, dict):
        raise _Invalid("(document)", f"expected a JSON object, got {type(data).__name__}")
    for key in data:
        if key not in _FIELDS:
            raise _Invalid(key, f"unknown field; fields are {', '.join(_FIELDS)}")
    data = {**{k: v for k, v in _OPTIONAL.items()}, **data}
    for key in _FIELDS:
        if key not in data:
            raise _Invalid(key, "missing")
    if data["format"] != FORMAT:
        raise _Invalid("format", f"expected {FORMAT!r}, got {data['format']!r}")
    times = _list(data, "times")
    for i, x in enumerate(times):
        _number(x, f"times[{i}]")
    for key in ("tags", "observed", "hidden"):
        for i, x in enumerate(_list(data, key)):
            _text(x, f"{key}[{i}]")
    for key in ("truth_params", "recover"):
        if not isinstance(data[key], dict):
            raise _Invalid(key, f"expected an object, got {data[key]!r}")
    for name, v in data["truth_params"].items():
        _number(v, f"truth_params.{name}")
    for role, v in data["recover"].items():
        _text(v, f"recover.{role}")
    conditions = tuple(_intervention(x, f"conditions[{i}]")
                       for i, x in enumerate(_list(data, "conditions")))
    cfs = []
    for i, c in enumerate(_list(data, "counterfactuals")):
        where = f"counterfactuals[{i}]"
        if not isinstance(c, dict):
            raise _Invalid(where, f"expected an object, got {c!r}")
        for key in c:
            if key not in ("question", "interventions", "scored_from"):
                raise _Invalid(f"{where}.{key}", "unknown field; fields are question, "
                                                 "interventions, scored_from")
        for key in ("question", "interventions", "scored_from"):
            if key not in c:
                raise _Invalid(f"{where}.{key}", "missing")
        _text(c["question"], f"{where}.question")
        if not isinstance(c["interventions"], list):
            raise _Invalid(f"{where}.interventions", "expected a list of interventions")
        items = tuple(_intervention(x, f"{where}.interventions[{j}]")
                      for j, x in enumerate(c["interventions"]))
        scored = _number(c["scored_from"], f"{where}.scored_from")
        try:
            cfs.append(Counterfactual(c["question"], items, scored))  # type: ignore[arg-type]
        except TaskError as exc:
            raise _Invalid(f"{where}{exc.field.removeprefix('counterfactual')}",
                           exc.reason) from None
    inputs = []
    for i, item in enumerate(_list(data, "inputs")):
        where = f"inputs[{i}]"
        if not isinstance(item, dict):
            raise _Invalid(where, f"expected an object, got {item!r}")
        for key in item:
            if key not in ("name", "values", "interpolation", "doc"):
                raise _Invalid(f"{where}.{key}", "unknown field; fields are name, values, "
                                                 "interpolation, doc")
        for key in ("name", "values"):
            if key not in item:
                raise _Invalid(f"{where}.{key}", "missing")
        _text(item["name"], f"{where}.name")
        if not isinstance(item["values"], list):
            raise _Invalid(f"{where}.values", "expected a list of numbers")
        for j, x in enumerate(item["values"]):
            _number(x, f"{where}.values[{j}]")
        _text(item.get("interpolation", "previous"), f"{where}.interpolation")
        _text(item.get("doc", "") or "-", f"{where}.doc")
        inputs.append(TaskInput(item["name"], tuple(item["values"]),
                                item.get("interpolation", "previous"), item.get("doc", "")))
    return BenchTask(
        name=data["name"], domain=data["domain"], difficulty=data["difficulty"],
        tags=tuple(data["tags"]), variant=data["variant"], description=data["description"],
        time_unit=data["time_unit"], times=np.asarray(times, dtype=float),
        train_until=data["train_until"], validate_until=data["validate_until"],
        observed=tuple(data["observed"]), hidden=tuple(data["hidden"]),
        truth_model=_model(data["truth_model"], "truth_model"),
        truth_params=dict(data["truth_params"]), conditions=conditions,
        counterfactuals=tuple(cfs), recover=dict(data["recover"]),
        wrong_model=_model(data["wrong_model"], "wrong_model"),
        noise_seed=data["noise_seed"], data_path=data["data_path"],
        solver_dt=data["solver_dt"], inputs=tuple(inputs))


TASK_JSON_LIMITS = JsonLimits(max_bytes=64 * 1024 * 1024, max_depth=2 * EXPR_LIMITS.max_depth + 12)
"""A task file carries a model's JSON and its data: bounded like model JSON, a little larger."""


def task_from_json(text_or_dict: str | bytes | Mapping[str, Any],
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
    except _Invalid as exc:
        raise TaskError(source, exc.path, exc.reason) from None
    except TaskError as exc:
        raise TaskError(source, exc.field, exc.reason) from None
