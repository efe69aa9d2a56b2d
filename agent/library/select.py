"""Choosing motifs for a task from its description and its observed columns.

Scoring is deliberately plain so a scientist can predict it: words of each domain's
vocabulary found in the description and column names pick the domain; words specific to
one motif ('incubation', 'Holling', 'oral') pick among its motifs; columns whose names
match a motif's observable slots ('cases', 'Hare', 'conc') and whose kind suits the
domain (counts for populations and cases, continuous levels for drugs and glucose) add
to it. A motif that cannot explain every column is never proposed.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from agent.library.motifs import MOTIFS, Motif, assign_columns
from agent.library.profile import ColumnProfile, DataProfile

__all__ = ["Choice", "rank_motifs", "select_motifs"]

_COUNT_DOMAINS = {"epidemiology": 0.6, "ecology": 0.3}
_LEVEL_DOMAINS = {"pharmacology": 0.3, "physiology": 0.3, "oncology": 0.2, "ecology": 0.1}


@dataclass(frozen=True)
class Choice:
    """A motif chosen for a task, with how its slots map to the columns and why."""

    motif: Motif
    columns: dict[str, ColumnProfile]
    score: float
    reasons: tuple[str, ...]
    supported: bool = True  # the description or column names hold words of its domain/motif


def _hits(text: str, words: Iterable[str]) -> list[str]:
    return [w for w in dict.fromkeys(words) if re.search(r"\b" + re.escape(w), text)]


def _domain_vocab() -> dict[str, set[str]]:
    """Words shared by every motif of a domain: evidence for the domain, not the motif."""
    vocab: dict[str, set[str]] = {}
    for m in MOTIFS:
        words = set(m.keywords)
        vocab[m.domain] = vocab[m.domain] & words if m.domain in vocab else words
    return vocab


def rank_motifs(profile: DataProfile, seed: int = 0,
                exclude: Iterable[str] = ()) -> list[Choice]:
    """Every motif that can explain the columns, best first (ties broken by ``seed``);
    ``exclude`` names motifs to leave out (a leave-one-motif-out evaluation)."""
    excluded = set(exclude)
    text = " ".join([profile.description.lower(),
                     *(c.name.lower().replace("_", " ") for c in profile.columns)])
    vocab = _domain_vocab()
    domain_hits = {d: _hits(text, words) for d, words in vocab.items()}
    best_domain = max((len(h) for h in domain_hits.values()), default=0) or 1
    kinds = [c.kind for c in profile.columns]
    counts = sum(k == "count" for k in kinds) / max(len(kinds), 1)
    out = []
    for m in MOTIFS:
        if m.name in excluded:
            continue
        columns = assign_columns(m, profile)
        if columns is None:
            continue
        reasons = []
        score = 3.0 * len(domain_hits[m.domain]) / best_domain
        if domain_hits[m.domain]:
            reasons.append(f"{m.domain} words: {', '.join(domain_hits[m.domain][:5])}")
        specific = _hits(text, set(m.keywords) - vocab[m.domain])
        score += 0.8 * len(specific)
        if specific:
            reasons.append(f"{m.name} words: {', '.join(specific[:5])}")
        named = [c.name for slot, c in columns.items() if any(
            k in c.name.lower() for s in m.slots if s.key == slot for k in s.keywords)]
        score += 1.0 * len(named)
        if named:
            reasons.append(f"columns matched by name: {', '.join(named)}")
        score += counts * _COUNT_DOMAINS.get(m.domain, 0.0)
        score += (1 - counts) * _LEVEL_DOMAINS.get(m.domain, 0.0)
        score -= 0.15 * (len(m.slots) - len(columns))
        score += 0.5 * m.prior
        supported = bool(domain_hits[m.domain] or specific or named)
        out.append(Choice(m, columns, round(score, 6), tuple(reasons), supported))
    return sorted(out, key=lambda c: (-c.score, zlib.crc32(f"{seed}:{c.motif.name}".encode())))


def select_motifs(profile: DataProfile, n: int, seed: int = 0,
                  exclude: Iterable[str] = ()) -> list[Choice]:
    """``n`` different motifs: the best of the leading domain first, then, so that a
    misread description still leaves a chance, the best of other domains interleaved
    once the leading domain's motifs score well below its best. Motifs without support
    in the words (``Choice.supported``) come only after every supported one."""
    ranked = rank_motifs(profile, seed, exclude)
    if not ranked or n <= 0:
        return []
    top = ranked[0].score
    strong = [c for c in ranked if c.score >= 0.5 * top]
    weak = [c for c in ranked if c.score < 0.5 * top]
    ordered = strong + weak
    return ([c for c in ordered if c.supported] + [c for c in ordered if not c.supported])[:n]
