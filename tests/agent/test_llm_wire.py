"""The --base-url path over a real socket: LLMProposer -> langchain ChatOpenAI -> the openai
client -> HTTP -> a loopback server speaking the chat-completions protocol."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from agent.core import Candidate, Feedback, Task
from agent.llm import ChatSettings, LLMCallError, LLMProposer
from agent.openai_stub import serve_openai_stub
from mechanistic.data import ObservedData
from sandbox.runner import Frame, ModuleError

MODULE = """# structure: logistic growth
from mechanistic import Gaussian, LogUniform, Model

m = Model("logistic", time_unit="day")
N = m.state("N")
r = m.param("r", LogUniform(0.01, 2.0))
K = m.param("K", LogUniform(10, 1e4))
s = m.param("s", LogUniform(0.01, 100))
m.flow(None, N, r * N * (1 - N / K), name="growth")
m.init(N=5)
m.observe("count", N, noise=Gaussian(s))
"""


@pytest.fixture
def task() -> Task:
    t = np.arange(20.0)
    data = ObservedData(t, {"count": 1000 / (1 + 199 * np.exp(-0.5 * t))}, time_name="day")
    return Task("A yeast culture grows in a flask with limited sugar.", data, train_until=14,
                time_unit="day")


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_propose_over_the_wire(task):
    events: list[dict] = []
    answer = f"A logistic model:\n```python\n{MODULE}```\n"
    with serve_openai_stub([answer]) as (url, server):
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        proposer = LLMProposer.from_base_url(url, "test-model", log=events.append)
        [cand] = proposer.propose(task, 2)
    assert cand.source == MODULE and cand.structure == "logistic growth"

    [request] = server.requests
    assert request["path"] == "/v1/chat/completions"
    body = request["body"]
    assert body["model"] == "test-model"
    assert body.get("stream") in (None, False)
    assert "seed" not in body                 # unset settings stay unset
    # the answer cap under both names: llama.cpp's server reads only max_tokens
    assert body["max_tokens"] == body["max_completion_tokens"] == ChatSettings().max_tokens
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user"]
    assert all(isinstance(m["content"], str) and m["content"] for m in body["messages"])
    assert "m.flow(" in body["messages"][0]["content"]
    assert "yeast culture" in body["messages"][1]["content"]
    assert request["headers"]["content-type"].startswith("application/json")
    assert request["headers"]["authorization"].startswith("Bearer ")

    # the server's token counts are what the proposer accounts and logs
    [call] = server.calls
    assert (proposer.usage.llm_calls, proposer.usage.prompt_tokens,
            proposer.usage.completion_tokens) == (1, call.prompt_tokens, call.completion_tokens)
    assert events[0]["prompt_tokens"] == call.prompt_tokens
    assert events[0]["completion_tokens"] == call.completion_tokens
    assert events[0]["answer"] == answer
    assert events[0]["model"] == f"test-model@{url}"


def test_follow_up_and_repair_over_the_wire(task, monkeypatch):
    monkeypatch.setenv("MMW_STUB_KEY", "sk-from-env")
    answers = ["Let me think about it.", f"```python\n{MODULE}```",
               f"Fixed:\n```python\n{MODULE.replace('m.init(N=5)', 'm.init(N=6)')}```"]
    with serve_openai_stub(answers) as (url, server):
        proposer = LLMProposer.from_base_url(url, "test-model", api_key_env="MMW_STUB_KEY",
                                             settings=ChatSettings(temperature=0.0, seed=7))
        [cand] = proposer.propose(task, 1)
        error = ModuleError("exception", "ValueError", "bad init",
                            (Frame(lineno=10, name="<module>", line="m.init(N=5)"),))
        fixed = proposer.repair(task, cand, Feedback("error", "bad init", error=error))
    assert fixed is not None and "m.init(N=6)" in fixed.source
    bodies = [r["body"] for r in server.requests]
    assert [m["role"] for m in bodies[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert bodies[1]["messages"][2]["content"] == "Let me think about it."
    assert "The error points at line 10:\n    m.init(N=5)" in bodies[2]["messages"][1]["content"]
    assert bodies[0]["temperature"] == 0.0
    assert bodies[0]["seed"] == 7
    assert bodies[0]["max_tokens"] == ChatSettings().max_tokens
    assert all(r["headers"]["authorization"] == "Bearer sk-from-env" for r in server.requests)
    assert proposer.usage.llm_calls == 3
    assert proposer.usage.tokens == server.prompt_tokens + server.completion_tokens


def test_intervention_over_the_wire(task):
    namespace: dict = {}
    exec(compile(MODULE, "m.py", "exec"), namespace)
    answer = '```json\n[{"kind": "scale", "target": "K", "factor": 0.5, "start": 10}]\n```'
    with serve_openai_stub([answer]) as (url, _):
        proposer = LLMProposer.from_base_url(url, "test-model")
        [item] = proposer.intervention(task, Candidate("a", MODULE, "logistic"),
                                       namespace["m"].to_json(), "halve the sugar at day 10")
    assert (item.kind, item.target, item.factor, item.start) == ("scale", "K", 0.5, 10.0)


def test_an_exhausted_server_is_a_call_error_not_a_hang(task):
    with serve_openai_stub([]) as (url, server):
        proposer = LLMProposer.from_base_url(url, "test-model")
        with pytest.raises(LLMCallError, match="no scripted answer left"):
            proposer.propose(task, 1)
    assert server.calls == [] and len(server.bad_requests) == 1   # a 400 is not retried


def post(url: str, payload: object) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_stub_speaks_the_protocol():
    with serve_openai_stub(["hello", lambda body: f"echo {body['messages'][-1]['content']}"]) \
            as (url, server):
        status, reply = post(f"{url}/chat/completions",
                             {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert status == 200
        assert reply["object"] == "chat.completion"
        assert reply["choices"][0]["message"] == {"role": "assistant", "content": "hello"}
        assert reply["usage"]["total_tokens"] == (reply["usage"]["prompt_tokens"]
                                                  + reply["usage"]["completion_tokens"])
        status, reply = post(f"{url}/chat/completions",
                             {"model": "m", "messages": [{"role": "user", "content": "yo"}]})
        assert reply["choices"][0]["message"]["content"] == "echo yo"
        for bad in ({"messages": [{"role": "user", "content": "x"}]},
                    {"model": "m", "messages": []},
                    {"model": "m", "messages": [{"role": "wizard", "content": "x"}]},
                    {"model": "m", "messages": [{"role": "user", "content": "x"}],
                     "stream": True}):
            status, reply = post(f"{url}/chat/completions", bad)
            assert status == 400 and reply["error"]["message"]
        status, _ = post(f"{url}/embeddings", {"model": "m"})
        assert status == 404
        with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
            assert json.loads(response.read())["data"][0]["id"] == "test-model"
    assert len(server.calls) == 2


def test_a_capped_answer_is_capped_under_both_names(task):
    """A window that leaves less room than max_tokens caps the answer; the cap goes out as
    max_completion_tokens (langchain-openai's name) and max_tokens (llama.cpp's server
    reads only that one and otherwise answers up to its window)."""
    events: list[dict] = []
    with serve_openai_stub(["no code"]) as (url, server):
        proposer = LLMProposer.from_base_url(
            url, "test-model", log=events.append, max_followups=0,
            settings=ChatSettings(context_window=2200, max_tokens=8192))
        proposer.propose(task, 1)
    [request] = server.requests
    cap = events[0]["answer_cap"]
    assert cap < 8192
    assert request["body"]["max_tokens"] == request["body"]["max_completion_tokens"] == cap
