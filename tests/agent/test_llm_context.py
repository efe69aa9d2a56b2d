"""Prompts inside the context window: examples dropped first, the answer capped, a prompt
that cannot fit refused loudly, and a window learned from a server's refusal."""

from __future__ import annotations

import pytest
from decay_models import decay_task

from agent.llm import LLMCallError, LLMProposer, PromptSet
from agent.llm_context import drop_examples, estimate_tokens, window_from_error
from agent.scripted import ScriptedChatModel

SYSTEM = PromptSet().render("system")


def test_drop_examples_keeps_the_reference_and_code_comments():
    text = "# Intro\nkeep\n# Worked examples\n```python\n# structure: x\nm = 1\n```\n" \
           "# Answer format\nalso keep\n"
    assert drop_examples(text) == "# Intro\nkeep\n# Answer format\nalso keep"
    short = drop_examples(SYSTEM)
    assert "# Worked examples" not in short and "SEIR with under-reporting" not in short
    assert "# The model language" in short and "# Answer format" in short
    assert len(short) < 0.7 * len(SYSTEM)


@pytest.mark.parametrize(("message", "window"), [
    ("Requested tokens (2890) exceed context window of 2048", 2048),
    ("This model's maximum context length is 4096 tokens. However, you requested 5000", 4096),
    ("the request exceeds the available context size, n_ctx = 8192", 8192),
    ("rate limit reached, retry in 20 s", None),
    ("Connection refused", None),
])
def test_window_from_error(message, window):
    assert window_from_error(message) == window


def test_a_known_window_drops_examples_and_caps_the_answer():
    chat = ScriptedChatModel(["no code"])
    events: list[dict] = []
    proposer = LLMProposer(chat, log=events.append, max_followups=0, context_window=2200,
                           answer_tokens=8192)
    proposer.propose(decay_task(), 1)
    sent = chat.prompts[0][0]["content"]
    assert "# Worked examples" not in sent and "# The model language" in sent
    size = estimate_tokens([m["content"] for m in chat.prompts[0]])
    assert events[0]["examples_dropped"] is True
    assert events[0]["answer_cap"] == 2200 - size            # what the window leaves


def test_a_roomy_window_sends_everything():
    chat = ScriptedChatModel(["no code"])
    proposer = LLMProposer(chat, max_followups=0, context_window=32_000, answer_tokens=1000)
    proposer.propose(decay_task(), 1)
    assert "# Worked examples" in chat.prompts[0][0]["content"]


def test_a_window_too_small_even_without_examples_is_refused_before_calling():
    chat = ScriptedChatModel(["unused"])
    proposer = LLMProposer(chat, context_window=600)
    with pytest.raises(LLMCallError, match="context window of 600"):
        proposer.propose(decay_task(), 1)
    assert chat.calls == 0
