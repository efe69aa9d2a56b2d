"""Reading the pieces of a what-if question: numbers, times, windows, regimens, inputs.

These are the small, separately testable readers behind
:func:`agent.library.counterfactual.translate_question`. Each returns ``None`` when its
phrase is absent and raises ``ValueError`` only when a phrase is present but cannot be
read with confidence: the caller decides what a missing piece means, a reader never
fills one in by guessing. Texts are expected lower-cased with single spaces (see
:func:`normalise`), except where a function says it wants the original question.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from agent.library.profile import canonical_unit, days_per

__all__ = [
    "NUM",
    "PRE_WORDS",
    "Schedule",
    "amount_unit",
    "amounts",
    "at_as_start",
    "at_times",
    "convert_time",
    "dose_schedule",
    "explicit_start",
    "factor",
    "fraction",
    "infusion_rate",
    "input_scores",
    "normalise",
    "parse_window",
    "per_model_unit",
    "rate_unit",
    "repeat_step",
    "schedule",
    "set_level",
    "time_unit",
]

_NUM = r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)"
NUM = _NUM  # a number, in one group
_UNSIGNED = r"\d+(?:\.\d+)?"
# Unit words that may stand before a time ('day 10') and abbreviations after one ('10 h').
_PRE = r"(?:second|minute|hour|day|week|month|year)s?"
PRE_WORDS = r"(second|minute|hour|day|week|month|year)"  # a time unit word, in one group
_POST = (r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|h|days?|d|weeks?|wks?|months?|"
         r"years?|yrs?)")
_AMOUNT = (r"(?:mg|µg|ug|mcg|g|grams?|milligrams?|units?|iu|mmol|µmol|umol|nmol|ml|gy|kg|"
           r"doses?)\b")
_WHOLE = r"(?!\d|\.\d)"  # a number ends here: no backtracking into '30' of '300 mg'
_NOT_TIME = rf"{_WHOLE}(?!\s*(?:%|percent|per cent|x\b|times\b|fold\b|{_AMOUNT}))"
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14,
          "twenty": 20, "a single": 1, "a": 1, "an": 1}
_NUMW = (r"(\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
         r"fourteen|twenty)")


def normalise(question: str) -> str:
    """Lower case, single spaces: the form every reader below expects."""
    return " ".join(question.lower().split())


def _count(word: str) -> float:
    return float(_WORDS[word]) if word in _WORDS else float(word)


def time_unit(word: str | None) -> str | None:
    """'hrs' -> 'hour', 'd' -> 'day'; None for anything that is not a time unit."""
    if not word:
        return None
    w = word.strip().lower()
    unit = canonical_unit(w)
    if unit is None and w.endswith("s"):
        unit = canonical_unit(w[:-1])
    return unit


def convert_time(value: float, unit: str | None, model_unit: str | None) -> float:
    """A time (or duration) given in ``unit`` expressed in the model's time unit; left
    as it is when either unit is unknown (the question is then read in model units)."""
    a, b = days_per(unit) if unit else None, days_per(model_unit) if model_unit else None
    if a is None or b is None or a == b:  # same unit: exact, no round trip through days
        return value
    return value * a / b


def per_model_unit(rate: float, given: str | None, model_unit: str | None) -> float:
    """A rate 'per week' on a model in days is a seventh of it per day."""
    if not given or not model_unit or time_unit(given) == time_unit(model_unit):
        return rate
    a, b = days_per(model_unit), days_per(given)
    return rate if a is None or b is None else rate * a / b


def _tp(g: str) -> str:
    """A time point, its pieces in named groups ``{g}num`` and ``{g}pre``/``{g}post``:
    't=40', 'hour 5', 'day 10', '3 days', '40'."""
    return (rf"(?:(?:t|time)\s*=\s*|(?:the\s+)?(?P<{g}pre>{_PRE})\s*=?\s*)?"
            rf"(?<![\w.])(?P<{g}num>-?{_UNSIGNED}(?:e-?\d+)?){_NOT_TIME}"
            rf"(?:\s*(?P<{g}post>{_POST})\b)?")


def _point(m: re.Match[str], g: str) -> tuple[float, str | None]:
    return float(m.group(f"{g}num")), time_unit(m.group(f"{g}pre") or m.group(f"{g}post"))


_BETWEEN = re.compile(rf"\b(?:between|during|from)\s+{_tp('a')}\s*(?:and|-|–|to|until|till|"
                      rf"through)\s*{_tp('b')}")
_START = re.compile(rf"\b(?:from|after|starting(?:\s+(?:at|on|from))?|beginning(?:\s+(?:at|"
                    rf"on|from))?|since|as of|on|commencing(?:\s+(?:at|on))?)\s+{_tp('a')}")
_END = re.compile(rf"\b(?:until|till|to|through|up to|before|ending(?:\s+(?:at|on))?)\s+"
                  rf"{_tp('b')}")
_FOR = re.compile(rf"\b(?:for|over)\s+(?:the\s+(?P<which>next|first)\s+)?"
                  rf"(?:(?P<dnum>{_UNSIGNED})\s*|(?:a|an|one)\s+)(?P<dunit>{_POST})\b")


def explicit_start(q: str, model_unit: str | None) -> float | None:
    """The start a question states ('from day 5', 'after t=40', 'on day 3', 'between 20
    and 22'), in model time; None when it states none."""
    m = _BETWEEN.search(q) or _START.search(q)
    if m is None:
        return None
    value, unit = _point(m, "a")
    if unit is None and m.re is _BETWEEN:
        unit = _point(m, "b")[1]
    return convert_time(value, unit, model_unit)


def parse_window(question: str, model_unit: str | None = None) -> tuple[float, float]:
    """``(start, end)`` in model time from 'from day 70 (on|until day 90)', 'between
    minute 20 and 22', 'after t=12', 'until day 30', 'for 14 days', 'over 2 hours',
    'for the first 10 days'; defaults ``(0, inf)``. A time without its own unit takes the
    other end's unit, else the model's."""
    q = normalise(question)
    start, end = 0.0, math.inf
    s_unit = e_unit = None
    m = _BETWEEN.search(q)
    duration = None
    if m:
        (start, s_unit), (end, e_unit) = _point(m, "a"), _point(m, "b")
    else:
        ms = _START.search(q)
        if ms:
            start, s_unit = _point(ms, "a")
        for me in _END.finditer(q):
            if ms is None or me.start() > ms.start():
                end, e_unit = _point(me, "b")
                break
        md = _FOR.search(q)
        if md and end == math.inf:
            duration = (float(md.group("dnum") or 1), time_unit(md.group("dunit")))
    s_unit, e_unit = s_unit or e_unit, e_unit or s_unit
    start = convert_time(start, s_unit, model_unit)
    if duration is not None:
        end = start + convert_time(duration[0], duration[1], model_unit)
    elif end != math.inf:
        end = convert_time(end, e_unit, model_unit)
    if not start < end:
        raise ValueError(f"the time window of {question!r} is empty (start {start:g}, "
                         f"end {end:g})")
    return start, end


def fraction(q: str) -> float | None:
    """'30%' or '30 percent' -> 0.3; 'half' -> 0.5; 'a third' -> 1/3."""
    m = re.search(rf"{_NUM}\s*(?:%|percent|per cent)", q)
    if m:
        return float(m.group(1)) / 100
    for word, value in (("half", 0.5), ("halve", 0.5), ("a third", 1 / 3), ("quarter", 0.25),
                        ("tenth", 0.1)):
        if word in q:
            return value
    return None


def factor(q: str) -> float | None:
    """A multiplicative change: halve -> 0.5, double -> 2, 'reduce by 30%' -> 0.7,
    'increase by 20%' -> 1.2, 'to 60%' -> 0.6, 'by a factor of 3' -> 3 (1/3 if reducing)."""
    reducing = bool(re.search(r"reduc|decreas|lower|cut|drop|halv|slow|less|fewer|fall", q))
    m = re.search(rf"factor (?:of\s+)?{_NUM}", q)
    if m:
        f = float(m.group(1))
        return 1 / f if reducing and f > 1 else f
    if re.search(r"\bhalv|\bhalf\b", q):
        return 0.5
    if "double" in q:
        return 2.0
    if "triple" in q:
        return 3.0
    m = re.search(rf"\bto\s+{_NUM}\s*(?:%|percent)", q)
    if m:
        return float(m.group(1)) / 100
    frac = fraction(q)
    if frac is not None:
        return 1 - frac if reducing else 1 + frac
    m = re.search(rf"\b(?:times|x)\s*{_NUM}|{_NUM}\s*(?:times|x|-fold|fold)\b", q)
    if m:
        return float(m.group(1) or m.group(2))
    return None


def rate_unit(q: str) -> str | None:
    """The time unit a rate is given per: 'per week', 'a day', 'annually', 'daily'."""
    m = re.search(r"(?:per|a|an|each|every)\s+(second|minute|hour|day|week|month|year)", q)
    if m:
        return m.group(1)
    m = re.search(r"\b(?:(hour|dai|week|month|year)ly|annual(?:ly)?|per annum)\b", q)
    if m:
        return {"dai": "day", None: "year"}.get(m.group(1), m.group(1))
    return None


def amounts(q: str) -> list[float]:
    """Every amount named ('200 mg', '10 units', 'a dose of 5'), in order, duplicates
    of the same phrase removed."""
    found: dict[int, float] = {}
    for m in re.finditer(rf"(?<![\w.]){_NUM}\s*(?:mg|µg|ug|mcg|g|grams?|milligrams?|units?|"
                         rf"iu|mmol|µmol|umol|nmol|ml)\b", q):
        found[m.start(1)] = float(m.group(1))
    for m in re.finditer(rf"\bdose of\s+{_NUM}", q):
        found.setdefault(m.start(1), float(m.group(1)))
    return [found[k] for k in sorted(found)]


def amount_unit(q: str) -> str:
    """The unit the question's amounts are in ('mg', 'units'), '' when it names none:
    for saying back what was understood, never for arithmetic."""
    m = re.search(rf"(?<![\w.]){_NUM}\s*(mg|µg|ug|mcg|g|grams?|milligrams?|units?|iu|mmol|µmol|"
                  rf"umol|nmol|ml)\b", q)
    return m.group(2) if m else ""


def infusion_rate(q: str) -> tuple[float, str, str] | None:
    """'5 mg per hour', '0.5 units per minute', '2 mg/h', 'a rate of 3 per day' -> the
    number, the time unit it is per, and the text with that phrase blanked out (so its
    amount is not read as a total); None when no rate is named."""
    m = re.search(rf"(?<![\w.]){_NUM}\s*(?:{_AMOUNT}\s*)?(?:/|per\b|an\b|a\b|each\b)\s*"
                  rf"({_POST})\b", q)
    unit = time_unit(m.group(2)) if m else None
    if m is None or unit is None:
        return None
    return float(m.group(1)), unit, q[:m.start()] + " " * (m.end() - m.start()) + q[m.end():]


def repeat_step(q: str, model_unit: str | None) -> tuple[float, str] | None:
    """The interval of a repeated regimen in model time, with words for it: 'every 24
    hours', 'every 12h', 'q8h', 'every other day', 'twice daily' (12 h), 'three times a
    day' (8 h), 'once daily' / 'daily' (24 h), 'weekly'. None for a one-off."""
    m = re.search(r"\bq\s?(\d+)\s?h\b", q)
    if m:
        n = float(m.group(1))
        return convert_time(n, "hour", model_unit), f"every {n:g} hours"
    m = re.search(rf"\bevery\s+other\s+({_PRE})\b", q)
    if m:
        unit = time_unit(m.group(1))
        return convert_time(2.0, unit, model_unit), f"every other {unit}"
    m = re.search(rf"\bevery\s+(?:{_NUMW}\s*)?({_POST})\b", q)
    if m:
        n, unit = _count(m.group(1)) if m.group(1) else 1.0, time_unit(m.group(2))
        return convert_time(n, unit, model_unit), f"every {n:g} {unit}{'s' * (n != 1)}"
    m = re.search(rf"\b(once|twice|thrice|{_NUMW}\s+times)\s+(?:a\s+|per\s+|each\s+|every\s+)?"
                  r"(day|daily|week|weekly)\b", q)
    if m:
        times = {"once": 1.0, "twice": 2.0, "thrice": 3.0}.get(m.group(1)) or _count(m.group(2))
        period = "week" if m.group(3).startswith("week") else "day"
        return convert_time(1.0, period, model_unit) / times, m.group(0)
    m = re.search(rf"(?:{_NUMW}[- ])?hourly\b", q)
    if m:
        n = _count(m.group(1)) if m.group(1) else 1.0
        return convert_time(n, "hour", model_unit), f"every {n:g} hour{'s' * (n != 1)}"
    if re.search(r"\b(?:daily|each day|every day|once a day|nightly)\b", q):
        return convert_time(1.0, "day", model_unit), "once daily"
    if re.search(r"\bweekly\b", q):
        return convert_time(1.0, "week", model_unit), "once weekly"
    return None


@dataclass(frozen=True)
class Schedule:
    """Dose times in model time, where the question's dosing starts (what an 'instead'
    replaces from), and how the question put the repetition (for the summary)."""

    times: tuple[float, ...]
    start: float
    step: float | None = None
    words: str = ""


def _at_match(q: str) -> re.Match[str] | None:
    n = rf"(?:(?:t|time)\s*=\s*)?(?<![\w.]){_UNSIGNED}{_WHOLE}(?!\s*(?:%|{_AMOUNT}|per\b|/))"
    return re.search(rf"\bat\s+(?:the\s+)?(?:(?P<pre>{_PRE})\s*=?\s*)?(?P<list>{n}(?:\s*(?:,"
                     rf"\s*(?:and\s+)?|and\s+|&\s*){n})*)(?:\s*(?P<post>{_POST})\b)?", q)


def at_times(q: str, model_unit: str | None) -> list[float] | None:
    """'at 0, 12 and 24 hours', 'at hours 0, 12 and 24', 'at t=12', 'at hour 54'."""
    m = _at_match(q)
    if not m:
        return None
    unit = time_unit(m.group("pre") or m.group("post"))
    values = re.findall(_UNSIGNED, re.sub(r"(?:t|time)\s*=", " ", m.group("list")))
    return [convert_time(float(v), unit, model_unit) for v in values]


def at_as_start(q: str) -> str:
    """'switched off at minute 45' -> '... from minute 45' when the question states no
    other start and names one time with 'at': for a change that lasts (an input level, an
    infusion) the time it happens at is when it starts."""
    m = _at_match(q)
    if m is None or _BETWEEN.search(q) or _START.search(q):
        return q
    if len(re.findall(_UNSIGNED, re.sub(r"(?:t|time)\s*=", " ", m.group("list")))) != 1:
        return q
    return q[:m.start()] + "from" + q[m.start() + 2:]


def _dose_count(q: str) -> int | None:
    m = re.search(rf"\b{_NUMW}\s+(?:more\s+)?(?:doses|administrations|injections|tablets|"
                  r"boluses|applications|pills)\b", q)
    if not m:
        return None
    n = _count(m.group(1))
    if n != int(n) or n < 1:
        raise ValueError(f"a dose count must be a whole number, got {m.group(1)!r}")
    return int(n)


def schedule(q: str, model_unit: str | None, horizon: float | None) -> Schedule:
    """When the doses of a question fall, in model time.

    A repeated regimen runs from its start for its count ('for 5 doses'), until its end
    ('until hour 48', 'for 7 days'; the end itself excluded, windows are half-open) or, with
    neither, until ``horizon`` (the end of the simulated span). Without any of the three it
    raises: how long a regimen lasts is not something to assume."""
    step = repeat_step(q, model_unit)
    at = at_times(q, model_unit)
    start, end = parse_window(q, model_unit)
    if step is None:
        if at:
            return Schedule(tuple(sorted(at)), start)
        if re.search(r"\bper\s+(?:day|week|hour)\b|\ba\s+(?:day|week)\b|/\s*(?:day|d|h|hr|"
                     r"week)\b", q):
            raise ValueError("'per day' does not say how the amount is split: say 'once "
                             "daily', 'twice daily' or 'every 12 hours'")
        return Schedule((start,), start)
    interval, words = step
    if not interval > 0:
        raise ValueError(f"the dosing interval ({words}) must be positive")
    if at and len(at) >= 2:
        # 'three more weekly doses at days 56, 63 and 70': the listed times are the
        # schedule and the repeat word describes them; refuse when they disagree
        listed = sorted(at)
        gaps = [b - a for a, b in itertools.pairwise(listed)]
        count = _dose_count(q)
        if any(abs(g - interval) > 1e-6 * max(1.0, interval) for g in gaps):
            raise ValueError(f"the question lists doses at {', '.join(f'{v:g}' for v in listed)}"
                             f" but also says {words}; say one or the other")
        if count is not None and count != len(listed):
            raise ValueError(f"the question names {count} doses but lists {len(listed)} "
                             f"times; say one or the other")
        return Schedule(tuple(listed), listed[0], interval, words)
    if at and len(at) == 1 and not _START.search(q):
        start = at[0]  # '100 mg every 12 hours at hour 48' starts at 48
    count = _dose_count(q)
    if count is None and end == math.inf:
        if horizon is None:
            raise ValueError(f"the regimen repeats {words} but says neither how many doses "
                             f"('for 5 doses') nor until when ('until hour 48', 'for 7 "
                             f"days'), and no horizon (the end of the simulated time) was "
                             f"given")
        end = float(horizon)
    times: list[float] = []
    while count is None or len(times) < count:
        t = start + len(times) * interval
        if t >= end - 1e-9 * max(1.0, abs(end)):
            break
        times.append(t)
    if not times:
        raise ValueError(f"the regimen ({words} from t={start:g}) has no dose before its end "
                         f"t={end:g}")
    return Schedule(tuple(times), start, interval, words)


# ------------------------------------------------------------------------ inputs
_GENERIC = {"rate", "level", "value", "input", "control", "flow", "the", "of", "in", "on", "at",
            "to", "and", "for", "set", "point", "setpoint", "a", "an", "by", "from", "with",
            "per", "into", "its", "this", "that", "total", "current", "applied", "signal"}


def _stem(word: str) -> str:
    for suffix in ("ation", "ion", "ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-zµ]+", text.lower().replace("_", " "))
            if len(w) >= 3 and w not in _GENERIC]


def input_scores(question: str, inputs: Mapping[str, str]) -> list[tuple[str, int]]:
    """The known inputs a question may be about, best first, with how surely (3: its name
    or its whole description is named; 2: a distinctive word of its name; 1: only words
    of its description). ``question`` is the original text: a short name ('D', 'T')
    only counts when it stands in the question as written, capitalised the same."""
    q = normalise(question)
    scores: list[tuple[str, int]] = []
    for name, description in inputs.items():
        phrase = " ".join(name.lower().replace("_", " ").split())
        desc = " ".join((description or "").lower().split())
        if len(name) <= 2:
            named = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", question) is not None
        else:
            named = re.search(rf"\b{re.escape(phrase)}\b", q) is not None
        score = 0
        if named or (desc and re.search(rf"\b{re.escape(desc)}\b", q)):
            score = 3
        elif len(name) > 2 and any(re.search(rf"\b{re.escape(_stem(w))}", q)
                                   for w in _words(name)):
            score = 2
        elif any(re.search(rf"\b{re.escape(_stem(w))}", q) for w in _words(desc)):
            score = 1
        if score:
            scores.append((name, score))
    return sorted(scores, key=lambda x: -x[1])


_OFF = re.compile(r"\b(?:switch\w*|turn\w*|shut\w*|cut|power\w*|clos\w*)\s+(?:\w+\s+){0,3}?"
                  r"(?:off|down)\b|\b(?:off|stopped|halted|shut)\b|\bno (?:feed|flow)\b")
_LEVEL = re.compile(rf"(?:(?:\bfrom\s+{_NUM}\s*[^\d\s,;]*\s+)?\bto|\bat|\bbeen|\bbe|\bwere|\bwas|"
                    rf"\bis|=)\s+{_NUM}{_WHOLE}(?!\s*(?:%|percent|per cent|x\b|times\b|fold\b|"
                    rf"{_POST}\b))")
_TIME_BEFORE = re.compile(rf"\b(?:from|between|after|since|starting|beginning)\s+"
                          rf"(?:(?:\w+\s+)?(?:(?:t|time)\s*=\s*|{_PRE}\s*)?)?{_NUM}"
                          rf"(?:\s*{_POST})?\s*$")


def set_level(q: str) -> tuple[float, str] | None:
    """A new absolute level for an input and the text with that phrase blanked out (so
    that its number is not read as a time): 'raised to 0.3', 'had been 0.2', 'set ... to
    30', 'switched off' (0). None when the question gives no level."""
    for m in _LEVEL.finditer(q):
        before = q[:m.start()]
        if _TIME_BEFORE.search(before):
            continue  # 'from day 10 to 20': the end of a window, not a level
        if m.group(0).lstrip().startswith("=") and re.search(r"\b(?:t|time)\s*$", before):
            continue  # 't = 40' is a time
        value = float(m.group(2))
        return value, q[:m.start()] + " " * (m.end() - m.start()) + q[m.end():]
    m = _OFF.search(q)
    if m:
        return 0.0, q[:m.start()] + " " * (m.end() - m.start()) + q[m.end():]
    return None


# dose times in a description or question (used by the motifs to read a study's regimen)
_UNIT = r"(?:t\s*=\s*|time\s*|(?:day|week|year|hour|month|minute)s?\s*=?\s*)?"
_UNIT_WORD = r"(?:(second|minute|hour|day|week|month|year)s?\s*)"


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
