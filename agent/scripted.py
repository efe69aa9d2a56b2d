"""A deterministic chat model that replays scripted answers (tests, demos, offline runs).

It is a real langchain ``BaseChatModel``, so the LLM proposer runs the same code path as
with a provider: messages in, an ``AIMessage`` with token usage out. It records every
prompt it was sent, so a test can assert on what the proposer showed the model (the
traceback, the numbered source line), the way mini-swe-agent ships a deterministic model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr

__all__ = ["ScriptExhausted", "ScriptedChatModel", "fake_tokens", "message_dicts"]

Answer = str | Callable[[list[dict[str, str]]], str]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class ScriptExhausted(RuntimeError):
    """The script ran out of answers: the test asked the model more often than it planned."""


def fake_tokens(text: str) -> int:
    """A stand-in tokenizer (about four characters a token), deterministic and cheap."""
    return max(1, (len(text) + 3) // 4)


def message_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Messages as OpenAI-style ``{"role", "content"}`` dicts (for logs and assertions)."""
    out = []
    for message in messages:
        content = message.content
        if not isinstance(content, str):
            content = "".join(part.get("text", "") if isinstance(part, dict) else str(part)
                              for part in content)
        out.append({"role": _ROLES.get(message.type, message.type), "content": content})
    return out


class ScriptedChatModel(BaseChatModel):
    """Replays ``answers`` in order; an answer may be a callable of the prompt messages.

    When the script is exhausted it answers ``when_exhausted`` if given, else raises
    :class:`ScriptExhausted`. ``prompts`` holds every prompt as a list of role/content
    dicts, in call order.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    answers: list[Any]
    when_exhausted: str | None = None
    model_name: str = "scripted"

    _cursor: int = PrivateAttr(default=0)
    _prompts: list[list[dict[str, str]]] = PrivateAttr(default_factory=list)

    def __init__(self, answers: Sequence[Answer], when_exhausted: str | None = None,
                 model_name: str = "scripted") -> None:
        super().__init__(answers=list(answers), when_exhausted=when_exhausted,
                         model_name=model_name)

    @property
    def _llm_type(self) -> str:
        return "mmw-scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    @property
    def prompts(self) -> list[list[dict[str, str]]]:
        return list(self._prompts)

    @property
    def calls(self) -> int:
        return len(self._prompts)

    @property
    def remaining(self) -> int:
        return max(0, len(self.answers) - self._cursor)

    def _next_answer(self, prompt: list[dict[str, str]]) -> str:
        if self._cursor < len(self.answers):
            answer = self.answers[self._cursor]
            self._cursor += 1
        elif self.when_exhausted is not None:
            answer = self.when_exhausted
        else:
            raise ScriptExhausted(
                f"the scripted model has no answer for call {len(self._prompts)} "
                f"(script has {len(self.answers)}); last prompt ends: "
                f"{prompt[-1]['content'][-200:]!r}"
            )
        return answer(prompt) if callable(answer) else str(answer)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        prompt = message_dicts(messages)
        self._prompts.append(prompt)
        text = self._next_answer(prompt)
        prompt_tokens = sum(fake_tokens(m["content"]) for m in prompt)
        completion_tokens = fake_tokens(text)
        usage = {"input_tokens": prompt_tokens, "output_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        message = AIMessage(
            content=text, usage_metadata=usage,
            response_metadata={"model_name": self.model_name, "token_usage": {
                "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
