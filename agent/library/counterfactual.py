"""Plain-language what-if questions -> interventions on a candidate's own names, by roles.

A library motif declares roles (``susceptible``, ``transmission_rate``, ``dose_target``,
``predator_harvest_control``...); a task may also name its known inputs (controls whose
schedule comes from the data: a feed rate, a dilution rate, a temperature). A question is
read with small regexes for its numbers, its time window and its rate unit
(:mod:`agent.library.questions`), and with a fixed list of intents tried in order:
vaccinate, irradiate, change a named input, infuse, dose (one-off, repeated, instead of
the study's regimen, skipped, stopped, scaled), reduce contacts, remove a population,
change a known input named only by its description, scale a named rate.

:func:`translate_question` also says whether the study's existing dosing is replaced from
the question's start (``replaces_regimen``: the caller drops the study's doses at or
after it; a negative dose would not undo a bolus once the fit is conditioned on it) and
gives one plain sentence of what it understood, to show before simulating. Whatever
cannot be mapped with confidence raises ``ValueError`` saying what was missing and a
phrasing that works, because a silently wrong counterfactual is worse than none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.library.profile import canonical_unit
from agent.library.questions import (
    NUM,
    PRE_WORDS,
    amount_unit,
    amounts,
    at_as_start,
    at_times,
    convert_time,
    explicit_start,
    factor,
    fraction,
    infusion_rate,
    input_scores,
    normalise,
    parse_window,
    per_model_unit,
    rate_unit,
    repeat_step,
    schedule,
    set_level,
    time_unit,
)
from mechanistic.interventions import (
    Dose,
    Infusion,
    Intervention,
    Scale,
    SetValue,
    Transfer,
)

__all__ = ["dose_schedule", "infer_roles", "parse_window", "translate", "translate_question"]

_UNIT = r"(?:t\s*=\s*|time\s*|(?:day|week|year|hour|month|minute)s?\s*=?\s*)?"
_UNIT_WORD = r"(?:(second|minute|hour|day|week|month|year)s?\s*)"

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
_REPLACE = re.compile(r"\binstead\b|\brather than\b|\breplac\w*|\bswitch\w*\s+(?:over\s+)?to\b"
                      r"|\bin place of\b|\bswap\w*")
_ADD = re.compile(r"\bextra\b|\badditional\b|\banother\b|\bon top\b|\bin addition\b|"
                  r"\bsupplementa\w*")
_OLD_CLAUSE = re.compile(r"\b(?:rather than|instead of|in place of)\b[^,;?]*?(?=[,;?]|\bwhat "
                         r"if\b|$)")
_DOSE_WORD = re.compile(r"\bdos(?:e|es|ed|ing)\b|administ|inject|bolus|\bgiv|\bgave\b|"
                        r"ingest|\btak(?:e|en|ing)\b|\btook\b|\bmeal|tablet|\bpills?\b|regimen"
                        r"|\breceiv|\bmedicat|\bswitch\w*\s+to\b")
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
             "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}


@dataclass(frozen=True)
class _Ask:
    """One question being read: its text, the model's names, and the study's context."""

    question: str                      # as written (short input names are case-sensitive)
    q: str                             # normalised
    roles: Mapping[str, str]
    unit: str | None                   # the model's canonical time unit
    inputs: Mapping[str, str]
    regimen: tuple[Dose, ...]
    horizon: float | None


@dataclass(frozen=True)
class _Answer:
    """What a question was understood as: the interventions, whether (and from when) the
    study's own dosing is replaced, and the sentence saying so."""

    items: list[Intervention]
    summary: str
    replaces_from: float | None = None  # None: the study's doses all stay


def _need(roles: Mapping[str, str], *keys: str, what: str) -> str:
    for k in keys:
        if roles.get(k):
            return roles[k]
    raise ValueError(f"cannot map {what}: this model declares none of the roles "
                     f"{', '.join(keys)} (its roles: {', '.join(sorted(roles)) or 'none'})")


def _scaled(a: _Ask, target: str, label: str, missing: str) -> _Answer:
    """``target`` multiplied by the question's factor over its window; a question without
    a readable factor is refused with ``missing`` as the reason."""
    f = factor(a.q)
    if f is None:
        raise ValueError(f"question {a.question!r} {missing}")
    start, end = parse_window(a.q, a.unit)
    return _Answer([Scale(target, f, start, end)],
                   f"multiply {label} by {f:g} {_when(start, end, a.unit)}")


def _when(start: float, end: float, unit: str | None) -> str:
    units = f" ({unit}s)" if unit else ""
    if end == math.inf:
        return f"from t={start:g} on{units}" if start else f"throughout{units}"
    return f"from t={start:g} to t={end:g}{units}"


def _per(unit: str | None) -> str:
    return f"per {unit}" if unit else "per unit time"


def _times(times: Sequence[float]) -> str:
    shown = ", ".join(f"{t:g}" for t in times[:6])
    return f"t={shown}{', ...' if len(times) > 6 else ''}"


def _fmt_summary(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# ------------------------------------------------------------------------ intents
def _vaccination(a: _Ask) -> _Answer | None:
    q = a.q
    if not re.search(r"vaccin|immuni[sz]", q):
        return None
    s = _need(a.roles, "susceptible", what="vaccination (no susceptible compartment)")
    v = _need(a.roles, "vaccinated", "recovered", what="vaccination (no immune compartment)")
    frac = fraction(q)
    if frac is None:
        raise ValueError(f"vaccination question {a.question!r} needs a rate such as "
                         f"'1% of susceptibles per day'")
    rate = per_model_unit(frac, rate_unit(q), a.unit)
    start, end = parse_window(q, a.unit)
    return _Answer([Transfer(s, v, rate, start, end)],
                   f"vaccinate: move {rate:g} of {s} {_per(a.unit)} into {v} "
                   f"{_when(start, end, a.unit)}")


def _radiation(a: _Ask) -> _Answer | None:
    q = a.q
    if not re.search(r"radiat|radiother|irradiat|\bgy\b", q):
        return None
    u = _need(a.roles, "radiation_control", what="radiation (no radiation control)")
    m = re.search(rf"{NUM}\s*gy", q)
    if m is None:
        raise ValueError(f"radiation question {a.question!r} needs a dose rate such as "
                         f"'2 Gy per day'")
    value = per_model_unit(float(m.group(1)), rate_unit(q), a.unit)
    start, end = parse_window(q, a.unit)
    return _Answer([SetValue(u, value, start, end)],
                   f"irradiate: hold {u} at {value:g} Gy {_per(a.unit)} "
                   f"{_when(start, end, a.unit)}")


def _input(a: _Ask, strong: bool) -> _Answer | None:
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
        return _scaled(a, name, f"the input {label}",
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
    return _Answer([SetValue(name, value, start, end)],
                   f"set the input {label} to {value:g} {_when(start, end, a.unit)}")


def _strong_input(a: _Ask) -> _Answer | None:
    return _input(a, strong=True)


def _weak_input(a: _Ask) -> _Answer | None:
    return _input(a, strong=False)


def _dose_target(a: _Ask, infusion: bool = False) -> str:
    q = a.q
    keys = (["insulin_dose_target"] if "insulin" in q else
            ["glucose_dose_target"] if re.search(r"glucose|meal|sugar", q) else [])
    if infusion or re.search(r"\biv\b|intraven", q):
        keys.append("central")  # into the blood, not into an oral depot
    keys.append("dose_target")
    return _need(a.roles, *keys, what="a dose (no dose target)")


def _replacing(a: _Ask) -> bool:
    replace, add = bool(_REPLACE.search(a.q)), bool(_ADD.search(a.q))
    if replace and add:
        raise ValueError(f"question {a.question!r} both adds to and replaces the dosing; "
                         f"say either 'instead' or 'an extra'")
    return replace


def _new_text(q: str) -> str:
    """The question without its description of the old regimen ('rather than 250 mg
    twice daily', 'switched from 250 mg ... to'), whose numbers are not the new ones."""
    q = _OLD_CLAUSE.sub(" ", q)
    return re.sub(r"\b(switch\w*)\s+from\b[^,;?]*?\bto\b", r"\1 to", q)


def _one_amount(a: _Ask, text: str) -> float | None:
    found = list(dict.fromkeys(amounts(text)))
    if len(found) > 1:
        raise ValueError(f"question {a.question!r} names several amounts "
                         f"({', '.join(f'{x:g}' for x in found)}); ask about one regimen "
                         f"at a time")
    return found[0] if found else None


def _infusion(a: _Ask) -> _Answer | None:
    q = a.q
    if not re.search(r"infus|\bdrips?\b", q):
        return None
    target = _dose_target(a, infusion=True)
    replaces = _replacing(a)
    text = _new_text(q)
    rate = infusion_rate(text)
    rest = at_as_start(rate[2] if rate else text)
    start, end = parse_window(rest, a.unit)
    m = re.search(rf"(?<![\w.]){NUM}[- ]({PRE_WORDS})s?\s+(?:long\s+)?(?:\w+\s+)?infusion",
                  rest)
    if m and end == math.inf:
        end = start + convert_time(float(m.group(1)), time_unit(m.group(2)), a.unit)
    total = _one_amount(a, rest)
    if rate:
        r = per_model_unit(rate[0], rate[1], a.unit)
        if total is not None and end == math.inf:
            end = start + total / r
        elif total is not None and not math.isclose(total, r * (end - start), rel_tol=1e-6):
            raise ValueError(f"question {a.question!r}: {total:g} at {r:g} {_per(a.unit)} "
                             f"does not fit the window {_when(start, end, a.unit)}")
    elif total is not None and end < math.inf:
        r = total / (end - start)
    elif total is not None:
        raise ValueError(f"infusion question {a.question!r} says how much but not over how "
                         f"long; say 'over 2 hours', 'between minute 20 and 22' or give a "
                         f"rate ('5 mg per hour')")
    else:
        raise ValueError(f"infusion question {a.question!r} needs a rate ('5 mg per hour') "
                         f"or an amount over a window ('300 units between minute 20 and 22')")
    item = Infusion(target, r, start, end)
    size = amount_unit(rest)
    what = (f"infuse {r:g} {size + ' ' if size else ''}{_per(a.unit)} into {target} "
            f"{_when(start, end, a.unit)}")
    if end < math.inf:
        what += f", {r * (end - start):g} {size} in all"
    if replaces:
        what = f"replace the dosing regimen from t={start:g} with an infusion: {what}"
    return _Answer([item], what, start if replaces else None)


def _regimen_doses(a: _Ask) -> list[tuple[float, float]]:
    """The study's doses as (time, amount), in time order."""
    return sorted((t, d.amount) for d in a.regimen for t in d.times)


def _doses(target: str, pairs: Sequence[tuple[float, float]]) -> list[Intervention]:
    """One ``Dose`` per distinct amount, in order of first use."""
    by_amount: dict[float, list[float]] = {}
    for t, amount in pairs:
        by_amount.setdefault(amount, []).append(t)
    return [Dose(target, amount, tuple(times)) for amount, times in by_amount.items()]


def _need_regimen(a: _Ask, what: str) -> list[tuple[float, float]]:
    pairs = _regimen_doses(a)
    if not pairs:
        raise ValueError(f"question {a.question!r} {what}, which needs the study's existing "
                         f"dosing regimen; none was given")
    return pairs


def _stop(a: _Ask, text: str) -> _Answer:
    """Stopping the study's dosing: nothing new, the old doses dropped from a time."""
    m = re.search(rf"\bafter\s+the\s+({'|'.join(_ORDINALS)})\s+dose\b", text)
    if m:
        pairs = _need_regimen(a, "stops after a numbered dose")
        n = _ORDINALS[m.group(1)]
        if n >= len(pairs):
            raise ValueError(f"question {a.question!r} stops after dose {n}, but the "
                             f"regimen has only {len(pairs)}")
        at = pairs[n][0]
    else:
        found = explicit_start(text, a.unit)
        times = at_times(text, a.unit)
        at = found if found is not None else (times[0] if times and len(times) == 1 else None)
        if at is None:
            raise ValueError(f"question {a.question!r} stops the dosing but not when; say "
                             f"'stopped at hour 48' or 'after the third dose'")
        if re.search(r"\bafter\b", text) and any(abs(t - at) <= 1e-9 * max(1.0, abs(at))
                                                 for t, _ in _regimen_doses(a)):
            raise ValueError(f"question {a.question!r}: a dose falls exactly at t={at:g}; "
                             f"say 'from t={at:g}' (cancel it) or 'after the dose at "
                             f"t={at:g}' by its number ('after the third dose')")
    dropped = sum(1 for t, _ in _regimen_doses(a) if t >= at)
    note = f" ({dropped} of the study's doses dropped)" if a.regimen else ""
    return _Answer([], f"stop the dosing regimen from t={at:g}: no doses at or after it{note}",
                   at)


def _skip(a: _Ask, text: str, target: str) -> _Answer:
    pairs = _need_regimen(a, "skips a dose")
    m = re.search(rf"\b({'|'.join(_ORDINALS)}|last|final)\s+dose\b", text)
    if m:
        n = len(pairs) if m.group(1) in ("last", "final") else _ORDINALS[m.group(1)]
        if n > len(pairs):
            raise ValueError(f"question {a.question!r} skips dose {n}, but the regimen has "
                             f"only {len(pairs)}")
        at = pairs[n - 1][0]
    else:
        times = at_times(text, a.unit)
        found = explicit_start(text, a.unit)
        at = times[0] if times and len(times) == 1 else found
        if at is None:
            raise ValueError(f"question {a.question!r} skips a dose but not which; say 'the "
                             f"dose at hour 24' or 'the second dose'")
        if not any(abs(t - at) <= 1e-9 * max(1.0, abs(at)) for t, _ in pairs):
            raise ValueError(f"question {a.question!r} skips the dose at t={at:g}, but the "
                             f"regimen has none then (its doses: {_times([t for t, _ in pairs])})")
    rest = [(t, amount) for t, amount in pairs if t > at + 1e-9 * max(1.0, abs(at))]
    return _Answer(_doses(target, rest),
                   f"skip the dose at t={at:g}: replace the dosing regimen from t={at:g} with "
                   f"the remaining {len(rest)} dose(s) into {target}", at)


def _scale_regimen(a: _Ask, text: str, f: float, target: str) -> _Answer:
    pairs = _need_regimen(a, f"scales the dose by {f:g}")
    start = explicit_start(text, a.unit) or 0.0
    kept = [(t, amount * f) for t, amount in pairs if t >= start - 1e-9 * max(1.0, abs(start))]
    if not kept:
        raise ValueError(f"question {a.question!r}: the regimen has no dose at or after "
                         f"t={start:g} to scale")
    return _Answer(_doses(target, kept),
                   f"replace the dosing regimen from t={start:g} with the same {len(kept)} "
                   f"dose time(s) at {f:g} times the amount into {target}", start)


def _dose_factor(text: str) -> float | None:
    if not re.search(r"\bdos(?:e|es|ing)\b|\bamount\b", text):
        return None
    m = re.search(r"\b(twice|thrice|three times|four times)\s+(?:the|as much|as large)", text)
    if m:
        return {"twice": 2.0, "thrice": 3.0, "three times": 3.0, "four times": 4.0}[m.group(1)]
    if re.search(r"\bdoubl|\bhalv|\bhalf\b|\btripl|%|\bfactor\b", text):
        return factor(text)
    return None


def _dosing(a: _Ask) -> _Answer | None:
    q = a.q
    if not _DOSE_WORD.search(q):
        return None
    strong = re.search(r"\bdos(?:e|es|ed|ing)\b|administ|inject|bolus|tablet|\bpills?\b|"
                       r"regimen|medicat", q)
    text = _new_text(q)
    amount = _one_amount(a, text)
    if amount is None and re.search(r"\b(?:stop|discontinu|halt|ceas|withh[oe]l|withdr[ae]w|"
                                    r"end(?:ed|ing)?\b)", text) and strong:
        return _stop(a, text)
    if amount is None and re.search(r"\b(?:skip|miss|omit|forg[oe]t)\w*", text):
        return _skip(a, text, _dose_target(a))
    f = _dose_factor(text) if amount is None else None
    if f is not None:
        return _scale_regimen(a, text, f, _dose_target(a))
    replaces = _replacing(a)
    if amount is None:
        same = re.search(r"\b(?:same|usual|current|original) (?:dose|amount)\b", text)
        if same and a.regimen:
            found = {d.amount for d in a.regimen}
            if len(found) != 1:
                raise ValueError(f"question {a.question!r} asks for 'the same dose' but the "
                                 f"regimen's doses differ ({sorted(found)}); name the amount")
            amount = found.pop()
        elif strong or same or repeat_step(text, a.unit):
            raise ValueError(f"dose question {a.question!r} names no amount; say e.g. "
                             f"'200 mg every 24 hours' or 'a dose of 100 mg at t=12'")
        else:
            return None
    target = _dose_target(a)
    sched = schedule(text, a.unit, a.horizon)
    if a.regimen and not replaces and not _ADD.search(q) and len(sched.times) > 1:
        raise ValueError(f"question {a.question!r} gives a new regimen but not whether it "
                         f"replaces the study's dosing ('instead', 'rather than') or adds "
                         f"to it ('extra', 'additional')")
    items: list[Intervention] = [Dose(target, amount, sched.times)]
    n = len(sched.times)
    size = f"{amount:g} {amount_unit(text)}".strip()
    how = (f"{size} {sched.words} ({n} dose{'s' * (n != 1)} from t={sched.times[0]:g})"
           if sched.step else f"{size} at {_times(sched.times)}")
    if replaces:
        dropped = sum(1 for t, _ in _regimen_doses(a) if t >= sched.start)
        note = f", dropping {dropped} of the study's doses" if a.regimen else ""
        return _Answer(items, f"replace the dosing regimen from t={sched.start:g} with {how} "
                              f"into {target}{note}", sched.start)
    return _Answer(items, f"give {how} into {target}"
                          f"{' in addition to the study regimen' if a.regimen else ''}")


def _contacts(a: _Ask) -> _Answer | None:
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
        return _Answer([SetValue(u, frac, start, end)],
                       f"reduce contacts: hold {u} at {frac:g} {_when(start, end, a.unit)}")
    beta = _need(a.roles, "transmission_rate", what="a contact reduction")
    return _Answer([Scale(beta, 1 - frac, start, end)],
                   f"reduce contacts: multiply {beta} by {1 - frac:g} "
                   f"{_when(start, end, a.unit)}")


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


def _removal(a: _Ask) -> _Answer | None:
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
        return _Answer([SetValue(u, frac, start, end)],
                       f"remove {who}: hold {u} at {frac:g} {_per(a.unit)} "
                       f"{_when(start, end, a.unit)}")
    # No harvest control declared: remove the fraction from the state itself.
    state = _need(roles, "top_predator" if who == "top" else who, what=f"removing {who}s")
    return _Answer([Transfer(state, None, frac, start, end)],
                   f"remove {frac:g} of {state} {_per(a.unit)} from the system "
                   f"{_when(start, end, a.unit)}")


def _named_rate(a: _Ask) -> _Answer | None:
    q = a.q
    for phrase, keys in _RATE_WORDS:
        if phrase in q and any(a.roles.get(k) for k in keys):
            target = _need(a.roles, *keys, what=phrase)
            return _scaled(a, target, f"{target} ({phrase})",
                           f"names {phrase!r} but no change (halve, double, reduce by 30%, "
                           f"by a factor of 2)")
    return None


_FAMILIES: tuple[tuple[str, str], ...] = (
    ("vaccination", r"vaccin|immuni[sz]"), ("radiation", r"radiat|radiother|irradiat|\bgy\b"),
    ("contacts", r"contact|distanc|lockdown|\bmasks?\b|mixing|school clos"),
    ("removal", r"remov|harvest|\bcull|\bhunt|\bfish|\btrap|\bshoot"),
)


def _several(a: _Ask) -> list[str]:
    """The kinds of change a question asks for; more than one is refused, since one
    intervention answering half of it would be silently wrong."""
    kinds = [name for name, cue in _FAMILIES if re.search(cue, a.q)]
    if re.search(r"infus|\bdrips?\b", a.q) or (amounts(a.q) and _DOSE_WORD.search(a.q)):
        kinds.append("dosing")
    return kinds


_INTENTS: tuple[Callable[[_Ask], _Answer | None], ...] = (
    _vaccination, _radiation, _strong_input, _infusion, _dosing, _contacts, _removal,
    _weak_input, _named_rate,
)


def translate_question(question: str, roles: Mapping[str, str],
                       model_unit: str | None = None, *,
                       inputs: Mapping[str, str] | None = None,
                       regimen: Sequence[Dose] | None = None,
                       horizon: float | None = None) -> dict[str, Any]:
    """Read ``question`` onto the model whose names ``roles`` gives.

    ``inputs`` maps the task's known input controls to a short description; ``regimen``
    is the study's own dosing (``Dose`` interventions, in model time) that 'instead',
    'skip' or 'stop' questions act on; ``horizon`` is the end of the simulated span, where
    a regimen with neither a count nor an end stops. Returns ``interventions`` (a list),
    ``replaces_regimen`` (drop the study's doses at or after ``replaces_from``, a time,
    None when nothing is replaced) and ``summary`` (one sentence of what was understood,
    naming the model's own targets). Raises ``ValueError`` for anything not understood.
    """
    q = normalise(question)
    if not q:
        raise ValueError("the question is empty")
    ask = _Ask(question, q, dict(roles), canonical_unit(model_unit) if model_unit else None,
               dict(inputs or {}), tuple(regimen or ()), horizon)
    kinds = _several(ask)
    if len(kinds) > 1:
        raise ValueError(f"question {question!r} asks for several changes at once "
                         f"({', '.join(kinds)}); ask about one at a time")
    for intent in _INTENTS:
        answer = intent(ask)
        if answer is not None:
            return {"interventions": list(answer.items),
                    "replaces_regimen": answer.replaces_from is not None,
                    "replaces_from": answer.replaces_from,
                    "summary": _fmt_summary(answer.summary)}
    known = f"; its inputs: {', '.join(sorted(ask.inputs))}" if ask.inputs else ""
    raise ValueError(f"cannot map {question!r} onto this model: no vaccination, dose, "
                     f"infusion, radiation, contact, removal, input or named-rate change "
                     f"recognised for its roles ({', '.join(sorted(roles)) or 'none'}){known}; "
                     f"phrase it like 'reduce contacts by 30% from day 40', 'give 100 mg "
                     f"every 12 hours for 5 doses' or 'set feed_rate to 0.3 from t=10'")


def translate(question: str, roles: Mapping[str, str], model_unit: str | None = None, *,
              inputs: Mapping[str, str] | None = None, regimen: Sequence[Dose] | None = None,
              horizon: float | None = None) -> list[Intervention]:
    """Interventions answering ``question`` on the model whose names ``roles`` gives (see
    :func:`translate_question`, which also says whether the study's dosing is replaced)."""
    return translate_question(question, roles, model_unit, inputs=inputs, regimen=regimen,
                              horizon=horizon)["interventions"]


def _dose_times(q: str, model_unit: str | None) -> tuple[float, ...]:
    m = re.search(rf"every\s+{NUM}\s*{_UNIT_WORD}?.*?(?:for\s+{NUM}\s*doses|{NUM}\s*doses)",
                  q)
    if m:
        step = convert_time(float(m.group(1)), m.group(2), model_unit)
        count = int(float(m.group(3) or m.group(4)))
        s = re.search(rf"(?:starting|from|beginning)\s+(?:at\s+)?{_UNIT}{NUM}", q)
        first = float(s.group(1)) if s else 0.0
        return tuple(first + i * step for i in range(count))
    m = re.search(rf"\bat\s+{_UNIT}({NUM[1:-1]}(?:\s*(?:,|and|&)\s*{_UNIT}{NUM[1:-1]})*)", q)
    if m:
        return tuple(_numbers(re.sub(r"[a-z=]", " ", m.group(1))))
    m = re.search(rf"(?:on|from)\s+{_UNIT}{NUM}", q)
    if m:
        return (float(m.group(1)),)
    return (0.0,)


def dose_schedule(text: str, model_unit: str | None = None) -> tuple[float, ...]:
    """Dose times named in a description or question ('every 12 hours, 7 doses starting
    at hour 0', 'at hours 0, 12 and 24'); ``(0.0,)`` when it names none."""
    return _dose_times(" ".join(text.lower().split()), model_unit)



def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(NUM, text)]


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
