"""The offline library proposer: the :class:`~agent.core.Proposer` protocol without an LLM.

Candidates are rendered motif specs; the spec rides along in the module as a JSON comment,
so repair and refine work on any candidate this proposer wrote, in this process or in a
run being resumed. Everything is deterministic; ``seed`` only breaks ties between motifs
that score equally, so two seeds can explore different (equally plausible) structures.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from agent.core import Candidate, Critique, Feedback, Task, Usage
from agent.library.counterfactual import infer_roles, translate_question
from agent.library.profile import DataProfile
from agent.library.refine import refinements
from agent.library.repair import repair_spec
from agent.library.select import select_motifs
from agent.library.spec import ModelSpec, spec_from_source
from mechanistic.errors import ModelError
from mechanistic.interventions import Intervention, validate_interventions

__all__ = ["LibraryProposer"]


def _candidate(spec: ModelSpec, origin: str, parent: str | None, note: str) -> Candidate:
    source = spec.render()
    digest = hashlib.sha1(source.encode()).hexdigest()[:8]
    slug = spec.motif.lower().replace(" ", "-")
    return Candidate(id=f"lib-{slug}-{digest}", source=source, structure=spec.structure,
                     origin=origin, parent=parent, note=note, roles=spec.role_map,
                     proposer="library")


@dataclass
class LibraryProposer:
    """Textbook motifs, atomic refinements, rule-based repairs; ``usage`` stays zero."""

    seed: int = 0
    exclude: tuple[str, ...] = ()    # motif names left out (leave-one-motif-out)
    name: str = "library"
    usage: Usage = field(default_factory=Usage)
    last_summary: str = ""           # what the last what-if question was understood as

    def propose(self, task: Task, n: int) -> list[Candidate]:
        """Supported motifs; a motif of a domain the words do not support only when no
        supported motif can explain the columns."""
        supported, unsupported = self.propose_split(task, n)
        return supported if supported else unsupported

    def propose_split(self, task: Task, n: int) -> tuple[list[Candidate], list[Candidate]]:
        """Up to ``n`` candidates, split by whether the words support their motif."""
        profile = DataProfile.from_task(task)
        out: tuple[list[Candidate], list[Candidate]] = ([], [])
        for choice in select_motifs(profile, n, self.seed, self.exclude):
            spec = choice.motif.build(profile, choice.columns)
            why = "; ".join(choice.reasons) or "no words of its domain in the description"
            out[0 if choice.supported else 1].append(_candidate(
                spec, "propose", None, f"{choice.motif.title} (score {choice.score:.2f}: {why})"))
        return out

    def repair(self, task: Task, candidate: Candidate, feedback: Feedback) -> Candidate | None:
        spec = spec_from_source(candidate.source)
        if spec is None:
            return None
        result = repair_spec(spec, feedback)
        if result is None:
            return None
        new, note = result
        fixed = _candidate(new, "repair", candidate.id, note)
        return None if fixed.source == candidate.source else fixed

    def refine(self, task: Task, candidate: Candidate, critique: Critique,
               n: int) -> list[Candidate]:
        spec = spec_from_source(candidate.source)
        if spec is None:
            return []
        text = critique.message + " " + json.dumps(dict(critique.residuals), default=str)
        return [_candidate(r.spec, "refine", candidate.id, r.note)
                for r in refinements(spec, text, task.description)[:max(n, 0)]]

    def intervention(self, task: Task, candidate: Candidate, model_json: str,
                     question: str) -> list[Intervention]:
        from mechanistic.serialize import model_from_json

        try:
            model = model_from_json(model_json) if model_json else None
        except ModelError as exc:
            raise ValueError(f"cannot read the candidate's model: {exc}") from None
        roles = dict(candidate.roles)
        spec = spec_from_source(candidate.source)
        if not roles and spec is not None:
            roles = spec.role_map
        if not roles and model is not None:
            roles = infer_roles(model.state_names, model.param_names, model.control_names)
        unit = model.time_unit if model is not None else (spec.time_unit if spec else
                                                            task.time_unit)
        controls = set(model.control_names) if model is not None else set()
        inputs = {i.name: i.doc for i in task.inputs if i.name in controls}
        unused = [i.name for i in task.inputs if i.name not in controls]
        try:
            answer = translate_question(question, roles, unit, inputs=inputs,
                                        horizon=float(task.data.t[-1]))
        except ValueError as exc:
            named = [n for n in unused if n.lower().replace("_", " ") in question.lower()]
            if named:
                raise ValueError(f"{question!r} changes the known input(s) {named}, which "
                                 f"this candidate ({candidate.structure}) does not use: it "
                                 f"assumes they have no effect") from None
            raise exc from None
        if answer["replaces_regimen"]:
            raise ValueError(
                f"{question!r} replaces the study's dosing regimen, but this candidate "
                f"({candidate.structure}) has that regimen built into its equations, so it "
                f"cannot be swapped for another; give the new regimen as an intervention "
                f"file (--intervention) on a candidate without built-in doses")
        items = list(answer["interventions"])
        self.last_summary = str(answer["summary"])
        if model is not None:
            try:
                validate_interventions(model, items)
            except ModelError as exc:
                raise ValueError(str(exc)) from None
        return items
