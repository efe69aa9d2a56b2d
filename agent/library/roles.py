"""Roles for a candidate the library did not write, guessed from conventional names.

The library's motifs declare their roles (``susceptible``, ``dose_target``, ...); a
candidate from discovery, the LLM or a bench task's truth does not, so what-if questions
are mapped onto it through these guesses (``S`` is susceptible, ``beta`` the
transmission rate, ``depot`` the dose target).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["infer_roles"]


def infer_roles(states: Sequence[str], params: Sequence[str],
                controls: Sequence[str]) -> dict[str, str]:
    """Roles guessed from conventional names, for candidates the library did not write."""
    out: dict[str, str] = {}
    lower = {n.lower(): n for n in [*states, *params, *controls]}
    table = {"s": "susceptible", "susceptible": "susceptible", "e": "exposed",
             "i": "infectious", "infectious": "infectious", "r": "recovered",
             "recovered": "recovered", "v": "vaccinated", "beta": "transmission_rate",
             "gamma": "recovery_rate", "sigma": "incubation_rate", "rho": "reporting_fraction",
             "gut": "dose_target", "depot": "dose_target", "central": "central",
             "prey": "prey", "predator": "predator", "g": "glucose", "glucose": "glucose",
             "insulin": "insulin", "tumour": "tumour", "tumor": "tumour"}
    for key, role in table.items():
        if key in lower:
            out.setdefault(role, lower[key])
    if "dose_target" not in out and "central" in out:
        out["dose_target"] = out["central"]
    if "vaccinated" not in out and "recovered" in out:
        out["vaccinated"] = out["recovered"]
    for c in controls:
        if "contact" in c.lower() or "distanc" in c.lower():
            out.setdefault("contact_control", c)
        if "radiat" in c.lower():
            out.setdefault("radiation_control", c)
    return out
