"""The offline library proposer: textbook motifs, atomic refinements, rule-based repairs
and counterfactual translation by roles. No LLM; deterministic under a seed.

Layout: ``motifs/`` (one module per domain), ``spec.py`` (structural model description
rendered to DSL source), ``select.py`` (which motifs fit a task), ``refine.py`` (atomic
edits), ``repair.py`` (rule-based fixes), ``counterfactual.py`` (questions ->
interventions), ``proposer.py`` (the Proposer protocol).
"""

from agent.library.counterfactual import translate
from agent.library.motifs import MOTIFS, motif
from agent.library.proposer import LibraryProposer
from agent.library.refine import refinements
from agent.library.repair import repair_spec
from agent.library.select import rank_motifs, select_motifs
from agent.library.spec import ModelSpec, spec_from_source

__all__ = [
    "MOTIFS",
    "LibraryProposer",
    "ModelSpec",
    "motif",
    "rank_motifs",
    "refinements",
    "repair_spec",
    "select_motifs",
    "spec_from_source",
    "translate",
]
