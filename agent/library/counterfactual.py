"""Plain-language what-if questions -> interventions on a candidate's own names, by roles.

A library motif declares roles (``susceptible``, ``transmission_rate``, ``dose_target``,
``predator_harvest_control``...). A question is read with a few small regexes for its
numbers (percentages, factors, amounts), its time window and its rate unit, and with a
fixed list of intents (vaccinate, dose, irradiate, reduce contacts, remove a population,
scale a named rate). Whatever cannot be mapped raises ``ValueError`` saying what was
missing, because a silently wrong counterfactual is worse than none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from agent.library.profile import canonical_unit, days_per
from mechanistic.interventions import Dose, Intervention, Scale, SetValue, Transfer

__all__ = ["dose_schedule", "infer_roles", "parse_window", "translate"]

_NUM = r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)"
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


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(_NUM, text)]


def _convert_time(value: float, unit: str | None, model_unit: str | None) -> float:
    if unit is None or model_unit is None:
        return value
    a, b = days_per(unit), days_per(model_unit)
    return value if a is None or b is None else value * a / b


def parse_window(question: str, model_unit: str | None = None) -> tuple[float, float]:
    """``(start, end)`` from 'from day 70 (on|until day 90)', 'between 40 and 80',
    'after t=12', 'until day 30', 'for 14 days'; defaults ``(0, inf)``."""
    q = question.lower()
    start, end = 0.0, math.inf
    unit = None
    m = re.search(rf"between\s+{_UNIT}{_NUM}\s*(?:and|-|to)\s*{_UNIT}{_NUM}", q)
    if m:
        start, end = float(m.group(1)), float(m.group(2))
    else:
        m = re.search(rf"(?:from|after|starting(?:\s+(?:at|on|from))?|beginning(?:\s+(?:at|on))?"
                      rf"|since|as of|on)\s+{_UNIT}{_NUM}", q)
        if m:
            start = float(m.group(1))
        m2 = re.search(rf"(?:until|till|to|through|up to|before)\s+{_UNIT}{_NUM}", q)
        if m2 and (m is None or m2.start() > m.start()):
            end = float(m2.group(1))
        m3 = re.search(rf"for\s+(?:the\s+next\s+)?{_NUM}\s*{_UNIT_WORD}", q)
        if m3 and end == math.inf:
            end = start + _convert_time(float(m3.group(1)), m3.group(2), model_unit)
    m = re.search(r"\b(?:from|after|between|starting|since|until|on)\s+(second|minute|hour|"
                  r"day|week|month|year)s?\b", q)
    if m:
        unit = m.group(1)
    start = _convert_time(start, unit, model_unit)
    if end != math.inf and not re.search(rf"for\s+{_NUM}", q):
        end = _convert_time(end, unit, model_unit)
    if not start < end:
        raise ValueError(f"the time window of {question!r} is empty (start {start:g}, "
                         f"end {end:g})")
    return start, end


def _fraction(q: str) -> float | None:
    """'30%' or '30 percent' -> 0.3; 'half' -> 0.5; 'a third' -> 1/3."""
    m = re.search(rf"{_NUM}\s*(?:%|percent|per cent)", q)
    if m:
        return float(m.group(1)) / 100
    for word, value in (("half", 0.5), ("halve", 0.5), ("a third", 1 / 3), ("quarter", 0.25),
                        ("tenth", 0.1)):
        if word in q:
            return value
    return None


def _factor(q: str) -> float | None:
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
    frac = _fraction(q)
    if frac is not None:
        return 1 - frac if reducing else 1 + frac
    m = re.search(rf"\b(?:times|x)\s*{_NUM}|{_NUM}\s*(?:times|x)\b", q)
    if m:
        return float(m.group(1) or m.group(2))
    return None


def _rate_unit(q: str) -> str | None:
    m = re.search(r"(?:per|a|each|every)\s+(second|minute|hour|day|week|month|year)", q)
    return m.group(1) if m else None


def _per_model_unit(rate: float, given: str | None, model_unit: str | None) -> float:
    """A rate 'per week' on a model in days is a seventh of it per day."""
    if not given or not model_unit or canonical_unit(given) == canonical_unit(model_unit):
        return rate
    a, b = days_per(model_unit), days_per(given)
    return rate if a is None or b is None else rate * a / b


def _need(roles: Mapping[str, str], *keys: str, what: str) -> str:
    for k in keys:
        if roles.get(k):
            return roles[k]
    raise ValueError(f"cannot map {what}: this model declares none of the roles "
                     f"{', '.join(keys)} (its roles: {', '.join(sorted(roles)) or 'none'})")


def _dose_times(q: str, model_unit: str | None) -> tuple[float, ...]:
    m = re.search(rf"every\s+{_NUM}\s*{_UNIT_WORD}?.*?(?:for\s+{_NUM}\s*doses|{_NUM}\s*doses)",
                  q)
    if m:
        step = _convert_time(float(m.group(1)), m.group(2), model_unit)
        count = int(float(m.group(3) or m.group(4)))
        s = re.search(rf"(?:starting|from|beginning)\s+(?:at\s+)?{_UNIT}{_NUM}", q)
        first = float(s.group(1)) if s else 0.0
        return tuple(first + i * step for i in range(count))
    m = re.search(rf"\bat\s+{_UNIT}({_NUM[1:-1]}(?:\s*(?:,|and|&)\s*{_UNIT}{_NUM[1:-1]})*)", q)
    if m:
        return tuple(_numbers(re.sub(r"[a-z=]", " ", m.group(1))))
    m = re.search(rf"(?:on|from)\s+{_UNIT}{_NUM}", q)
    if m:
        return (float(m.group(1)),)
    return (0.0,)


def dose_schedule(text: str, model_unit: str | None = None) -> tuple[float, ...]:
    """Dose times named in a description or question ('every 12 hours, 7 doses starting
    at hour 0', 'at hours 0, 12 and 24'); ``(0.0,)`` when it names none."""
    return _dose_times(" ".join(text.lower().split()), model_unit)


def translate(question: str, roles: Mapping[str, str],
              model_unit: str | None = None) -> list[Intervention]:
    """Interventions answering ``question`` on the model whose names ``roles`` gives."""
    q = " ".join(question.lower().split())
    unit = canonical_unit(model_unit or "") if model_unit else None
    if not q:
        raise ValueError("the question is empty")
    if re.search(r"vaccin|immuni[sz]", q):
        s = _need(roles, "susceptible", what="vaccination (no susceptible compartment)")
        v = _need(roles, "vaccinated", "recovered", what="vaccination (no immune compartment)")
        frac = _fraction(q)
        if frac is None:
            raise ValueError(f"vaccination question {question!r} needs a rate such as "
                             f"'1% of susceptibles per day'")
        rate = _per_model_unit(frac, _rate_unit(q), unit)
        start, end = parse_window(q, unit)
        return [Transfer(s, v, rate, start, end)]
    if re.search(r"radiat|radiother|irradiat|\bgy\b", q):
        u = _need(roles, "radiation_control", what="radiation (no radiation control)")
        m = re.search(rf"{_NUM}\s*gy", q)
        value = float(m.group(1)) if m else 1.0
        start, end = parse_window(q, unit)
        return [SetValue(u, value, start, end)]
    amount = re.search(rf"{_NUM}\s*(mg|µg|ug|mcg|g|units|iu|mmol|nmol|ml)\b", q) or \
        re.search(rf"dose of\s+{_NUM}", q)
    if amount and re.search(r"dose|administ|inject|bolus|give|infus|ingest|take|meal", q):
        key = ("insulin_dose_target" if "insulin" in q else
               "glucose_dose_target" if re.search(r"glucose|meal|sugar", q) else "dose_target")
        target = _need(roles, key, "dose_target", what="a dose (no dose target)")
        return [Dose(target, float(amount.group(1)), _dose_times(q, unit))]
    if re.search(r"contact|distanc|lockdown|mask|mixing|school clos", q):
        frac = _fraction(q)
        start, end = parse_window(q, unit)
        if frac is None:
            raise ValueError(f"contact question {question!r} needs a size such as "
                             f"'reduce contacts by 30%'")
        if re.search(rf"\bto\s+{_NUM}\s*(?:%|percent)", q):
            frac = 1 - frac  # 'contacts reduced to 70%' removes 30%
        if roles.get("contact_control"):
            return [SetValue(roles["contact_control"], frac, start, end)]
        beta = _need(roles, "transmission_rate", what="a contact reduction")
        return [Scale(beta, 1 - frac, start, end)]
    if re.search(r"remov|harvest|cull|hunt|fish|trap|shoot|kill (?:off )?\d", q):
        who = ("predator" if re.search(r"predator|lynx|wolf|wolves|fox|shark", q) or
               (roles.get("predator") and roles["predator"].lower() in q) else
               "prey" if re.search(r"prey|hare|rabbit|deer|moose", q) else
               "top" if "top" in q else "population")
        frac = _fraction(q)
        if frac is None:
            raise ValueError(f"removal question {question!r} needs a fraction such as "
                             f"'20% per year'")
        frac = _per_model_unit(frac, _rate_unit(q), unit)
        start, end = parse_window(q, unit)
        if roles.get(f"{who}_harvest_control"):
            return [SetValue(roles[f"{who}_harvest_control"], frac, start, end)]
        # No harvest control declared: remove the fraction from the state itself.
        state = _need(roles, "top_predator" if who == "top" else who,
                      what=f"removing {who}s")
        return [Transfer(state, None, frac, start, end)]
    for phrase, keys in _RATE_WORDS:
        if phrase in q and any(roles.get(k) for k in keys):
            target = _need(roles, *keys, what=phrase)
            factor = _factor(q)
            if factor is None:
                raise ValueError(f"question {question!r} names {phrase!r} but no change "
                                 f"(halve, double, reduce by 30%, by a factor of 2)")
            start, end = parse_window(q, unit)
            return [Scale(target, factor, start, end)]
    raise ValueError(f"cannot map {question!r} onto this model: no vaccination, dose, "
                     f"radiation, contact, removal or named-rate change recognised for "
                     f"its roles ({', '.join(sorted(roles)) or 'none'})")


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
