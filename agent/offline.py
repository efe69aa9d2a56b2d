"""The offline agent: library motifs and data-driven discovery side by side, no LLM.

The library recognises textbook structures; discovery builds structure from the data for
what no motif covers. Both propose into one search and compete on the validation window.
Two rules decide who gets the first slots:

* a motif is *supported* when the description or the column names hold words of its
  domain or of the motif itself (``select.Choice.supported``); unsupported motifs (an
  epidemic for a chemostat) are proposed only when neither a supported motif nor
  discovery has anything to offer;
* supported motifs and discovered structures are interleaved, best first, so neither
  crowds the other out of a small initial budget.

Repairs, refinements and what-if translation go back to the part that wrote a candidate
(``Candidate.proposer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.core import Candidate, Critique, Feedback, Proposer, Task, Usage
from agent.library import LibraryProposer
from mechanistic.interventions import Intervention

__all__ = ["OfflineProposer"]


def _interleave(*groups: Sequence[Candidate]) -> list[Candidate]:
    out: list[Candidate] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


@dataclass
class OfflineProposer:
    """Library plus discovery; ``exclude_motifs`` removes motifs (leave-one-motif-out)."""

    seed: int = 0
    exclude_motifs: tuple[str, ...] = ()
    discovery_share: float = 0.5
    name: str = "offline"
    usage: Usage = field(default_factory=Usage)
    library: LibraryProposer = field(init=False)
    discovery: Any = field(init=False)
    notes: list[str] = field(default_factory=list)
    last_summary: str = ""           # what the last what-if question was understood as

    def __post_init__(self) -> None:
        from agent.discovery.proposer import DiscoveryProposer

        if not 0.0 <= self.discovery_share <= 1.0:
            raise ValueError(f"discovery_share must lie in [0, 1], got {self.discovery_share}")
        self.library = LibraryProposer(seed=self.seed, exclude=tuple(self.exclude_motifs))
        self.discovery = DiscoveryProposer(seed=self.seed)

    def _part(self, candidate: Candidate) -> Proposer:
        return self.discovery if candidate.proposer == "discovery" else self.library

    def propose(self, task: Task, n: int) -> list[Candidate]:
        n_disc = max(1, round(n * self.discovery_share)) if n > 1 else 1
        found = self.discovery.propose(task, n_disc)
        if not found and getattr(self.discovery, "last_reason", ""):
            self.notes.append(f"discovery: {self.discovery.last_reason}")
        supported, unsupported = self.library.propose_split(task, n)
        out = _interleave(supported, found)
        if len(out) < n and not out:  # nothing supported: an unsupported motif is all we have
            out = list(unsupported)
        return out[:n]

    def repair(self, task: Task, candidate: Candidate, feedback: Feedback) -> Candidate | None:
        return self._part(candidate).repair(task, candidate, feedback)

    def refine(self, task: Task, candidate: Candidate, critique: Critique,
               n: int) -> list[Candidate]:
        return self._part(candidate).refine(task, candidate, critique, n)

    def intervention(self, task: Task, candidate: Candidate, model_json: str,
                     question: str) -> list[Intervention]:
        part = self._part(candidate)
        self.last_summary = ""
        items = part.intervention(task, candidate, model_json, question)
        self.last_summary = str(getattr(part, "last_summary", ""))
        return items
