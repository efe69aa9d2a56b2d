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

The parts: :mod:`agent.library.questions` reads the pieces of a question (numbers,
windows, units, schedules); :mod:`agent.library.intents` maps a question onto
interventions, one family of intents a module; :mod:`agent.library.roles` guesses roles
for candidates the library did not write. This module is the entry point, and keeps the
names other code imports from it (``dose_schedule``, ``infer_roles``, ``parse_window``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.library.intents import INTENTS, Ask, kinds_asked
from agent.library.profile import canonical_unit
from agent.library.questions import dose_schedule, normalise, parse_window
from agent.library.roles import infer_roles
from mechanistic.interventions import Dose, Intervention

__all__ = ["dose_schedule", "infer_roles", "parse_window", "translate", "translate_question"]


def _fmt_summary(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


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
    ask = Ask(question, q, dict(roles), canonical_unit(model_unit) if model_unit else None,
               dict(inputs or {}), tuple(regimen or ()), horizon)
    kinds = kinds_asked(ask)
    if len(kinds) > 1:
        raise ValueError(f"question {question!r} asks for several changes at once "
                         f"({', '.join(kinds)}); ask about one at a time")
    for intent in INTENTS:
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
