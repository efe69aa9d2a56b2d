"""The bench agents on tiny tasks: each returns a well-formed outcome, failures as data,
and the llm agent runs over the OpenAI protocol against the loopback stub."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_tasks import DECAY_MODULE, FAST, decay_task, pk_task

from agent.openai_stub import serve_openai_stub
from evals.agents import (
    AgentOutcome,
    Budget,
    LLMSettings,
    agent_names,
    applicable,
    make_agent,
)
from evals.metrics import score
from mechanistic.fit import FitConfig


@pytest.fixture(scope="module")
def decay():
    return decay_task()


@pytest.fixture(scope="module")
def pk():
    return pk_task()


def check_shape(out: AgentOutcome, task) -> None:
    assert len(out.counterfactuals) == len(task.counterfactuals) == len(out.interventions)
    if out.forecast is not None:
        assert set(out.forecast) == set(task.observed)
        for values in out.forecast.values():
            assert values.shape == task.times.shape
    out.to_dict()


# ------------------------------------------------------------------------ config
def test_budget_validates_and_round_trips():
    budget = Budget(max_seconds=12.0, max_nodes=3,
                    fit=FitConfig(starts=2, adam_steps=10, lbfgs_steps=5, polish_starts=1))
    assert Budget.from_dict(budget.to_dict()) == budget
    assert Budget.from_dict({}) == Budget()
    with pytest.raises(ValueError, match="max_nodes"):
        Budget(max_nodes=0)
    with pytest.raises(ValueError, match="max_seconds"):
        Budget(max_seconds=-1.0)
    with pytest.raises(ValueError, match="unknown"):
        Budget.from_dict({"max_node": 3})


def test_make_agent_refuses_unknown_names_and_an_unconfigured_llm():
    with pytest.raises(ValueError, match="unknown agent 'gpt'"):
        make_agent("gpt")
    with pytest.raises(ValueError, match="needs a chat model"):
        make_agent("llm")
    with pytest.raises(ValueError, match="provider:model"):
        make_agent("llm", {"model": "gpt-4o"})
    assert make_agent("llm", {"model": "m", "base_url": "http://127.0.0.1:9/v1"}).name == "llm"
    with pytest.raises(ValueError, match="MMW_NO_SUCH_KEY"):
        make_agent("llm", {"model": "m", "base_url": "https://api.example.com/v1",
                           "api_key_env": "MMW_NO_SUCH_KEY"})
    assert LLMSettings.from_dict(LLMSettings("openai:gpt-4o").to_dict()).model == "openai:gpt-4o"
    local = {"model": "m", "base_url": "http://127.0.0.1:9/v1"}
    assert make_agent("llm-structured", local).name == "llm-structured"
    for name in agent_names():
        if name not in ("llm", "llm-structured"):   # these two need a chat model
            assert make_agent(name).name == name


def test_applicable_needs_a_truth_for_the_oracle_and_a_wrong_model_for_wrong(decay, pk):
    assert applicable("oracle", decay) and not applicable("wrong", decay)
    assert applicable("wrong", pk) and applicable("neural", pk)
    with pytest.raises(ValueError):
        applicable("nobody", pk)


def test_an_invalid_outcome_must_say_why():
    with pytest.raises(ValueError, match="reason"):
        AgentOutcome("x", False, "", None, 0, 0, 0, 0, 0, 0.0, None, (), (), {})


# ------------------------------------------------------------------------ agents
def test_oracle_recovers_the_truth_on_a_tiny_task(decay, tmp_path):
    out = make_agent("oracle").run(decay, 0, FAST, None, tmp_path)
    assert out.valid, out.reason
    check_shape(out, decay)
    assert out.params["elimination_rate"] == pytest.approx(0.1, rel=0.1)
    assert out.interventions[0] == [{"kind": "scale", "target": "k", "factor": 0.5,
                                     "start": 30.0, "end": None}]
    m = score(decay, 0, out)["metrics"]
    assert m["cf_error"] < 0.2 and m["forecast_nrmse_truth"] < 0.2


def test_neural_is_seeded_and_answers_only_through_its_inputs(pk, tmp_path):
    agent = make_agent("neural")
    a = agent.run(pk, 0, FAST, None, tmp_path)
    assert a.valid, a.reason
    check_shape(a, pk)
    assert a.detail["channels"] == ["dose:depot"]
    assert a.detail["cf_handles"][0] == "inputs changed"
    assert a.detail["cf_handles"][1].startswith("no input channel")
    np.testing.assert_array_equal(a.counterfactuals[1]["conc"], a.forecast["conc"])
    before = pk.times < 54.0
    np.testing.assert_array_equal(a.counterfactuals[0]["conc"][before],
                                  a.forecast["conc"][before])
    assert not np.allclose(a.counterfactuals[0]["conc"][~before], a.forecast["conc"][~before])
    b = agent.run(pk, 0, FAST, None, tmp_path)
    np.testing.assert_array_equal(a.forecast["conc"], b.forecast["conc"])
    assert a.params == {} and a.nodes == 1


def test_search_baselines_respect_their_breadth(decay, tmp_path):
    tiny = Budget(max_seconds=60.0, max_nodes=2,
                  fit=FitConfig(starts=1, adam_steps=30, lbfgs_steps=5, polish_starts=1))
    zero = make_agent("zero-shot").run(decay, 0, tiny, None, tmp_path / "z")
    assert zero.valid, zero.reason
    assert zero.nodes == 1 and zero.repairs == 0
    check_shape(zero, decay)
    assert "expansion off" in zero.detail["stop_reason"]
    library = make_agent("library").run(decay, 0, tiny, None, tmp_path / "l")
    assert library.valid and library.nodes == tiny.max_nodes
    # the library cannot map this question onto a PK motif: a result, not a crash
    assert library.counterfactuals[0] is None and library.detail["cf_problems"][0]
    assert (tmp_path / "l" / "trajectory.jsonl").is_file()


def test_llm_agent_runs_over_the_openai_protocol(decay, tmp_path, monkeypatch):
    monkeypatch.setenv("MMW_TEST_KEY", "test-key")

    def answer(body):
        last = body["messages"][-1]["content"]
        if "# The question" in last:
            return '```json\n[{"kind": "scale", "target": "k", "factor": 0.5, "start": 30}]\n```'
        return f"```python\n{DECAY_MODULE}```"

    with serve_openai_stub([answer] * 20) as (url, server):
        settings = LLMSettings(model="test-model", base_url=url, api_key_env="MMW_TEST_KEY")
        out = make_agent("llm", settings).run(decay, 0, FAST, None, tmp_path)
        served = server.prompt_tokens + server.completion_tokens
        calls = len(server.calls)
    assert out.valid, out.reason
    assert out.structure == "first-order washout"
    assert out.llm_calls == calls and out.tokens == served > 0
    assert out.interventions[0][0]["target"] == "k"
    m = score(decay, 0, out)["metrics"]
    assert m["cf_error"] < 0.2 and m["tokens"] == served


def test_an_agent_without_a_valid_simulator_fails_as_data(decay, tmp_path):
    broken = "```python\nfrom mechanistic import Model\nm = Model('x'\n```"
    with serve_openai_stub([], when_exhausted=broken) as (url, _):
        out = make_agent("llm", LLMSettings(model="m", base_url=url)).run(
            decay, 0, FAST, None, tmp_path)
    assert not out.valid and "no valid simulator" in out.reason
    assert out.forecast is None and out.counterfactuals == (None,)
    assert out.nodes >= 1 and out.valid_nodes == 0 and out.llm_calls >= 2
    assert score(decay, 0, out)["metrics"]["valid"] is False


def test_an_unreachable_llm_is_a_failed_outcome(decay, tmp_path):
    settings = LLMSettings(model="m", base_url="http://127.0.0.1:9/v1", timeout_s=2.0,
                           max_retries=0)
    out = make_agent("llm", settings).run(decay, 0, Budget(max_nodes=1), None, tmp_path)
    assert not out.valid and "LLMCallError" in out.reason


def test_baseline_search_configs():
    from evals.agents import _full_search, _repair_only, _zero_shot

    budget = Budget(max_seconds=30.0, max_nodes=5)
    full, zero, repair = (f(budget, 4) for f in (_full_search, _zero_shot, _repair_only))
    assert full.expand and full.initial == 3 and full.max_nodes == 5 and full.seed == 4
    assert full.max_seconds == 30.0 and full.fit == budget.fit
    assert (zero.initial, zero.max_nodes, zero.max_repairs, zero.expand) == (1, 1, 0, False)
    assert (repair.initial, repair.max_nodes, repair.max_repairs, repair.expand) == \
        (1, 3, 2, False)


def test_an_llm_that_dies_mid_search_keeps_the_best_node_so_far(decay, tmp_path):
    with serve_openai_stub([f"```python\n{DECAY_MODULE}```"]) as (url, _):
        settings = LLMSettings(model="m", base_url=url, max_retries=0)
        out = make_agent("llm", settings).run(decay, 0, FAST, None, tmp_path)
    assert out.valid, out.reason
    assert out.detail["stop_reason"].startswith("search failed: LLMCallError")
    assert out.forecast is not None and out.counterfactuals == (None,)
    assert "LLMCallError" in out.detail["cf_problems"][0]
