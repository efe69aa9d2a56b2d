"""The parts a benchmark task is made of besides its truth: what-if questions and known
inputs. Each checks its own fields when it is built; the task holding it checks it
against the truth (:mod:`evals.task_rules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evals.task_fields import Invalid, TaskError, check_counterfactual
from mechanistic.interventions import Intervention

__all__ = ["Counterfactual", "TaskInput"]


@dataclass(frozen=True)
class Counterfactual:
    """A what-if question in plain language, and its answer on the truth's own names."""

    question: str
    interventions: tuple[Intervention, ...]
    scored_from: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "interventions", tuple(self.interventions))
        try:
            check_counterfactual(self, "counterfactual")
        except Invalid as exc:
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
