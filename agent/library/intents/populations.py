"""Population intents: vaccinate susceptibles, reduce contacts, remove (harvest, cull) a
population. Each maps onto a declared control when the model has one, else onto the
state or rate itself.
"""

from __future__ import annotations

import re

from agent.library.intents.base import Answer, Ask, need_role, per_text, window_text
from agent.library.questions import (
    NUM,
    fraction,
    parse_window,
    per_model_unit,
    rate_unit,
)
from mechanistic.interventions import Scale, SetValue, Transfer

__all__ = ["contacts", "removal", "vaccination"]


def vaccination(a: Ask) -> Answer | None:
    q = a.q
    if not re.search(r"vaccin|immuni[sz]", q):
        return None
    s = need_role(a.roles, "susceptible", what="vaccination (no susceptible compartment)")
    v = need_role(a.roles, "vaccinated", "recovered", what="vaccination (no immune compartment)")
    frac = fraction(q)
    if frac is None:
        raise ValueError(f"vaccination question {a.question!r} needs a rate such as "
                         f"'1% of susceptibles per day'")
    rate = per_model_unit(frac, rate_unit(q), a.unit)
    start, end = parse_window(q, a.unit)
    return Answer([Transfer(s, v, rate, start, end)],
                  f"vaccinate: move {rate:g} of {s} {per_text(a.unit)} into {v} "
                  f"{window_text(start, end, a.unit)}")


def contacts(a: Ask) -> Answer | None:
    q = a.q
    if not re.search(r"contact|distanc|lockdown|mask|mixing|school clos", q):
        return None
    frac = fraction(q)
    start, end = parse_window(q, a.unit)
    if frac is None:
        raise ValueError(f"contact question {a.question!r} needs a size such as "
                         f"'reduce contacts by 30%'")
    if re.search(rf"\bto\s+{NUM}\s*(?:%|percent)", q):
        frac = 1 - frac  # 'contacts reduced to 70%' removes 30%
    if a.roles.get("contact_control"):
        u = a.roles["contact_control"]
        return Answer([SetValue(u, frac, start, end)],
                      f"reduce contacts: hold {u} at {frac:g} {window_text(start, end, a.unit)}")
    beta = need_role(a.roles, "transmission_rate", what="a contact reduction")
    return Answer([Scale(beta, 1 - frac, start, end)],
                  f"reduce contacts: multiply {beta} by {1 - frac:g} "
                  f"{window_text(start, end, a.unit)}")


def _removal_fraction(q: str) -> float | None:
    """'10%', 'half', 'at a rate of 0.2', '0.2 of the prey' (a fraction, so at most 1)."""
    frac = fraction(q)
    if frac is not None:
        return frac
    m = re.search(rf"\brate of\s+{NUM}", q)
    if m:
        return float(m.group(1))
    m = re.search(rf"(?<![\w.]){NUM}\s+(?:of|from)\b", q)
    if m and 0 < float(m.group(1)) <= 1:
        return float(m.group(1))
    return None


def removal(a: Ask) -> Answer | None:
    q = a.q
    if not re.search(r"remov|harvest|cull|hunt|fish|trap|shoot|kill (?:off )?\d", q):
        return None
    roles = a.roles
    who = ("predator" if re.search(r"predator|lynx|wolf|wolves|fox|shark", q) or
           (roles.get("predator") and roles["predator"].lower() in q) else
           "prey" if re.search(r"prey|hare|rabbit|deer|moose", q) else
           "top" if "top" in q else "population")
    frac = _removal_fraction(q)
    if frac is None:
        raise ValueError(f"removal question {a.question!r} needs a fraction such as "
                         f"'20% per year' or 'at a rate of 0.2 per year'")
    frac = per_model_unit(frac, rate_unit(q), a.unit)
    start, end = parse_window(q, a.unit)
    if roles.get(f"{who}_harvest_control"):
        u = roles[f"{who}_harvest_control"]
        return Answer([SetValue(u, frac, start, end)],
                      f"remove {who}: hold {u} at {frac:g} {per_text(a.unit)} "
                      f"{window_text(start, end, a.unit)}")
    # No harvest control declared: remove the fraction from the state itself.
    state = need_role(roles, "top_predator" if who == "top" else who, what=f"removing {who}s")
    return Answer([Transfer(state, None, frac, start, end)],
                  f"remove {frac:g} of {state} {per_text(a.unit)} from the system "
                  f"{window_text(start, end, a.unit)}")
