"""The LLM proposer in structured mode: the model answers a model specification as JSON.

Why a second mode: small local models do not follow a long free-form reference (they
invent functions, forget imports, write prose into rates), but a server that constrains
sampling to a JSON Schema makes every answer well-formed JSON with the right fields and
choices. What is left to go wrong is meaning (a flow from a state that does not exist, a
prior whose range is reversed, an unknown function), and that the host can check field by
field (:mod:`agent.structured.spec`) and say back precisely.

How it differs from the free-form proposer it extends (transport, logging, usage, the
context window and the prompts' data summary are shared):

* One call per candidate, each answering one specification: the schema is one object,
  and a small model asked for several in one answer writes the first and stops.
* No follow-up inside a request. An answer that fails validation becomes a *candidate
  that is rejected before it runs* (``details["rejected"]``: the issues with their field
  paths), so the search records it as a failed node with its reason, the trajectory keeps
  the raw answer, and the next repair quotes the issues: the same loop, the same budgets.
* A valid specification is rendered into a module (``mechanistic.to_source``) that goes
  through the sandbox, checks and fit like any other; the spec travels in
  ``details["spec"]`` for the repair and refinement prompts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.core import Candidate, Critique, Feedback, Task
from agent.extract import ANSWER_JSON_LIMITS, candidate_id, extract_json
from agent.llm import LLMProposer, Message, _training_summary, render_critique, render_feedback
from agent.structured.schema import INTERVENTION_SCHEMA, SPEC_SCHEMA
from agent.structured.spec import SpecIssue, build_spec, render_issues
from mechanistic.errors import UntrustedDataError
from mechanistic.untrusted import parse_json

__all__ = ["StructuredLLMProposer", "read_answer"]

MAX_KEPT_ANSWER = 20_000   # characters of a rejected answer kept in the candidate


def read_answer(answer: str) -> tuple[Any | None, list[SpecIssue]]:
    """The JSON of an answer under limits, or the issue that says why there is none.

    A schema-constrained answer is the JSON itself; a provider without constraints may
    wrap it in prose or a fence, which :func:`agent.extract.extract_json` finds. A cut-off
    answer (the usual failure of a small model at its token limit) is named as such."""
    text = answer.strip()
    if not text:
        return None, [SpecIssue("(answer)", "the answer was empty; reply with the JSON "
                                            "object of the specification")]
    try:
        return parse_json(text, "the answer", ANSWER_JSON_LIMITS), []
    except UntrustedDataError as exc:
        first = str(exc)
    value, problem = extract_json(text)
    if isinstance(value, Mapping):
        return value, []
    if text.startswith("{") and text.count("{") > text.count("}"):
        return None, [SpecIssue("(answer)", f"the JSON is cut off after {len(text)} "
                                            "characters (unclosed braces); write a shorter "
                                            "specification")]
    return None, [SpecIssue("(answer)", f"not a JSON object: {first[:300]}"
                                        + (f" ({problem})" if problem else ""))]


def _intervention_items(value: Any) -> Any:
    """A schema-shaped what-if answer as :mod:`mechanistic.interventions` reads it: nulls
    for fields a kind does not have dropped (``end`` null stays: "until the end")."""
    if not isinstance(value, Mapping) or not isinstance(value.get("interventions"), list):
        return value
    items = []
    for item in value["interventions"]:
        if isinstance(item, Mapping):
            keep = {"end"} | ({"target"} if item.get("kind") == "transfer" else set())
            item = {k: v for k, v in item.items() if v is not None or k in keep}
        items.append(item)
    return {"interventions": items, **({"unmappable": value["unmappable"]}
                                        if value.get("unmappable") else {})}


class StructuredLLMProposer(LLMProposer):
    """Asks for model specifications under :data:`SPEC_SCHEMA` and renders them."""

    intervention_schema = INTERVENTION_SCHEMA

    def _intervention_value(self, value: Any) -> Any:
        return _intervention_items(value)

    def _start(self, prompt: str) -> list[Message]:
        return [("system", self.prompts.render("structured_system")), ("user", prompt)]

    # ---------------------------------------------------------------------- protocol
    def propose(self, task: Task, n: int) -> list[Candidate]:
        out: list[Candidate] = []
        for _ in range(max(0, n)):
            labels = list(dict.fromkeys([*self._proposed, *(c.structure for c in out)]))
            avoid = ("\nMechanisms already proposed (describe a different one): "
                     + "; ".join(labels) + "\n") if labels else ""
            prompt = self.prompts.render(
                "structured_propose", description=task.description.strip(),
                time_unit=task.time_unit, data_summary=_training_summary(task, True),
                columns=", ".join(task.data.columns), avoid=avoid)
            out.append(self._ask_spec(task, self._start(prompt), "propose", "propose"))
        self._proposed.extend(c.structure for c in out if "rejected" not in c.details)
        return out

    def repair(self, task: Task, candidate: Candidate, feedback: Feedback) -> Candidate | None:
        error = feedback.error
        if error is not None and error.kind == "answer":
            text = ("The host rejected the specification before running it:\n"
                    + error.message)
        else:
            text = render_feedback(feedback, candidate.source)
        prompt = self.prompts.render(
            "structured_repair", description=task.description.strip(),
            time_unit=task.time_unit, columns=", ".join(task.data.columns),
            structure=candidate.structure, spec=_spec_text(candidate),
            feedback_kind=feedback.kind, feedback=text)
        first = (feedback.message or feedback.kind).strip().splitlines()
        note = f"repair of {feedback.kind}: {first[0][:160] if first else ''}"
        return self._ask_spec(task, self._start(prompt), "repair", "repair",
                              parent=candidate.id, note=note)

    def refine(self, task: Task, candidate: Candidate, critique: Critique,
               n: int) -> list[Candidate]:
        prompt = self.prompts.render(
            "structured_refine", description=task.description.strip(),
            time_unit=task.time_unit, columns=", ".join(task.data.columns),
            data_summary=_training_summary(task, True), structure=candidate.structure,
            spec=_spec_text(candidate), critique=render_critique(critique))
        return [self._ask_spec(task, self._start(prompt), "refine", "refine",
                               parent=candidate.id, note="structured refinement")
                for _ in range(max(0, n))]

    # ------------------------------------------------------------------------ helpers
    def _ask_spec(self, task: Task, messages: list[Message], purpose: str, origin: str,
                  parent: str | None = None, note: str = "") -> Candidate:
        """One call; the rendered module, or a rejected candidate carrying the issues."""
        answer = self._call(messages, purpose, 0, response_format=SPEC_SCHEMA)
        value, issues = read_answer(answer)
        built = None
        if value is not None:
            built = build_spec(value, list(task.data.columns), task.input_names,
                               task.time_unit)
            issues = built.issues
        if built is not None and not issues and built.model is not None:
            spec = json.dumps(value, indent=1, sort_keys=False)
            return Candidate(id=candidate_id(built.source), source=built.source,
                             structure=built.structure, origin=origin, parent=parent,
                             note=note, proposer=self.name,
                             details={"mode": "structured", "spec": spec})
        structure = built.structure if built is not None else "unusable answer"
        reason = render_issues(issues)
        source = ("# structure: " + structure + "\n# The answer was not a valid model "
                  "specification; nothing of it was run. The host found:\n"
                  + "\n".join("# " + line for line in reason.splitlines()) + "\n")
        return Candidate(id=candidate_id(source + answer), source=source, structure=structure,
                         origin=origin, parent=parent, note=note or "rejected answer",
                         proposer=self.name,
                         details={"mode": "structured", "rejected": reason,
                                  "answer": answer[:MAX_KEPT_ANSWER]})


def _spec_text(candidate: Candidate) -> str:
    """The specification a repair or refinement starts from: the JSON it was rendered
    from, the raw answer that was rejected, or (a candidate of another proposer, or one
    read back from a run folder without its details) its module source."""
    details = candidate.details or {}
    for key in ("spec", "answer"):
        value = details.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return "(written as a module)\n" + candidate.source
