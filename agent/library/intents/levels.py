"""Level and rate intents: irradiate, set or scale a known input (a feed rate, a
temperature), and scale a rate named in words ('halve the transmission').

A known input named by its name or its whole description is tried early
(:func:`strong_input`); one matched only by words of its description is tried late
(:func:`weak_input`), so a stray word cannot capture a question plainly about something
else.
"""

from __future__ import annotations

import re

from agent.library.intents.base import Answer, Ask, need_role, per_text, scaled, window_text
from agent.library.questions import (
    NUM,
    at_as_start,
    input_scores,
    parse_window,
    per_model_unit,
    rate_unit,
    set_level,
)
from mechanistic.interventions import SetValue

__all__ = ["named_rate", "radiation", "strong_input", "weak_input"]


# phrase -> roles that may answer it, in order of preference
_RATE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("transmission", ("transmission_rate",)), ("infectiousness", ("transmission_rate",)),
    ("infection rate", ("transmission_rate",)), ("contact rate", ("transmission_rate",)),
    ("recovery", ("recovery_rate",)), ("reporting", ("reporting_fraction",)),
    ("testing", ("reporting_fraction",)), ("incubation", ("incubation_rate",)),
    ("waning", ("waning_rate",)), ("elimination", ("elimination_rate",)),
    ("clearance", ("elimination_rate", "insulin_clearance")),
    ("absorption", ("absorption_rate",)), ("insulin sensitivity", ("insulin_sensitivity",)),
    ("glucose effectiveness", ("glucose_effectiveness",)), ("secretion", ("secretion_rate",)),
    ("predation", ("predation_rate",)), ("kill", ("kill_rate",)),
    ("prey growth", ("prey_growth",)), ("growth", ("growth_rate", "prey_growth")),
    ("birth", ("prey_growth", "growth_rate")), ("carrying capacity", ("carrying_capacity",)),
    ("mortality", ("predator_death_rate",)), ("death rate", ("predator_death_rate",)),
)


def radiation(a: Ask) -> Answer | None:
    q = a.q
    if not re.search(r"radiat|radiother|irradiat|\bgy\b", q):
        return None
    u = need_role(a.roles, "radiation_control", what="radiation (no radiation control)")
    m = re.search(rf"{NUM}\s*gy", q)
    if m is None:
        raise ValueError(f"radiation question {a.question!r} needs a dose rate such as "
                         f"'2 Gy per day'")
    value = per_model_unit(float(m.group(1)), rate_unit(q), a.unit)
    start, end = parse_window(q, a.unit)
    return Answer([SetValue(u, value, start, end)],
                  f"irradiate: hold {u} at {value:g} Gy {per_text(a.unit)} "
                  f"{window_text(start, end, a.unit)}")


def _input(a: Ask, strong: bool) -> Answer | None:
    """A change of a known input's level. Named inputs (by name, or by their whole
    description) are tried before the dosing and population intents; inputs matched only
    by words of their description are tried after them, so a stray word cannot capture a
    question that is plainly about something else."""
    if not a.inputs:
        return None
    scores = input_scores(a.question, a.inputs)
    if not scores or (scores[0][1] >= 2) != strong:
        return None
    top = [name for name, score in scores if score == scores[0][1]]
    if len(top) > 1:
        raise ValueError(f"question {a.question!r} could be about any of the inputs "
                         f"{', '.join(sorted(top))}; name the one to change")
    name = top[0]
    q = a.q
    desc = a.inputs.get(name) or ""
    label = f"{name} ({desc})" if desc else name
    if re.search(r"%|percent|per cent|\bhalv|\bhalf\b|\bdoubl|\btripl|\bfactor\b|\btimes\b|"
                 r"\bfold\b", q):
        return scaled(a, name, f"the input {label}",
                      f"changes {name} by an amount not understood; say 'by 50%', 'halve' "
                      f"or 'by a factor of 2'")
    level = set_level(q)
    if level is None:
        if re.search(rf"\bby\s+{NUM}", q):
            raise ValueError(f"question {a.question!r} changes {name} by an absolute "
                             f"amount, which needs its unknown base level; give the new "
                             f"level ('raised to 0.3') or a relative change ('by 20%')")
        raise ValueError(f"question {a.question!r} names the input {name} but no new level; "
                         f"say e.g. 'set {name} to 0.3 from t=10', 'increase {name} by "
                         f"50%' or 'switch {name} off after t=40'")
    value, rest = level
    # 'off at hour 20 and restarted at hour 30': the change lasts until the restart
    rest = re.sub(r"\b(?:and\s+)?(?:then\s+)?(?:restart\w*|resum\w*|(?:switch|turn)\w* back on)"
                  r"\s+(?:at|from|on)\b", " until", rest)
    start, end = parse_window(at_as_start(rest), a.unit)
    return Answer([SetValue(name, value, start, end)],
                  f"set the input {label} to {value:g} {window_text(start, end, a.unit)}")


def strong_input(a: Ask) -> Answer | None:
    return _input(a, strong=True)


def weak_input(a: Ask) -> Answer | None:
    return _input(a, strong=False)


def named_rate(a: Ask) -> Answer | None:
    q = a.q
    for phrase, keys in _RATE_WORDS:
        if phrase in q and any(a.roles.get(k) for k in keys):
            target = need_role(a.roles, *keys, what=phrase)
            return scaled(a, target, f"{target} ({phrase})",
                          f"names {phrase!r} but no change (halve, double, reduce by 30%, "
                          f"by a factor of 2)")
    return None
