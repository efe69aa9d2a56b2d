"""``mmw model --start-from MODEL``: an imported model as the search's first candidate.

A model brought in from SBML or Antimony (or any model file) enters the search like any
other candidate: as the *source* of a model-language module (rendered by
:func:`mechanistic.to_source.model_to_source`), run in the sandbox, checked and fitted, so
the review shows it beside the proposer's own. The wrapper proposes it first and then
hands every call to the wrapped proposer; it cannot repair or refine the imported module
itself (no proposer knows its structure), so those answers are empty for it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from agent.core import Candidate, Critique, Feedback, Proposer, Task, Usage
from mechanistic.interventions import Intervention
from mechanistic.model import Model
from mechanistic.to_source import model_to_source

__all__ = ["START_FROM", "StartFromProposer", "imported_candidate"]

START_FROM = "start-from"  # Candidate.proposer of the imported model


def imported_candidate(model: Model, label: str = "") -> Candidate:
    """The imported model as a candidate: its module source, named by a digest of it."""
    source = model_to_source(model)
    digest = hashlib.sha256(source.encode()).hexdigest()[:8]
    note = f"imported from {label}" if label else "imported model"
    return Candidate(id=f"import-{digest}", source=source, structure=f"{model.name} (imported)",
                     origin="propose", note=note, proposer=START_FROM)


class StartFromProposer:
    """Proposes ``model`` first, then behaves as ``inner``."""

    def __init__(self, inner: Proposer, model: Model, label: str = "") -> None:
        self.inner = inner
        self.name: str = inner.name
        self.candidate = imported_candidate(model, label)
        self._proposed = False

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    def __getattr__(self, name: str) -> Any:  # notes, last_summary, ... of the inner one
        return getattr(self.inner, name)

    def propose(self, task: Task, n: int) -> list[Candidate]:
        if self._proposed:
            return self.inner.propose(task, n)
        self._proposed = True
        rest = self.inner.propose(task, n - 1) if n > 1 else []
        return [self.candidate, *(c for c in rest if c.id != self.candidate.id)]

    def repair(self, task: Task, candidate: Candidate, feedback: Feedback) -> Candidate | None:
        if candidate.proposer == START_FROM:
            return None
        return self.inner.repair(task, candidate, feedback)

    def refine(self, task: Task, candidate: Candidate, critique: Critique,
               n: int) -> list[Candidate]:
        if candidate.proposer == START_FROM:
            return []
        return self.inner.refine(task, candidate, critique, n)

    def intervention(self, task: Task, candidate: Candidate, model_json: str,
                     question: str) -> list[Intervention]:
        return self.inner.intervention(task, candidate, model_json, question)
