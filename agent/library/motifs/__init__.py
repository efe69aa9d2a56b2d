"""The motif registry: every textbook structure the library proposer knows, by domain."""

from __future__ import annotations

from agent.library.motifs import ecology, epidemiology, oncology, pharmacology, physiology
from agent.library.motifs.base import Motif, Slot, assign_columns

__all__ = ["DOMAINS", "MOTIFS", "Motif", "Slot", "assign_columns", "motif"]

MOTIFS: tuple[Motif, ...] = (*epidemiology.MOTIFS, *ecology.MOTIFS, *pharmacology.MOTIFS,
                             *physiology.MOTIFS, *oncology.MOTIFS)
DOMAINS: tuple[str, ...] = tuple(dict.fromkeys(m.domain for m in MOTIFS))


def motif(name: str) -> Motif:
    """A motif by name; KeyError lists the known ones."""
    for m in MOTIFS:
        if m.name == name:
            return m
    raise KeyError(f"no motif {name!r}; known: {[m.name for m in MOTIFS]}")
