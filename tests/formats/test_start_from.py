"""``mmw model --start-from MODEL.xml``: the imported model is the search's first candidate,
as model-language source that the sandbox turns back into the same model."""

from __future__ import annotations

import sympy as sp
from literature_sbml import LITERATURE

from agent.core import Candidate, Task, Usage
from agent.start_from import START_FROM, StartFromProposer
from mechanistic.data import ObservedData
from mechanistic.formats.sbml_in import sbml_to_model
from mechanistic.serialize import model_from_json
from sandbox.runner import run_model_module


class _Inner:
    name = "library"

    def __init__(self) -> None:
        self.usage = Usage()
        self.asked: list[int] = []
        self.notes = ["inner note"]

    def propose(self, task, n):
        self.asked.append(n)
        return [Candidate(f"lib{i}", "x = 1\n", "motif") for i in range(n)]

    def repair(self, task, candidate, feedback):
        return Candidate("fixed", "x = 1\n", "motif", origin="repair")

    def refine(self, task, candidate, critique, n):
        return [Candidate("child", "x = 1\n", "motif", origin="refine")]

    def intervention(self, task, candidate, model_json, question):
        raise ValueError("cannot map")


def _task() -> Task:
    import numpy as np

    return Task("toggle", ObservedData(np.arange(5.0), {"u": np.ones(5)}), train_until=3.0)


def test_the_imported_model_is_proposed_first_then_the_inner_proposer_continues():
    model = sbml_to_model(LITERATURE["Gardner toggle switch with inducer"]()).model
    inner = _Inner()
    proposer = StartFromProposer(inner, model, "toggle.xml")
    first = proposer.propose(_task(), 3)
    assert [c.proposer for c in first] == [START_FROM, "", ""] and inner.asked == [2]
    assert first[0].note == "imported from toggle.xml"
    assert [c.id for c in proposer.propose(_task(), 2)] == ["lib0", "lib1"]
    assert proposer.repair(_task(), first[0], None) is None
    assert proposer.refine(_task(), first[0], None, 2) == []
    assert proposer.repair(_task(), first[1], None).id == "fixed"
    assert proposer.name == "library" and proposer.notes == ["inner note"]


def test_the_candidate_source_runs_in_the_sandbox_to_the_same_model(sandbox):
    model = sbml_to_model(LITERATURE["SIR with a closure event"]()).model
    candidate = StartFromProposer(_Inner(), model).propose(_task(), 1)[0]
    result = run_model_module(candidate.source, "model.py", sandbox)
    assert result.ok, result.error
    rebuilt = model_from_json(result.model_json)
    # The same system (the module's Python arithmetic evaluates what the import left
    # unevaluated, so the trees may differ in form, not in value).
    assert rebuilt.state_names == model.state_names
    assert rebuilt.param_names == model.param_names
    for state, rhs in model.rhs().items():
        assert sp.simplify(rebuilt.rhs()[state] - rhs) == 0
    assert sp.simplify(rebuilt.observables_["N"].expr - model.observables_["N"].expr) == 0
