"""Dosing intents: a bolus (one-off or repeated), an infusion, and changes to the study's own
regimen (instead of it, skipped, stopped, scaled).

A dose question is the one kind that acts on what the study already did, so these
intents read ``Ask.regimen`` and say from when the study's doses are replaced
(``Answer.replaces_from``); the numbers of the old regimen named in the question
('rather than 250 mg twice daily') are cut out before the new ones are read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from agent.library.intents.base import Answer, Ask, need_role, per_text, times_text, window_text
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
    infusion_rate,
    parse_window,
    per_model_unit,
    repeat_step,
    schedule,
    time_unit,
)
from mechanistic.interventions import Dose, Infusion, Intervention

__all__ = ["DOSE_WORD", "dosing", "infusion"]


_REPLACE = re.compile(r"\binstead\b|\brather than\b|\breplac\w*|\bswitch\w*\s+(?:over\s+)?to\b"
                      r"|\bin place of\b|\bswap\w*")


_ADD = re.compile(r"\bextra\b|\badditional\b|\banother\b|\bon top\b|\bin addition\b|"
                  r"\bsupplementa\w*")


_OLD_CLAUSE = re.compile(r"\b(?:rather than|instead of|in place of)\b[^,;?]*?(?=[,;?]|\bwhat "
                         r"if\b|$)")


DOSE_WORD = re.compile(r"\bdos(?:e|es|ed|ing)\b|administ|inject|bolus|\bgiv|\bgave\b|"
                       r"ingest|\btak(?:e|en|ing)\b|\btook\b|\bmeal|tablet|\bpills?\b|regimen"
                       r"|\breceiv|\bmedicat|\bswitch\w*\s+to\b")


_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
             "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}


def _dose_target(a: Ask, infusion: bool = False) -> str:
    q = a.q
    keys = (["insulin_dose_target"] if "insulin" in q else
            ["glucose_dose_target"] if re.search(r"glucose|meal|sugar", q) else [])
    if infusion or re.search(r"\biv\b|intraven", q):
        keys.append("central")  # into the blood, not into an oral depot
    keys.append("dose_target")
    return need_role(a.roles, *keys, what="a dose (no dose target)")


def _replacing(a: Ask) -> bool:
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


def _one_amount(a: Ask, text: str) -> float | None:
    found = list(dict.fromkeys(amounts(text)))
    if len(found) > 1:
        raise ValueError(f"question {a.question!r} names several amounts "
                         f"({', '.join(f'{x:g}' for x in found)}); ask about one regimen "
                         f"at a time")
    return found[0] if found else None


def infusion(a: Ask) -> Answer | None:
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
            raise ValueError(f"question {a.question!r}: {total:g} at {r:g} {per_text(a.unit)} "
                             f"does not fit the window {window_text(start, end, a.unit)}")
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
    what = (f"infuse {r:g} {size + ' ' if size else ''}{per_text(a.unit)} into {target} "
            f"{window_text(start, end, a.unit)}")
    if end < math.inf:
        what += f", {r * (end - start):g} {size} in all"
    if replaces:
        what = f"replace the dosing regimen from t={start:g} with an infusion: {what}"
    return Answer([item], what, start if replaces else None)


def _regimen_doses(a: Ask) -> list[tuple[float, float]]:
    """The study's doses as (time, amount), in time order."""
    return sorted((t, d.amount) for d in a.regimen for t in d.times)


def _doses(target: str, pairs: Sequence[tuple[float, float]]) -> list[Intervention]:
    """One ``Dose`` per distinct amount, in order of first use."""
    by_amount: dict[float, list[float]] = {}
    for t, amount in pairs:
        by_amount.setdefault(amount, []).append(t)
    return [Dose(target, amount, tuple(times)) for amount, times in by_amount.items()]


def _need_regimen(a: Ask, what: str) -> list[tuple[float, float]]:
    pairs = _regimen_doses(a)
    if not pairs:
        raise ValueError(f"question {a.question!r} {what}, which needs the study's existing "
                         f"dosing regimen; none was given")
    return pairs


def _stop(a: Ask, text: str) -> Answer:
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
    return Answer([], f"stop the dosing regimen from t={at:g}: no doses at or after it{note}",
                  at)


def _skip(a: Ask, text: str, target: str) -> Answer:
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
            doses = times_text([t for t, _ in pairs])
            raise ValueError(f"question {a.question!r} skips the dose at t={at:g}, but the "
                             f"regimen has none then (its doses: {doses})")
    rest = [(t, amount) for t, amount in pairs if t > at + 1e-9 * max(1.0, abs(at))]
    return Answer(_doses(target, rest),
                  f"skip the dose at t={at:g}: replace the dosing regimen from t={at:g} with "
                  f"the remaining {len(rest)} dose(s) into {target}", at)


def _scale_regimen(a: Ask, text: str, f: float, target: str) -> Answer:
    pairs = _need_regimen(a, f"scales the dose by {f:g}")
    start = explicit_start(text, a.unit) or 0.0
    kept = [(t, amount * f) for t, amount in pairs if t >= start - 1e-9 * max(1.0, abs(start))]
    if not kept:
        raise ValueError(f"question {a.question!r}: the regimen has no dose at or after "
                         f"t={start:g} to scale")
    return Answer(_doses(target, kept),
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


def dosing(a: Ask) -> Answer | None:
    q = a.q
    if not DOSE_WORD.search(q):
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
           if sched.step else f"{size} at {times_text(sched.times)}")
    if replaces:
        dropped = sum(1 for t, _ in _regimen_doses(a) if t >= sched.start)
        note = f", dropping {dropped} of the study's doses" if a.regimen else ""
        return Answer(items, f"replace the dosing regimen from t={sched.start:g} with {how} "
                              f"into {target}{note}", sched.start)
    return Answer(items, f"give {how} into {target}"
                          f"{' in addition to the study regimen' if a.regimen else ''}")
