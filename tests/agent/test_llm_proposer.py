"""The LLM proposer driven by the scripted chat model: prompts, follow-ups, repair,
refinement, interventions, usage accounting and the trajectory events."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.core import Candidate, Critique, Feedback, Proposer, Task
from agent.extract import candidate_id, code_blocks
from agent.llm import ChatSettings, LLMCallError, LLMProposer, PromptSet
from agent.scripted import ScriptedChatModel, fake_tokens
from mechanistic.data import ObservedData
from mechanistic.interventions import SetValue, Transfer
from sandbox.runner import ModuleError

ROOT = Path(__file__).resolve().parents[2]
SEIR = (ROOT / "examples/models/seir.py").read_text()
SIR = """# structure: SIR with reporting
from mechanistic import LogUniform, Model, NegBinomial, Uniform

m = Model("SIR", time_unit="day")
S, I, R = m.states("S I R")
beta = m.param("beta", LogUniform(0.05, 3.0))
gamma = m.param("gamma", Uniform(1 / 14, 1 / 3))
rho = m.param("rho", Uniform(0.05, 1.0))
phi = m.param("phi", LogUniform(1, 100))
N = S + I + R
m.flow(S, I, beta * S * I / N, name="infection")
m.flow(I, R, gamma * I, name="recovery")
m.init(S=1e6 - 10, I=10, R=0)
m.observe("cases", rho * gamma * I, noise=NegBinomial(phi))
"""
GARBAGE = "I am sorry, I cannot help with that."
HELD_OUT = 98765.0


def block(code: str) -> str:
    return f"```python\n{code}```\n"


@pytest.fixture
def task() -> Task:
    t = np.arange(30.0)
    cases = np.round(10 * np.exp(0.2 * t))
    cases[25:] = HELD_OUT          # only in the validation window
    cases[3] = np.nan
    data = ObservedData(t, {"cases": cases}, time_name="day")
    return Task("A flu outbreak in a city of one million; daily reported cases.", data,
                train_until=20, validate_until=29, time_unit="day")


def make(answers, **kwargs):
    events: list[dict] = []
    model = ScriptedChatModel(answers)
    return LLMProposer(model, log=events.append, **kwargs), model, events


def user_prompt(model: ScriptedChatModel, call: int = 0) -> str:
    return model.prompts[call][-1]["content"]


# ------------------------------------------------------------------------------ propose
def test_proposer_satisfies_the_protocol():
    proposer, _, _ = make([])
    assert isinstance(proposer, Proposer)
    assert proposer.name == "llm" and proposer.usage.llm_calls == 0


def test_propose_prose_and_code(task):
    proposer, model, events = make(["Here is a classic model.\n" + block(SIR) + "\nHope it fits!"])
    [cand] = proposer.propose(task, 1)
    assert cand.source == SIR
    assert cand.structure == "SIR with reporting"
    assert cand.id == candidate_id(SIR)
    assert (cand.origin, cand.parent, cand.proposer) == ("propose", None, "llm")
    assert model.calls == 1 and len(events) == 1


def test_propose_two_blocks_in_one_call(task):
    proposer, model, _ = make(["Two options:\n" + block(SIR) + "\nor\n" + block(SEIR)])
    cands = proposer.propose(task, 2)
    assert [c.structure for c in cands] == ["SIR with reporting", "SEIR with under-reporting"]
    assert len({c.id for c in cands}) == 2
    assert model.calls == 1
    assert "Write 2 structurally different candidate modules" in user_prompt(model)


def test_propose_returns_at_most_n(task):
    proposer, _, _ = make([block(SIR) + block(SEIR)])
    assert len(proposer.propose(task, 1)) == 1


def test_propose_fewer_than_n_needs_no_follow_up(task):
    proposer, model, _ = make([block(SIR)])
    assert len(proposer.propose(task, 3)) == 1
    assert model.calls == 1


def test_no_code_then_code_on_follow_up(task):
    proposer, model, events = make(["An SIR model would be my choice.", block(SIR)])
    [cand] = proposer.propose(task, 1)
    assert cand.source == SIR
    assert model.calls == 2
    second = model.prompts[1]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == "An SIR model would be my choice."
    assert "no ```python code block" in second[3]["content"]
    assert [e["attempt"] for e in events] == [0, 1]


def test_module_without_model_gets_a_follow_up(task):
    proposer, model, _ = make([block("m.flow(S, I, beta * S * I)\n"), block(SIR)])
    assert len(proposer.propose(task, 1)) == 1
    assert "does not declare a model" in user_prompt(model, 1)


def test_unclosed_fence_is_still_a_candidate(task):
    proposer, model, _ = make(["Here you go:\n```python\n" + SIR])
    [cand] = proposer.propose(task, 1)
    assert cand.source == SIR and model.calls == 1


def test_garbage_only_gives_a_rejected_candidate_and_no_crash(task):
    proposer, model, events = make([GARBAGE] * 5, max_followups=2)
    [rejected] = proposer.propose(task, 3)   # the search records it as a failed node
    assert "no ```python code block" in rejected.details["rejected"]
    assert rejected.details["answer"] == GARBAGE and "Model(" not in rejected.source
    assert model.calls == 3 and model.remaining == 2
    assert proposer.usage.llm_calls == 3 and len(events) == 3


def test_zero_follow_ups(task):
    proposer, model, _ = make([GARBAGE, block(SIR)], max_followups=0)
    [rejected] = proposer.propose(task, 1)
    assert "rejected" in rejected.details and model.calls == 1


def test_propose_prompt_content(task):
    proposer, model, _ = make([block(SIR)])
    proposer.propose(task, 1)
    system, user = model.prompts[0][0]["content"], user_prompt(model)
    assert model.prompts[0][0]["role"] == "system"
    for needle in ("m.flow(", "m.observe(", "LogUniform", "NegBinomial", "Piecewise",
                   "Exactly one `Model`", "Observable names must equal the data columns",
                   "proportional to their source", "# structure:"):
        assert needle in system, needle
    assert task.description in user
    assert "cases" in user and "day" in user
    assert "missing 1/21" in user                 # the training window's summary
    assert "validation window (20, 29]" in user
    assert "98765" not in user and "9.876e+04" not in user   # held-out values never shown
    assert task.objectives in user


def test_a_second_propose_asks_for_new_structures(task):
    proposer, model, _ = make([block(SIR), block(SEIR)])
    proposer.propose(task, 1)
    proposer.propose(task, 1)
    assert "Structures already proposed (write different ones): SIR with reporting" in \
        user_prompt(model, 1)


def test_propose_zero_makes_no_call(task):
    proposer, model, _ = make([])
    assert proposer.propose(task, 0) == []
    assert model.calls == 0


# ------------------------------------------------------------------------------- repair
BROKEN = SIR.replace("m.flow(I, R, gamma * I", "m.flow(I, R, gamma_rate * I")


def module_error(source: str, tmp_path: Path) -> ModuleError:
    """The structured error the sandbox runner reports, produced in-process."""
    from sandbox import _module_runner

    path = tmp_path / "model.py"
    path.write_text(source)
    result = _module_runner.run(str(path))
    assert not result.get("ok")
    return ModuleError.from_dict(result["error"])


def test_repair_prompt_shows_the_traceback_line_and_the_source_line(task, tmp_path):
    error = module_error(BROKEN, tmp_path)
    assert error.type == "NameError"
    lineno = BROKEN.splitlines().index("m.flow(I, R, gamma_rate * I, name=\"recovery\")") + 1
    broken = Candidate(candidate_id(BROKEN), BROKEN, "SIR with reporting")
    proposer, model, events = make(["Fixed the name:\n" + block(SIR)])
    fixed = proposer.repair(task, broken, Feedback("error", error.message, error=error))
    assert fixed is not None and fixed.source == SIR
    assert (fixed.origin, fixed.parent) == ("repair", broken.id)
    assert fixed.note.startswith("repair of error: name 'gamma_rate' is not defined")
    prompt = user_prompt(model)
    assert "NameError: name 'gamma_rate' is not defined" in prompt
    assert f'File "model.py", line {lineno}' in prompt
    assert f"The error points at line {lineno}:\n    m.flow(I, R, gamma_rate * I" in prompt
    assert f"{lineno} | m.flow(I, R, gamma_rate * I" in prompt     # numbered source
    assert events[0]["purpose"] == "repair"


def test_repair_of_a_syntax_error_points_at_the_column(task, tmp_path):
    source = SIR.replace("m.init(S=1e6 - 10, I=10, R=0)", "m.init(S=1e6 - 10, I=10, R=0")
    error = module_error(source, tmp_path)
    assert error.kind == "syntax"
    proposer, model, _ = make([block(SIR)])
    proposer.repair(task, Candidate("x", source, "SIR"), Feedback("error", "", error=error))
    assert "SyntaxError" in user_prompt(model)
    assert "The error points at line" in user_prompt(model)


def test_repair_prompt_lists_failed_checks(task):
    checks = [{"name": "non_negativity", "passed": False, "severity": "error",
               "message": "outflow beta*I from S does not vanish at S = 0"},
              {"name": "state_dynamics", "passed": True, "severity": "error", "message": "ok"}]
    proposer, model, _ = make([block(SIR)])
    cand = Candidate("a", SEIR, "SEIR")
    assert proposer.repair(task, cand, Feedback("checks", "1 check failed", checks=checks))
    prompt = user_prompt(model)
    assert "non_negativity (error): outflow beta*I from S does not vanish at S = 0" in prompt
    assert "state_dynamics" not in prompt


def test_repair_prompt_summarises_residuals(task):
    residuals = {"cases": {"n": 21, "rmse": 12.5, "mae": 9.0, "bias": -4.0, "nrmse": 0.8,
                           "largest": [{"t": 18.0, "observed": 300.0, "predicted": 250.0,
                                        "z": 3.1}]}}
    proposer, model, _ = make([block(SIR)])
    proposer.repair(task, Candidate("a", SEIR, "SEIR"),
                    Feedback("fit", "the fit is poor", residuals=residuals))
    prompt = user_prompt(model)
    assert "cases: n=21, rmse=12.5, nrmse=0.8, bias=-4 (predictions too low on average)" in prompt
    assert "worst at t=18: observed 300, predicted 250" in prompt


def test_repair_that_returns_the_same_code_is_asked_again(task):
    proposer, model, _ = make([block(SEIR), block(SIR)])
    fixed = proposer.repair(task, Candidate("a", SEIR, "SEIR"), Feedback("checks", "bad"))
    assert fixed is not None and fixed.source == SIR
    assert "identical to the one you were given" in user_prompt(model, 1)


def test_repair_with_several_modules_is_asked_for_one(task):
    proposer, model, _ = make([block(SIR) + block(SIR.replace("SIR", "SIR2")), block(SIR)])
    assert proposer.repair(task, Candidate("a", SEIR, "SEIR"), Feedback("checks", "bad"))
    assert "I need exactly one" in user_prompt(model, 1)


def test_repair_gives_up_with_none(task):
    proposer, model, _ = make([GARBAGE] * 3, max_followups=2)
    assert proposer.repair(task, Candidate("a", SEIR, "SEIR"), Feedback("checks", "x")) is None
    assert model.calls == 3


# ------------------------------------------------------------------------------- refine
WANING = SIR.replace("# structure: SIR with reporting",
                     "# structure: SIR with reporting + waning\n# change: immunity wanes")
WANING = WANING.replace('m.init(', 'w = m.param("w", LogUniform(0.001, 0.1))\n'
                                   'm.flow(R, S, w * R, name="waning")\nm.init(')


def test_refine_asks_for_atomic_changes_and_keeps_lineage(task):
    proposer, model, events = make(["Two ideas\n" + block(SIR) + block(WANING) + block(SEIR)])
    parent = Candidate(candidate_id(SIR), SIR, "SIR with reporting")
    critique = Critique("cases are underestimated late in the window",
                        residuals={"cases": {"n": 21, "rmse": 3.0, "bias": -2.0}},
                        validation_error=0.42)
    out = proposer.refine(task, parent, critique, 2)
    assert [c.source for c in out] == [WANING, SEIR]        # the unchanged parent is dropped
    assert out[0].note == "immunity wanes"
    assert all(c.origin == "refine" and c.parent == parent.id for c in out)
    prompt = user_prompt(model)
    assert "Propose 2 different atomic refinements" in prompt
    assert "cases are underestimated late in the window" in prompt
    assert "Validation error (held-out window): 0.42" in prompt
    assert "m.neural(" in prompt and "hidden (latent) compartment" in prompt
    assert events[0]["purpose"] == "refine"


# ------------------------------------------------------------------------- intervention
@pytest.fixture
def seir_json() -> str:
    namespace: dict = {}
    exec(compile(SEIR, "seir.py", "exec"), namespace)
    return namespace["m"].to_json()


def test_intervention_json_is_parsed_and_validated(task, seir_json):
    answer = ('Vaccination moves susceptibles to recovered:\n```json\n'
              '[{"kind": "transfer", "source": "S", "target": "R", "rate": 0.01, "start": 70}]'
              '\n```')
    proposer, model, events = make([answer])
    cand = Candidate(candidate_id(SEIR), SEIR, "SEIR with under-reporting")
    out = proposer.intervention(task, cand, seir_json,
                                "from day 70 on, 1% of susceptibles are vaccinated per day")
    assert out == [Transfer("S", "R", 0.01, start=70.0)]
    prompt = user_prompt(model)
    assert "states: S, E, I, R" in prompt
    assert "beta (transmission rate)" in prompt
    assert "contact_reduction (fraction of contacts avoided)" in prompt
    assert "1% of susceptibles" in prompt
    assert events[0]["purpose"] == "intervention"


def test_intervention_unknown_name_is_re_asked_once(task, seir_json):
    bad = '```json\n[{"kind": "scale", "target": "contact_rate", "factor": 0.5, "start": 30}]\n```'
    good = '[{"kind": "set", "target": "contact_reduction", "value": 0.5, "start": 30}]'
    proposer, model, _ = make([bad, good])
    out = proposer.intervention(task, Candidate("a", SEIR, "SEIR"), seir_json,
                                "halve contacts from day 30")
    assert out == [SetValue("contact_reduction", 0.5, start=30.0)]
    retry = model.prompts[1]
    assert [m["role"] for m in retry][-2:] == ["assistant", "user"]
    assert "'contact_rate' is not a parameter or control" in retry[-1]["content"]


def test_intervention_fails_with_value_error_after_one_re_ask(task, seir_json):
    proposer, model, _ = make(["no idea", '{"kind": "set", "target": "nope", "value": 1}', "x"])
    with pytest.raises(ValueError, match="'nope' is not a parameter or control"):
        proposer.intervention(task, Candidate("a", SEIR, "SEIR"), seir_json, "do something")
    assert model.calls == 2
    assert "no valid JSON" in user_prompt(model, 1)


def test_intervention_unmappable_raises_at_once(task, seir_json):
    proposer, model, _ = make(['{"unmappable": "the model has no age structure"}'])
    with pytest.raises(ValueError, match="no age structure"):
        proposer.intervention(task, Candidate("a", SEIR, "SEIR"), seir_json,
                              "vaccinate the over-65s")
    assert model.calls == 1


def test_intervention_empty_list_is_re_asked(task, seir_json):
    good = '[{"kind": "dose", "state": "I", "amount": 100, "times": [10]}]'
    proposer, _, _ = make(["[]", good])
    [dose] = proposer.intervention(task, Candidate("a", SEIR, "SEIR"), seir_json, "seed 100")
    assert dose.state == "I" and dose.times == (10.0,)


# ------------------------------------------------------------------ usage and the log
def test_usage_and_events_record_every_call(task):
    answers = ["thinking...", block(SIR)]
    proposer, model, events = make(answers)
    proposer.propose(task, 1)
    prompt_tokens = sum(fake_tokens(m["content"]) for p in model.prompts for m in p)
    completion_tokens = sum(fake_tokens(a) for a in answers)
    usage = proposer.usage
    assert (usage.llm_calls, usage.prompt_tokens, usage.completion_tokens) == \
        (2, prompt_tokens, completion_tokens)
    assert usage.seconds >= 0
    assert [e["kind"] for e in events] == ["llm_call", "llm_call"]
    first = events[0]
    assert first["purpose"] == "propose" and first["proposer"] == "llm"
    assert first["messages"] == model.prompts[0]
    assert first["answer"] == "thinking..."
    assert first["prompt_tokens"] + first["completion_tokens"] == first["tokens"] > 0
    assert first["seconds"] >= 0 and first["prompt_version"] == "v1"
    assert sum(e["tokens"] for e in events) == usage.tokens


def test_usage_falls_back_to_response_metadata(task):
    from langchain_core.messages import AIMessage

    class MetaOnly(ScriptedChatModel):
        def invoke(self, messages, *args, **kwargs):
            return AIMessage(content=block(SIR), response_metadata={
                "token_usage": {"prompt_tokens": 111, "completion_tokens": 22}})

    proposer = LLMProposer(MetaOnly([]))
    proposer.propose(task, 1)
    assert (proposer.usage.prompt_tokens, proposer.usage.completion_tokens) == (111, 22)


def test_a_failed_call_raises_llm_call_error_and_is_logged(task):
    proposer, _, events = make([])        # the script is empty: the "provider" fails
    with pytest.raises(LLMCallError, match="propose call"):
        proposer.propose(task, 1)
    assert events[0]["error"].startswith("ScriptExhausted")
    assert proposer.usage.llm_calls == 1 and proposer.usage.tokens == 0


def test_list_content_answers_are_joined(task):
    from langchain_core.messages import AIMessage

    class Blocks(ScriptedChatModel):
        def invoke(self, messages, *args, **kwargs):
            return AIMessage(content=[{"type": "text", "text": "Here:\n"},
                                      {"type": "text", "text": block(SIR)}])

    proposer = LLMProposer(Blocks([]))
    assert len(proposer.propose(task, 1)) == 1


def test_callable_answers_see_the_prompt(task):
    def answer(messages):
        return block(SIR) if "flu outbreak" in messages[-1]["content"] else GARBAGE

    proposer, _, _ = make([answer])
    assert len(proposer.propose(task, 1)) == 1


# -------------------------------------------------------------- prompts and constructors
def test_worked_examples_in_the_system_prompt_are_valid_models():
    from mechanistic import run_checks
    from mechanistic.checks import errors

    system = PromptSet("v1").render("system")
    examples = [b.code for b in code_blocks(system) if "Model(" in b.code and "m.init" in b.code]
    assert len(examples) == 2
    for code in examples:
        namespace: dict = {}
        exec(compile(code, "example.py", "exec"), namespace)
        model = namespace["m"]
        assert errors(run_checks(model)) == [], code.splitlines()[0]
        assert code.startswith("# structure: ")


def test_prompt_templates_are_package_data():
    prompts = PromptSet("v1")
    names = {"system", "propose", "repair", "refine", "intervention", "intervention_retry"}
    for name in names:
        text = prompts._root.joinpath(f"{name}.md").read_text()
        assert text.strip()
        # every placeholder is a $identifier that the proposer fills
        assert not re.search(r"\$(?![A-Za-z_])", text), name
    with pytest.raises(ValueError, match="unknown prompt version"):
        PromptSet("v0")


def test_from_spec_reports_a_bad_spec_as_value_error():
    with pytest.raises(ValueError, match="cannot build a chat model"):
        LLMProposer.from_spec("no-such-provider:some-model")
    with pytest.raises(ValueError):
        LLMProposer.from_spec("  ")


def test_from_spec_builds_a_provider_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    proposer = LLMProposer.from_spec("openai:gpt-4o-mini",
                                     settings=ChatSettings(temperature=0.2, max_tokens=1000))
    assert proposer.model_label == "openai:gpt-4o-mini"
    assert proposer.chat_model.temperature == 0.2


def test_from_base_url_needs_a_key_only_for_remote_servers(monkeypatch):
    monkeypatch.delenv("MMW_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match=r"set \$MMW_TEST_KEY"):
        LLMProposer.from_base_url("https://api.example.com/v1", "m", api_key_env="MMW_TEST_KEY")
    local = LLMProposer.from_base_url("http://localhost:8000/v1", "m", api_key_env="MMW_TEST_KEY")
    assert local.model_label == "m@http://localhost:8000/v1"
    monkeypatch.setenv("MMW_TEST_KEY", "sk-real")
    remote = LLMProposer.from_base_url("https://api.example.com/v1", "m",
                                       api_key_env="MMW_TEST_KEY")
    assert remote.chat_model.openai_api_key.get_secret_value() == "sk-real"
    with pytest.raises(ValueError, match="base URL"):
        LLMProposer.from_base_url("localhost:8000", "m")


def test_settings_are_validated():
    with pytest.raises(ValueError):
        ChatSettings(temperature=3.0)
    with pytest.raises(ValueError):
        LLMProposer(ScriptedChatModel([]), max_followups=-1)


def test_importing_agent_does_not_import_langchain():
    code = ("import sys, agent, agent.core, agent.llm, agent.extract, agent.openai_stub; "
            "print(sorted(m for m in sys.modules if m.startswith(('langchain', 'openai'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
