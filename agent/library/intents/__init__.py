"""The intents a what-if question is read as, one family a module, tried in order.

:func:`agent.library.counterfactual.translate_question` tries each of :data:`INTENTS`
on the question in turn and takes the first answer. Each intent is a function
``Ask -> Answer | None`` (:mod:`agent.library.intents.base`): ``None`` when the
question is not about it, a ``ValueError`` saying what is missing when it is but cannot
be mapped with confidence. The order matters: a known input named outright is tried
before dosing and populations; one matched only by words of its description, and a rate
named in words, come last. A new intent is a function in the family's module (or a new
module) and a place in :data:`INTENTS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agent.library.intents.base import Answer, Ask
from agent.library.intents.dosing import DOSE_WORD, dosing, infusion
from agent.library.intents.levels import named_rate, radiation, strong_input, weak_input
from agent.library.intents.populations import contacts, removal, vaccination
from agent.library.questions import amounts

__all__ = ["INTENTS", "Answer", "Ask", "kinds_asked"]

_FAMILIES: tuple[tuple[str, str], ...] = (
    ("vaccination", r"vaccin|immuni[sz]"), ("radiation", r"radiat|radiother|irradiat|\bgy\b"),
    ("contacts", r"contact|distanc|lockdown|\bmasks?\b|mixing|school clos"),
    ("removal", r"remov|harvest|\bcull|\bhunt|\bfish|\btrap|\bshoot"),
)



def kinds_asked(a: Ask) -> list[str]:
    """The kinds of change a question asks for; more than one is refused, since one
    intervention answering half of it would be silently wrong."""
    kinds = [name for name, cue in _FAMILIES if re.search(cue, a.q)]
    if re.search(r"infus|\bdrips?\b", a.q) or (amounts(a.q) and DOSE_WORD.search(a.q)):
        kinds.append("dosing")
    return kinds


INTENTS: tuple[Callable[[Ask], Answer | None], ...] = (
    vaccination, radiation, strong_input, infusion, dosing, contacts, removal,
    weak_input, named_rate,
)
