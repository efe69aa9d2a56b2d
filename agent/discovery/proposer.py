"""The discovery proposer: candidates identified from the data, with no motif behind them.

Where the library proposer starts from a textbook structure and the LLM from the words,
this one starts from the observations: sparse regression over a library of mechanistic
terms (see :mod:`agent.discovery.identify`) selects a rate law per observed column, and the
few best whole systems are rendered as library specs with priors centred on the identified
values. It makes no LLM calls. When nothing can be identified it proposes nothing and says
why in ``last_reason``; the search combines proposers, so an empty list is an answer.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field, replace

import numpy as np

from agent.core import Candidate, Critique, Feedback, Task, Usage
from agent.discovery.identify import Identification, identify
from agent.discovery.render import render_structure
from agent.library.spec import ModelSpec, spec_from_source
from mechanistic.interventions import Intervention

__all__ = ["DiscoveryProposer"]

_FIT_WORDS = ("non-finite", "diverge", "nan", "overflow", "blew up", "blow-up", "unstable",
              "stiff", "step size", "poor", "failed")


def _candidate(spec: ModelSpec, origin: str, parent: str | None, note: str,
               slug: str) -> Candidate:
    source = spec.render()
    digest = hashlib.sha1(source.encode()).hexdigest()[:8]
    return Candidate(id=f"disc-{slug}-{digest}", source=source, structure=spec.structure,
                     origin=origin, parent=parent, note=note, roles=spec.role_map,
                     proposer="discovery")


@dataclass
class DiscoveryProposer:
    """Sparse identification of each observed column's rate law; ``usage`` stays zero.

    ``seed`` seeds the bootstrap that measures term stability. ``last_reason`` says why the
    last ``propose`` returned nothing ("" when it returned candidates);
    ``last_identification`` keeps what was identified, for inspection.
    """

    seed: int = 0
    name: str = "discovery"
    usage: Usage = field(default_factory=Usage)
    last_reason: str = ""
    last_identification: Identification | None = None

    def propose(self, task: Task, n: int) -> list[Candidate]:
        self.last_reason = ""
        if n <= 0:
            return []
        try:
            ident = identify(task, seed=self.seed, max_structures=max(n, 1))
        except (ValueError, FloatingPointError, ArithmeticError, np.linalg.LinAlgError) as exc:
            ident = Identification((), f"identification failed: {exc}")
        self.last_identification = ident
        if not ident.ok:
            self.last_reason = ident.reason or "nothing was identified"
            return []
        out: list[Candidate] = []
        for s in ident.structures[:n]:
            spec = render_structure(task, ident, s)
            lines = s.describe()
            fit = ", ".join(f"{c}: {v:.0%}" for c, v in s.r2.items())
            sim = (f"; simulated from the first row it explains {s.path_r2:.0%} of the "
                   f"training variance" if s.path_r2 is not None and s.path_r2 > -1e9
                   else "; it could not be simulated from the first row")
            if s.bounded is False and s.path_r2 is not None and s.path_r2 > 0:
                sim += ("; it diverges with a known input held at a level the data show "
                        "(ranked last)")
            lines += [d.describe() for d in ident.derived]
            note = (f"discovered ({s.label}, {ident.method} form; path reconstructed "
                    f"{fit}{sim}): " + "; ".join(lines))
            slug = s.label.split()[0]
            cand = _candidate(spec, "propose", None, note, slug)
            cand = replace(cand, structure=f"discovered: {s.n_terms} terms"
                           + ("" if s.label == "best" else f" ({s.label})"))
            if all(c.source != cand.source for c in out):
                out.append(cand)
        return out

    def repair(self, task: Task, candidate: Candidate, feedback: Feedback) -> Candidate | None:
        """Fit failures: narrow every dynamic parameter's prior to half its log-width (the
        identified values are the centres, so the multi-start stays near them). Checks
        and errors go to the library's rules, which read the embedded spec."""
        spec = spec_from_source(candidate.source)
        if spec is None:
            return None
        if feedback.kind == "fit":
            text = feedback.message.lower()
            if not any(w in text for w in _FIT_WORDS):
                return None
            params = tuple(p if p.name.startswith(("sd_", "phi_"))
                           else replace(p, prior=p.prior.narrowed(0.5)) for p in spec.params)
            if params == spec.params:
                return None
            new = replace(spec, params=params).with_edit("narrowed priors")
            note = "narrowed the priors of the dynamic parameters by half around the " \
                   "identified values"
        else:
            from agent.library.repair import repair_spec

            result = repair_spec(spec, feedback)
            if result is None:
                return None
            new, note = result
        fixed = _candidate(new, "repair", candidate.id, note, "repair")
        return None if fixed.source == candidate.source else fixed

    def refine(self, task: Task, candidate: Candidate, critique: Critique,
               n: int) -> list[Candidate]:
        return []

    def intervention(self, task: Task, candidate: Candidate, model_json: str,
                     question: str) -> list[Intervention]:
        from agent.library.counterfactual import translate

        roles = dict(candidate.roles)
        spec = spec_from_source(candidate.source)
        if not roles and spec is not None:
            roles = spec.role_map
        unit = spec.time_unit if spec is not None else task.time_unit
        if "inputs" in inspect.signature(translate).parameters:
            inputs = {i.name: (i.doc or f"known input {i.name}") for i in task.inputs}
            return translate(question, roles, unit, inputs=inputs)
        return translate(question, roles, unit)

