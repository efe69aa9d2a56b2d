"""The shapes of a run folder's JSON files, and the one way to read them.

A run folder is read back by a resumed search (``RunStore``), by ``mmw review`` and its
app, by ``mmw sgnn`` and by what-if questions; it may have been copied from elsewhere,
edited, or written by a search whose candidates were hostile. So every file is read as
untrusted data: through :func:`mechanistic.untrusted.read_json_inside` (a regular file
inside the run, no link on the way, bounded JSON, duplicate keys refused) and then
against the shape declared here, so a node that is a list, ``params`` that is a number
or a count written as a string is one :class:`~mechanistic.errors.UntrustedDataError`
naming the file and the key, never a ``KeyError`` three calls later or a traceback on a
review page. The shapes mirror what ``RunStore``, ``Node.to_dict``, ``FitResult.to_dict``
and the review app write; a key they do not declare is kept as it is.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mechanistic.errors import UntrustedDataError
from mechanistic.shapes import (
    OPTIONAL,
    REQUIRED,
    Shape,
    anything,
    array,
    choice,
    either,
    flag,
    integer,
    nullable,
    number,
    record,
    table,
    text,
)
from mechanistic.untrusted import JsonLimits, MiB, read_inside, read_json_inside

__all__ = ["CANDIDATE_ID", "CHECKS", "DECISIONS", "DISTILL", "FIT", "INTERVENTIONS",
           "NODE_FILE", "REVIEW", "TASK", "TREE", "read_run_json", "read_run_text",
           "task_defaults"]

DECISIONS = ("approved", "rejected")
SOURCE_LIMIT = 2 * MiB  # simulator.py: a model module is a few kB
MODEL_LIMIT = 16 * MiB  # model.json
# A run's JSON files are kB (a tree of 10,000 nodes is about 7 MB): 8 MiB bounds the time
# (about 2 s) and memory (a few hundred MB) one file can cost a reader.
RUN_JSON_LIMITS = JsonLimits(max_bytes=8 * MiB)


def _candidate_id() -> Shape:
    """A candidate id is also a folder name under candidates/: one path component."""
    base = text(200)

    def check(value: Any, what: str, path: str) -> str:
        out = base(value, what, path)
        if not out or out.startswith(".") or any(c in out for c in "/\\") or \
                any(ord(c) < 32 for c in out):
            raise UntrustedDataError(f"{what}: {path} {out[:40]!r} is not a candidate id "
                                     "(one folder name: no '/', no leading '.')")
        return out

    return Shape("a candidate id", check)


CANDIDATE_ID = _candidate_id()
_TEXT = text()
_NAME = text(1000)
_NUM = nullable(number())

CHECK = record({
    "name": (_NAME, ""), "passed": (flag(), False), "message": (nullable(_TEXT), ""),
    "severity": (text(40), "error"),
}, "a check object")
CHECKS = array(CHECK, 10_000)

# A node's error, as sandbox.runner.ModuleError.to_dict writes it (ModuleError.from_dict
# reads it back for a resumed search and checks the frames). lineno, traceback and frames
# stay absent when absent: a host error (ModuleError.host) is written without them, and
# that is how from_dict tells it from a module's error with no frames.
ERROR = either(_TEXT, record({
    "kind": (nullable(_NAME), None), "type": (nullable(_NAME), None),
    "message": (nullable(_TEXT), None), "lineno": (nullable(integer()), OPTIONAL),
    "traceback": (nullable(_TEXT), OPTIONAL), "frames": (anything(), OPTIONAL),
}, "an error object"))

_NODE = {
    "structure": (_TEXT, ""), "status": (text(100), "unknown"),
    "origin": (text(100), "propose"), "parent": (nullable(CANDIDATE_ID), None),
    "note": (nullable(_TEXT), ""), "proposer": (nullable(_NAME), ""),
    "depth": (integer(0), 0), "repairs": (integer(0), 0), "expanded": (flag(), False),
    "validation_error": (_NUM, None), "aic": (_NUM, None), "score": (_NUM, None),
    "wall_time": (number(0.0), 0.0), "error": (nullable(ERROR), None),
    "failed_checks": (CHECKS, []), "roles": (table(_NAME, 1000), {}),
}
NODE_ROW = record({"id": (CANDIDATE_ID, REQUIRED), **_NODE}, "a node object")

CANDIDATE_INFO = record({
    "id": (CANDIDATE_ID, REQUIRED), "structure": (_TEXT, ""),
    "origin": (text(100), "propose"), "parent": (nullable(CANDIDATE_ID), None),
    "note": (nullable(_TEXT), ""), "roles": (table(_NAME, 1000), {}),
    "proposer": (nullable(_NAME), ""),
}, "a candidate object")

NODE_FILE = record({"id": (CANDIDATE_ID, REQUIRED), **_NODE,
                    "candidate": (CANDIDATE_INFO, REQUIRED), "checks": (CHECKS, [])},
                   "a node object")

TREE = record({
    "best": (nullable(CANDIDATE_ID), None), "stop_reason": (nullable(_TEXT), None),
    "usage": (table(anything(), 1000), {}), "verdict": (anything(), None),
    "nodes": (array(NODE_ROW, 10_000), []),
}, "a tree object")

_TASK_FIELDS = {
    "description": (_TEXT, ""), "train_until": (number(), REQUIRED),
    "validate_until": (_NUM, None), "objectives": (nullable(_TEXT), ""),
    "time_unit": (text(100), "time"), "data": (text(1000), "data.csv"),
    "time_column": (nullable(_NAME), None), "source": (nullable(_TEXT), None),
    "inputs": (nullable(array(anything(), 1000)), []), "agent": (text(100), "offline"),
    "llm": (nullable(_NAME), None), "base_url": (nullable(_NAME), None),
    "seed": (integer(), 0), "search": (table(anything(), 1000), {}),
    # --agent llm's mode and window (structured, context_window, answer_tokens)
    "chat": (table(anything(), 100), {}),
}
TASK = record(_TASK_FIELDS, "a task object")

_RESIDUAL = record({"n": (nullable(integer(0)), None), "rmse": (_NUM, None),
                    "nrmse": (_NUM, None), "bias": (_NUM, None)}, "a residual summary")
FIT = record({
    "params": (table(_NUM), {}), "free_params": (array(_NAME), []),
    "log_likelihood": (_NUM, None), "aic": (_NUM, None), "bic": (_NUM, None),
    "validation_error": (_NUM, None), "n_obs": (nullable(integer(0)), None),
    "n_validation": (nullable(integer(0)), None), "converged": (nullable(flag()), None),
    "message": (nullable(_TEXT), ""), "train_residuals": (nullable(table(_RESIDUAL)), {}),
    "validation_residuals": (nullable(table(_RESIDUAL)), {}), "t0": (_NUM, None),
    "solver": (nullable(table(anything(), 100)), {}),
}, "a fit object")

REVIEW = record({"candidates": (table(record({
    "decision": (choice(*DECISIONS), REQUIRED), "note": (text(10_000), ""),
    "time": (text(100), ""),
}, "a decision object")), {})}, "a review object")

_NUMBERS = array(_NUM, 100_000)
DISTILL = record({
    "learned": (nullable(_NUMBERS), None), "distilled": (nullable(_NUMBERS), None),
    "grid": (nullable(table(_NUMBERS, 100)), {}), "distilled_from": (nullable(CANDIDATE_ID),
                                                                      None),
    "expression": (nullable(_TEXT), ""), "r2": (_NUM, None), "rate": (nullable(_NAME), "rate"),
}, "a distillation object")

INTERVENTIONS = record({"question": (nullable(_TEXT), ""),
                        "interventions": (array(anything(), 1000), [])},
                       "an interventions object")


def task_defaults() -> dict[str, Any]:
    """A task as the review shows it when task.json cannot be used: every field at its
    default (None for the required ones), so the page still says what else exists."""
    return {k: None if d is REQUIRED else copy.copy(d) for k, (_, d) in _TASK_FIELDS.items()}


def read_run_json(root: str | Path, relative: str, shape: Shape,
                  limits: JsonLimits = RUN_JSON_LIMITS) -> Any:
    """``root/relative`` read as untrusted JSON and checked against ``shape``.

    FileNotFoundError when it is missing (a run in progress has no tree.json yet);
    UntrustedDataError, naming ``RUN/relative``, for anything else wrong with it.
    """
    label = f"{Path(root).name}/{relative}"
    return shape(read_json_inside(root, relative, label, limits), label)


def read_run_text(root: str | Path, relative: str, max_bytes: int = SOURCE_LIMIT) -> str:
    """A text file of the run (simulator.py, model.json), read as read_run_json reads."""
    label = f"{Path(root).name}/{relative}"
    return read_inside(root, relative, label, max_bytes).decode("utf-8", "replace")
