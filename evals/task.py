"""Benchmark tasks: a ground truth, how it was observed, and what-if questions about it.

A :class:`BenchTask` is everything the evaluation needs and nothing an agent may see
beyond its description and training rows. Tasks are data: they round-trip through JSON
(models through :mod:`mechanistic.serialize`, interventions through their ``to_dict``),
so a suite can be shipped, edited and reloaded without running any code that came with
it. The parts:

* this module: the task itself (its truth, its noisy data, what an agent is handed, its
  JSON form);
* :mod:`evals.task_parts`: its what-if questions (:class:`Counterfactual`) and known
  inputs (:class:`TaskInput`);
* :mod:`evals.task_rules`: the rules a task must satisfy, checked once when it is built,
  and :mod:`evals.task_fields`: the field checks and :class:`TaskError`, which names the
  field by its path ("seir.json: counterfactuals[0].interventions[1].start: expected a
  number, got 'abc'");
* :mod:`evals.task_json`: reading a task file (:func:`task_from_json`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from evals.task_fields import Invalid, TaskError
from evals.task_parts import Counterfactual, TaskInput
from evals.task_rules import DIFFICULTIES, DOMAINS, REPO, VARIANTS, check_task, resolve
from mechanistic.data import ObservedData, load_csv
from mechanistic.interventions import Intervention
from mechanistic.model import Model
from mechanistic.serialize import model_to_dict

__all__ = [
    "DIFFICULTIES",
    "DOMAINS",
    "FORMAT",
    "REPO",
    "VARIANTS",
    "BenchTask",
    "Counterfactual",
    "TaskError",
    "TaskInput",
    "task_from_json",
]

FORMAT = "mmw.task/1"


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
            check_task(self)
        except Invalid as exc:
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
            data = load_csv(resolve(self.data_path))
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


def task_from_json(text_or_dict: str | bytes | Mapping[str, Any],
                   source: str = "<task>") -> BenchTask:
    """Load and validate a task from its JSON text or parsed object (:mod:`evals.task_json`).

    Raises :class:`TaskError` naming ``source`` and the field path of the first problem.
    """
    from evals.task_json import read_task  # it builds BenchTasks: imported when first used

    return read_task(text_or_dict, source)
