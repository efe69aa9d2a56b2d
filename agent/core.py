"""The agent's vocabulary: tasks, candidates, feedback, and the Proposer seam.

Everything the search loop hands a proposer, and everything a proposer hands back, is one
of these frozen dataclasses, so the loop reads the same whether candidates come from an
LLM or from the offline library, and the trajectory log can record them as JSON.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mechanistic.data import ObservedData
from mechanistic.files import json_data
from mechanistic.inputs import InputSeries
from mechanistic.interventions import ControlSchedule, Intervention
from mechanistic.untrusted import MiB, UntrustedDataError, parse_json, read_inside
from sandbox.runner import ModuleError

__all__ = [
    "Candidate",
    "Critique",
    "EventSink",
    "Feedback",
    "Proposer",
    "Task",
    "TrajectoryLog",
    "Usage",
    "summarise_data",
]


@dataclass(frozen=True)
class Task:
    """What the scientist asked for: a description, observations and the windows.

    Rows with ``t <= train_until`` are fitted; rows in ``(train_until, validate_until]``
    score candidates; anything later is never shown to the agent (held out for evals).
    ``data`` holds only the observed columns; ``inputs`` are the known operating conditions
    (see mechanistic/inputs.py), which candidates read as controls of the same name.
    """

    description: str
    data: ObservedData
    train_until: float
    validate_until: float | None = None
    objectives: str = "forecast the observed series and answer what-if questions"
    time_unit: str = "time"
    inputs: tuple[InputSeries, ...] = ()

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise ValueError("a task needs a description of the system in plain language")
        if self.train_until < float(self.data.t[0]):
            raise ValueError(f"train_until={self.train_until} is before the first observation")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        clash = [i.name for i in self.inputs if i.name in self.data.values]
        if clash:
            raise ValueError(f"column(s) {clash} are both an input and an observation")

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def controls_for(self, control_names: Sequence[str]) -> dict[str, ControlSchedule]:
        """The observed schedules of the inputs a candidate declares as controls."""
        return {i.name: i.schedule() for i in self.inputs if i.name in control_names}


@dataclass(frozen=True)
class Candidate:
    """One simulator: DSL module source plus where it came from and what it means.

    ``roles`` maps a motif's semantic roles to the module's own names (for example
    ``{"susceptible": "S", "transmission_rate": "beta"}``), which lets a counterfactual
    question be mapped onto this candidate's states and parameters without an LLM.
    """

    id: str
    source: str
    structure: str
    origin: str = "propose"          # propose | repair | refine
    parent: str | None = None
    note: str = ""
    roles: Mapping[str, str] = field(default_factory=dict)
    proposer: str = ""
    # What a refinement found, as JSON-ready data for the review (a distilled child holds
    # the learned and the distilled rate on a grid, see agent/distill); empty for most.
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["roles"] = dict(self.roles)
        out["details"] = dict(self.details)
        return out


@dataclass(frozen=True)
class Feedback:
    """Why a candidate needs repair, as text for a prompt and as data for a rule.

    ``kind``: ``error`` (the module failed in the sandbox, or its model was refused on the
    host: ``error`` holds the node's :class:`~sandbox.runner.ModuleError`, with type,
    message and the module's frames), ``checks`` (structural checks failed: ``checks``
    holds their dicts) or ``fit`` (the fit failed or is poor: ``error`` holds the fit's
    ModuleError when it failed, ``residuals`` the per-observable summaries).
    """

    kind: str
    message: str
    error: ModuleError | None = None
    checks: Sequence[Mapping[str, Any]] = ()
    residuals: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Critique:
    """Reflection on a good node: where its fit misses, to steer refinements."""

    message: str
    residuals: Mapping[str, Any] = field(default_factory=dict)
    validation_error: float | None = None


@dataclass
class Usage:
    """LLM accounting, accumulated by a proposer."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def add(self, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        self.llm_calls += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.seconds += seconds

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


EventSink = Callable[[Mapping[str, Any]], None]


@runtime_checkable
class Proposer(Protocol):
    """Writes simulator modules. ``usage`` counts LLM calls (zero for the library)."""

    name: str
    usage: Usage

    def propose(self, task: Task, n: int) -> list[Candidate]:
        """Up to ``n`` structurally different candidates for the task."""
        ...

    def repair(self, task: Task, candidate: Candidate, feedback: Feedback) -> Candidate | None:
        """A corrected candidate, or None when the proposer cannot repair this failure."""
        ...

    def refine(self, task: Task, candidate: Candidate, critique: Critique,
               n: int) -> list[Candidate]:
        """Up to ``n`` atomic edits of a good candidate (a hidden compartment, saturation,
        waning, a neural term on one rate, ...)."""
        ...

    def intervention(self, task: Task, candidate: Candidate, model_json: str,
                     question: str) -> list[Intervention]:
        """Translate a what-if question into interventions on this candidate's own names.

        Raise ``ValueError`` with a message saying what could not be mapped.
        """
        ...


class TrajectoryLog:
    """Append-only JSON lines: every LLM call and sandbox run, as it happens.

    Each event is flushed and fsynced before the call returns, so a killed run loses
    at most the event in flight, and ``--resume`` can read what was finished.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: Mapping[str, Any]) -> None:
        record = {"time": time.time(), **event}
        line = json.dumps(json_data(record), allow_nan=False)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())  # as the class says: a killed run keeps this event

    def events(self) -> list[dict[str, Any]]:
        """The events written so far, read as untrusted data (the folder may be copied in)."""
        try:
            raw = read_inside(self.path.parent, self.path.name, "trajectory.jsonl", 256 * MiB)
        except FileNotFoundError:
            return []
        out = []
        for line in raw.decode("utf-8", "replace").splitlines():
            try:
                event = parse_json(line, "a trajectory event")
            except UntrustedDataError:
                break  # a torn last line from a killed run
            if isinstance(event, dict):
                out.append(event)
        return out


def summarise_data(data: ObservedData, train_until: float | None = None,
                   max_points: int = 40) -> str:
    """A short text summary of observations for a prompt: columns, ranges, sampling,
    missingness, and the series itself only when it is short."""
    import numpy as np

    t = data.t
    lines = [
        f"time column {data.time_name!r}: {len(t)} rows from {t[0]:g} to {t[-1]:g}"
        + (f", median spacing {float(np.median(np.diff(t))):g}" if len(t) > 1 else ""),
    ]
    if train_until is not None:
        lines.append(f"training window: t <= {train_until:g}")
    for name, values in data.values.items():
        present = values[np.isfinite(values)]
        missing = int((~np.isfinite(values)).sum())
        if present.size:
            lines.append(
                f"column {name!r}: min {present.min():.4g}, max {present.max():.4g}, "
                f"mean {present.mean():.4g}, missing {missing}/{len(values)}"
            )
        else:
            lines.append(f"column {name!r}: all values missing")
    if len(t) <= max_points:
        header = ", ".join([data.time_name, *data.columns])
        rows = [", ".join(f"{v:.4g}" for v in [t[i], *(data.values[c][i] for c in data.columns)])
                for i in range(len(t))]
        lines.append("data:\n" + header + "\n" + "\n".join(rows))
    return "\n".join(lines)
