"""The structured channel: JSON specifications validated with field paths, rendered into
modules that the sandbox runs, and the repair prompt that quotes what was wrong.

The truth the tests check against is independent of the code under test: a module
written by hand (tests/decay_models.py) whose model JSON the rendered module must equal,
the decay data's known rate (k = 0.2), and the exact names planted in wrong answers.
"""

from __future__ import annotations

import copy
import json

import pytest
from decay_models import DECAY_SOURCE, decay_task

from agent.core import Candidate, Feedback
from agent.loop import Search, SearchConfig
from agent.scripted import ScriptedChatModel
from agent.store import RunStore
from agent.structured.exprtext import ExprTextError, parse_expression
from agent.structured.proposer import StructuredLLMProposer, read_answer
from agent.structured.schema import SPEC_SCHEMA
from agent.structured.spec import build_spec
from mechanistic.fit import FitConfig
from sandbox.runner import ModuleError, run_model_module

FAST_FIT = FitConfig(starts=2, adam_steps=80, lbfgs_steps=20, polish_starts=1)

DECAY_SPEC = {
    "structure": "first-order decay",
    "states": [{"name": "x", "initial": "x0"}],
    "inputs": [],
    "parameters": [{"name": "k", "prior": "LogUniform", "lower": 0.01, "upper": 2.0},
                   {"name": "x0", "prior": "LogUniform", "lower": 1.0, "upper": 1000.0},
                   {"name": "s", "prior": "LogUniform", "lower": 0.01, "upper": 1.0}],
    "flows": [{"name": "loss", "from": "x", "to": None, "rate": "k * x"}],
    "rates": [],
    "observables": [{"column": "x", "expression": "x", "noise": "LogNormal",
                     "noise_parameter": "s"}],
}


def wrong_spec() -> dict:
    """Schema-valid (every field of the right type, every enum a choice) but wrong in
    meaning three ways: a flow from a state that does not exist, a prior whose lower
    bound is above its upper one, and a rate calling a function the language lacks."""
    spec = copy.deepcopy(DECAY_SPEC)
    spec["flows"][0]["from"] = "y"
    spec["parameters"][0].update(lower=5.0, upper=0.5)
    spec["flows"].append({"name": "clearance", "from": "x", "to": None,
                          "rate": "k * softplus(x)"})
    return spec


# ----------------------------------------------------------------------- the validator
def test_a_valid_spec_renders_the_hand_written_module(sandbox):
    built = build_spec(DECAY_SPEC, ["x"], time_unit="day")
    assert built.issues == [] and built.model is not None
    mine = run_model_module(built.source, "simulator.py", sandbox)
    theirs = run_model_module(DECAY_SOURCE, "simulator.py", sandbox)
    assert mine.ok and theirs.ok
    def undocumented(text: str) -> dict:   # the spec has no docs; the module one
        model = json.loads(text)
        for key in ("states", "params", "observables"):
            for item in model[key]:
                item.pop("doc", None)
        return model

    mine_json, theirs_json = undocumented(mine.model_json), undocumented(theirs.model_json)
    for key in ("states", "params", "flows", "init", "observables"):
        assert mine_json[key] == theirs_json[key], key


def test_semantic_errors_are_issues_with_field_paths():
    issues = {i.path: i.message for i in build_spec(wrong_spec(), ["x"]).issues}
    assert "'y' is not a declared state" in issues["flows[0].from"]
    assert "lower (5) must be below upper (0.5)" in issues["parameters[0].prior"]
    assert "unknown function 'softplus'" in issues["flows[1].rate"]


@pytest.mark.parametrize(("change", "path", "words"), [
    ({"observables": [{"column": "y", "expression": "x", "noise": "Gaussian",
                       "noise_parameter": "s"}]}, "observables[0].column", "not a data column"),
    ({"flows": [{"name": "loss", "from": "x", "to": None, "rate": "the loss of x"}]},
     "flows[0].rate", "not an expression"),
    ({"states": [{"name": "x", "initial": "x0"}, {"name": "x", "initial": "1"}]},
     "states[1].name", "already declared"),
    ({"parameters": [{"name": "k", "prior": "Beta", "lower": 0.1, "upper": 1}]},
     "parameters[0].prior", "must be one of"),
])
def test_more_semantic_errors(change, path, words):
    spec = {**copy.deepcopy(DECAY_SPEC), **change}
    issues = {i.path: i.message for i in build_spec(spec, ["x"]).issues}
    assert words in issues.get(path, ""), issues


def test_an_unused_parameter_is_an_issue():
    spec = copy.deepcopy(DECAY_SPEC)
    spec["parameters"].append({"name": "extra", "prior": "Uniform", "lower": 0, "upper": 1})
    [issue] = build_spec(spec, ["x"]).issues
    assert issue.path == "parameters[3].name" and "never used" in issue.message


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "x.__class__", "lambda: 1", "[x for x in y]",
    "x ^ 2", "9 ** 9 ** 9", "x ** 1000", "'k' * 3", "(" * 30 + "x" + ")" * 30,
    "x" + " + x" * 200, "open('f')", "exp(x, y)", "k if x else 1", "x < 1",
])
def test_hostile_expressions_are_refused_without_evaluation(text):
    with pytest.raises(ExprTextError):
        parse_expression(text, {"x", "k"}, "rate")


def test_expressions_are_the_language_s():
    e = parse_expression("Max(0, k * x / (1 + x)) - exp(-t) + Piecewise((1, t < 5), (0, True))",
                         {"x", "k"}, "rate")
    assert {s.name for s in e.free_symbols} == {"x", "k", "t"}
    assert float(parse_expression("2 ** 3 / 4", set(), "n")) == 2.0


def test_answers_that_are_not_json():
    assert read_answer('{"structure": "x", "states": [')[1][0].message.startswith(
        "the JSON is cut off")
    assert "not a JSON object" in read_answer("I think a logistic model")[1][0].message
    value, issues = read_answer('Sure:\n```json\n{"structure": "a"}\n```')
    assert value == {"structure": "a"} and issues == []


# ------------------------------------------------------------------------- the search
def run_search(answers, sandbox, tmp_path, **config):
    chat = ScriptedChatModel([json.dumps(a) if isinstance(a, dict) else a for a in answers])
    store = RunStore(tmp_path / "run")
    proposer = StructuredLLMProposer(chat, log=store.trajectory)
    result = Search(decay_task(), proposer, SearchConfig(fit=FAST_FIT, **config),
                    sandbox=sandbox, log=store.trajectory, on_node=store.save_node).run()
    return result, chat, store


def test_wrong_answer_is_a_failed_node_and_the_repair_prompt_quotes_each_issue(
        sandbox, tmp_path):
    result, chat, store = run_search([wrong_spec(), DECAY_SPEC], sandbox, tmp_path,
                                     initial=1, max_nodes=2, expand=False)
    first, fixed = sorted(result.nodes, key=lambda n: n.repairs)
    assert first.status == "invalid" and first.error.kind == "answer"
    repair_prompt = chat.prompts[1][-1]["content"]
    assert "- flows[0].from: 'y' is not a declared state" in repair_prompt
    assert "- parameters[0].prior: lower (5) must be below upper (0.5)" in repair_prompt
    assert "- flows[1].rate: unknown function 'softplus'" in repair_prompt
    assert '"softplus' not in first.candidate.source.split("\n", 1)[0]
    # the repaired spec is a module like any other: run, checked, fitted to the truth
    assert fixed.ok and fixed.candidate.origin == "repair"
    assert abs(fixed.fit_result.params["k"] - 0.2) < 0.03
    events = [json.loads(line) for line in (store.root / "trajectory.jsonl").open()]
    calls = [e for e in events if e["kind"] == "llm_call"]
    assert calls[0]["answer"] == json.dumps(wrong_spec())        # the raw answer is kept
    assert calls[0]["response_format"] == "json_schema"


def test_a_cut_off_answer_is_a_failed_node_and_the_search_goes_on(sandbox, tmp_path):
    text = json.dumps(DECAY_SPEC)
    result, _, _ = run_search([text[:120], text[:150], DECAY_SPEC], sandbox, tmp_path, initial=1,
                              max_nodes=3, max_repairs=2, expand=False)
    statuses = [n.status for n in sorted(result.nodes, key=lambda n: n.repairs)]
    assert statuses == ["invalid", "invalid", "ok"]
    assert "cut off" in sorted(result.nodes, key=lambda n: n.repairs)[0].error.message


def test_the_schema_is_sent_as_response_format():
    captured: list[dict] = []

    class Recording(ScriptedChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            captured.append(kwargs)
            return super()._generate(messages, stop, run_manager, **kwargs)

    proposer = StructuredLLMProposer(Recording([json.dumps(DECAY_SPEC)]))
    [cand] = proposer.propose(decay_task(), 1)
    assert cand.details["mode"] == "structured" and "rejected" not in cand.details
    rf = captured[0]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == SPEC_SCHEMA
    assert rf["json_schema"]["strict"] is True


def test_repair_after_a_fit_failure_shows_the_spec_and_the_error():
    chat = ScriptedChatModel([json.dumps(DECAY_SPEC)])
    proposer = StructuredLLMProposer(chat)
    parent = Candidate("abc", DECAY_SOURCE, "decay", details={"spec": json.dumps(DECAY_SPEC)})
    error = ModuleError.host("fit", "NonFinite", "the fit found no finite likelihood")
    proposer.repair(decay_task(), parent, Feedback("fit", "fitting failed", error=error))
    prompt = chat.prompts[0][-1]["content"]
    assert '"first-order decay"' in prompt and "no finite likelihood" in prompt


def test_what_if_answers_under_the_intervention_schema(sandbox):
    from mechanistic.interventions import Scale, Transfer
    from mechanistic.serialize import model_from_json

    built = build_spec(DECAY_SPEC, ["x"])
    model_json = model_from_json(built.model.to_json()).to_json()
    answer = {"interventions": [
        {"kind": "scale", "target": "k", "factor": 0.5, "start": 5, "end": None,
         "state": None, "source": None},
        {"kind": "transfer", "source": "x", "target": None, "rate": 0.1, "start": 8}],
        "unmappable": None}
    chat = ScriptedChatModel([json.dumps(answer), json.dumps({"interventions": [],
                                                              "unmappable": "no such thing"})])
    proposer = StructuredLLMProposer(chat)
    cand = Candidate("abc", built.source, "decay")
    scale, transfer = proposer.intervention(decay_task(), cand, model_json, "halve k at 5")
    assert isinstance(scale, Scale) and scale.factor == 0.5 and scale.end == float("inf")
    assert isinstance(transfer, Transfer) and transfer.target is None
    with pytest.raises(ValueError, match="no such thing"):
        proposer.intervention(decay_task(), cand, model_json, "paint it blue")
