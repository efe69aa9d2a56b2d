"""Evaluate one candidate: sandbox, model JSON, structural checks, fit, validation score.

Each stage's failure is a result, not an exception: the node records how far it got and
why it stopped, and that record becomes the repair feedback. The score is the validation
error normalised per series (so series on different scales average fairly); candidates
without a validation window are ranked by AIC instead.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from agent.core import Candidate, EventSink, Feedback, Task
from mechanistic.bounded import CHECK_SECONDS, HostLimitError
from mechanistic.checks import run_checks_bounded
from mechanistic.data import ObservedData
from mechanistic.errors import ModelError
from mechanistic.fit import FitConfig, FitResult, fit_model
from mechanistic.interventions import ControlSchedule
from mechanistic.model import Model
from mechanistic.serialize import model_from_json
from sandbox.runner import ModuleError, run_model_module
from sandbox.spec import Sandbox

__all__ = [
    "FitFailure",
    "FitJob",
    "Node",
    "NodeStatus",
    "done",
    "evaluate_candidate",
    "feedback_for",
    "finish_candidate",
    "prepare_candidate",
    "run_fit_job",
]

class NodeStatus(StrEnum):
    """Where a candidate stopped, in the order it passes the stages. A ``str`` so that
    node.json, tree.json and the trajectory keep their plain strings."""

    INVALID = "invalid"              # the module did not produce a model in the sandbox
    FAILED_CHECKS = "failed_checks"  # structural checks reported errors
    FIT_FAILED = "fit_failed"        # fitting raised or produced no finite likelihood
    OK = "ok"


INVALID, FAILED_CHECKS, FIT_FAILED, OK = NodeStatus


@dataclass
class Node:
    """A candidate and everything learned about it; one row of the search tree."""

    candidate: Candidate
    status: NodeStatus
    depth: int = 0
    repairs: int = 0
    model_json: str | None = None
    error: ModuleError | None = None  # why it stopped: the module's run, or a host stage
    checks: list[dict[str, Any]] = field(default_factory=list)
    fit: dict[str, Any] | None = None
    validation_error: float | None = None
    aic: float | None = None
    wall_time: float = 0.0
    expanded: bool = False
    fit_result: FitResult | None = field(default=None, repr=False)
    model: Model | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.status = NodeStatus(self.status)  # a node read back from a run folder too
        if self.error is not None and not isinstance(self.error, ModuleError):
            raise TypeError(f"Node.error must be a ModuleError or None, not "
                            f"{type(self.error).__name__} (a run folder's error dict: "
                            "ModuleError.from_dict)")

    @property
    def id(self) -> str:
        return self.candidate.id

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def score(self) -> float:
        """Lower is better; invalid nodes are infinitely bad."""
        if not self.ok:
            return math.inf
        if self.validation_error is not None and math.isfinite(self.validation_error):
            return self.validation_error
        return self.aic if self.aic is not None and math.isfinite(self.aic) else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "structure": self.candidate.structure, "status": self.status,
            "origin": self.candidate.origin, "parent": self.candidate.parent,
            "note": self.candidate.note, "proposer": self.candidate.proposer,
            "depth": self.depth, "repairs": self.repairs, "expanded": self.expanded,
            "validation_error": _finite(self.validation_error), "aic": _finite(self.aic),
            "score": _finite(self.score), "wall_time": round(self.wall_time, 3),
            "error": self.error.to_dict() if self.error else None,
            "failed_checks": [c for c in self.checks if not c["passed"]
                              and c.get("severity") == "error"],
            "roles": dict(self.candidate.roles),
        }


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class FitJob:
    """Everything one fit needs, and nothing that cannot cross a process boundary as data:
    the validated model's JSON is rebuilt on the other side (agent/fitpool.py)."""

    model: Model
    data: ObservedData           # rows up to the task's validate_until
    train_until: float | None
    controls: dict[str, ControlSchedule]
    config: FitConfig


@dataclass(frozen=True)
class FitFailure:
    """A fit that raised, or a fit worker that died: what the repair loop is told."""

    type: str
    message: str
    traceback: str = ""

    def error(self) -> ModuleError:
        """The failure as the node's error (kind ``fit``)."""
        return ModuleError.host("fit", self.type, self.message, self.traceback)

    def to_dict(self) -> dict[str, Any]:
        return self.error().to_dict()


def run_fit_job(job: FitJob) -> FitResult | FitFailure:
    """The fit of one candidate; any exception is a failure for the repair loop."""
    try:
        return fit_model(job.model, job.data, job.config, train_until=job.train_until,
                         controls=job.controls or None)
    except Exception as exc:  # any fit failure is feedback for the repair loop, not a crash
        return FitFailure(type(exc).__name__, str(exc), traceback.format_exc(limit=3))


def evaluate_candidate(
    task: Task,
    candidate: Candidate,
    *,
    sandbox: Sandbox | None,
    fit_config: FitConfig,
    log: EventSink | None = None,
    depth: int = 0,
    repairs: int = 0,
) -> Node:
    """Run ``candidate`` through every stage and return what happened as a Node."""
    start = time.perf_counter()
    node, job = prepare_candidate(task, candidate, sandbox=sandbox, fit_config=fit_config,
                                  log=log, depth=depth, repairs=repairs)
    if job is None:
        return done(node, start)
    return finish_candidate(node, run_fit_job(job), start)


def prepare_candidate(
    task: Task,
    candidate: Candidate,
    *,
    sandbox: Sandbox | None,
    fit_config: FitConfig,
    log: EventSink | None = None,
    depth: int = 0,
    repairs: int = 0,
) -> tuple[Node, FitJob | None]:
    """Every stage before the fit: sandbox, model JSON, checks. Returns the node and the
    fit still to run (``None`` when the candidate stopped before it)."""
    node = Node(candidate, INVALID, depth=depth, repairs=repairs)
    rejected = (candidate.details or {}).get("rejected")
    if isinstance(rejected, str):
        # the proposer could not make a module of the answer (a structured answer that
        # failed validation, an answer with no code): a failed node with the reason
        node.error = ModuleError.host("answer", "InvalidAnswer", rejected)
        return node, None
    run = run_model_module(candidate.source, filename="simulator.py", sandbox=sandbox)
    if log is not None:
        log({"kind": "sandbox_run", "node": candidate.id, "ok": run.ok,
             "run": run.run.to_dict(), "error": run.error.to_dict() if run.error else None})
    if not run.ok or run.model_json is None:
        node.error = run.error or ModuleError.host("sandbox", "Error", run.run.summary())
        return node, None
    node.model_json = run.model_json
    try:
        model = model_from_json(run.model_json)
    except ModelError as exc:
        node.error = ModuleError.host("serialization", type(exc).__name__, str(exc))
        return node, None
    node.model = model
    # sympy on an untrusted model: bounded in time (within the search's budget) and memory
    seconds = min(CHECK_SECONDS, max(5.0, fit_config.max_seconds or CHECK_SECONDS))
    try:
        node.checks = [c.to_dict() for c in run_checks_bounded(model, seconds)]
    except HostLimitError as exc:
        node.error = ModuleError.host("limit", "HostLimitError", str(exc))
        return node, None
    unused = [name for name in task.input_names if name not in model.controls_]
    if unused:
        node.checks.append({
            "name": "inputs_used", "passed": False, "severity": "warning",
            "message": f"known input(s) {unused} are not controls of this candidate, so it "
                       f"assumes they have no effect; declare m.control({unused[0]!r}, ...) "
                       f"and use it in a rate to let the input act"})
    stray = [name for name in task.input_names if name in model.observables_]
    if stray:
        node.checks.append({
            "name": "inputs_observed", "passed": False, "severity": "error",
            "message": f"{stray} are known inputs (set by the experimenter), not observations; "
                       f"declare them with m.control({stray[0]!r}, ...) instead of m.observe"})
    missing = [c for c in task.data.columns if c not in model.observables_]
    if missing:
        node.checks.append({
            "name": "data_columns", "passed": False, "severity": "error",
            "message": f"data column(s) {missing} have no observable; declare "
                       f"m.observe({missing[0]!r}, <expression>, noise=...) with the column's "
                       f"exact name (observables now: {model.observable_names})",
        })
    if any(not c["passed"] and c.get("severity") == "error" for c in node.checks):
        node.status = FAILED_CHECKS
        return node, None
    data = task.data
    if task.validate_until is not None:
        data, _ = data.split(task.validate_until)
    return node, FitJob(model, data, task.train_until,
                        task.controls_for(model.control_names), fit_config)


def finish_candidate(node: Node, outcome: FitResult | FitFailure, start: float) -> Node:
    """The node after its fit: ``ok`` with a finite likelihood, else ``fit_failed``.
    Both ways a fit can fail (it raised, or it found no finite likelihood) end here."""
    if isinstance(outcome, FitFailure):
        node.status = FIT_FAILED
        node.error = outcome.error()
        return done(node, start)
    node.fit_result = outcome
    node.fit = outcome.to_dict()
    node.aic = outcome.aic
    node.validation_error = outcome.validation_error
    if not math.isfinite(outcome.log_likelihood):
        node.status = FIT_FAILED
        node.error = ModuleError.host(
            "fit", "NonFinite", f"the fit found no finite likelihood: {outcome.message}")
        return done(node, start)
    node.status = OK
    return done(node, start)


def done(node: Node, start: float) -> Node:
    """The node with its wall time since ``start``."""
    node.wall_time = time.perf_counter() - start
    return node


def feedback_for(node: Node) -> Feedback:
    """What a proposer needs to repair ``node``: the error, the failed checks, or the fit."""
    error = node.error
    if node.status == INVALID:
        text = f"{error.type}: {error.message}" if error else "Error: "
        for frame in error.frames if error else ():
            text += f"\n  line {frame.lineno}: {frame.line}"
        return Feedback("error", text, error=error)
    if node.status == FAILED_CHECKS:
        failed = [c for c in node.checks if not c["passed"] and c.get("severity") == "error"]
        text = "\n".join(f"- {c['name']}: {c['message']}" for c in failed)
        return Feedback("checks", "structural checks failed:\n" + text, checks=failed)
    if node.status == FIT_FAILED:
        return Feedback("fit", f"fitting failed: {error.message if error else ''}",
                        error=error)
    residuals = (node.fit or {}).get("validation_residuals") or (node.fit or {}).get(
        "train_residuals") or {}
    return Feedback("fit", f"validation error {node.validation_error}", residuals=residuals)


def with_origin(candidate: Candidate, origin: str, parent: str | None) -> Candidate:
    """A copy marked as a repair or refinement of ``parent`` (proposers may forget)."""
    return replace(candidate, origin=origin, parent=candidate.parent or parent)
