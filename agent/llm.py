"""The LLM proposer: a langchain chat model writes, repairs and refines DSL modules.

Design choices, and why:

* ``propose(task, n)`` makes **one call asking for n modules** (each its own block). The
  system prompt (DSL reference and examples) dominates the tokens, so one call is far
  cheaper than n, and a model that sees its own alternatives diversifies them. A follow-up
  is sent only when an answer holds no usable module; fewer than n modules are returned
  as they are (the protocol says "up to n"), which keeps the number of calls predictable.
* Extraction never crashes the search: an unusable answer gets a follow-up that says what
  was wrong (at most ``max_followups``), then the proposer gives up on that request
  (``propose``/``refine`` return fewer candidates, ``repair`` returns None).
* Transport failures (no key, server down) are not garbage answers: they raise
  :class:`LLMCallError` so a misconfigured run stops loudly instead of proposing nothing.
* Every call lands in ``usage`` and, when a ``log`` is given, as a ``kind="llm_call"``
  event with the prompt messages, the answer, tokens, latency and purpose.
* langchain is imported inside the methods that need it, so ``import agent`` stays light.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from agent.core import Candidate, Critique, EventSink, Feedback, Task, Usage, summarise_data
from agent.extract import (
    candidate_id,
    comment_field,
    extract_json,
    extract_modules,
    numbered,
    several_modules_problem,
    structure_label,
)
from agent.llm_context import drop_examples, estimate_tokens, served_window, window_from_error
from mechanistic.errors import DataError, ModelError
from mechanistic.interventions import (
    Intervention,
    interventions_from_json,
    validate_interventions,
)
from sandbox.runner import ModuleError

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

__all__ = [
    "ChatSettings",
    "LLMCallError",
    "LLMProposer",
    "PromptSet",
    "render_critique",
    "render_feedback",
]

Message = tuple[str, str]   # (role, content); role is system | user | assistant
_LOCAL_KEY = "sk-local-no-key"
MIN_ANSWER_TOKENS = 256     # less room than this in the context window: refuse the call


class LLMCallError(RuntimeError):
    """The chat model could not be called (network, authentication, quota, exhausted script)."""


@dataclass(frozen=True)
class ChatSettings:
    """Sampling and transport settings for the chat models the constructors build.

    ``None`` leaves a setting at the provider's default (some reasoning models reject a
    temperature). ``max_tokens`` is generous because one answer may hold several modules.
    ``seed`` is sent to OpenAI-compatible endpoints (``from_base_url``), which use it for
    best-effort reproducible sampling; other providers have no common equivalent.
    """

    temperature: float | None = 0.7
    max_tokens: int | None = 8192
    timeout_s: float | None = 180.0
    max_retries: int = 2
    seed: int | None = None
    context_window: int | None = None   # tokens; None: unknown until a server refuses one

    def __post_init__(self) -> None:
        if self.temperature is not None and not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.context_window is not None and self.context_window < 256:
            raise ValueError(f"context_window must be >= 256 tokens, got {self.context_window}")

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_retries": self.max_retries}
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        if self.timeout_s is not None:
            out["timeout"] = self.timeout_s
        return out


class PromptSet:
    """The templates of one prompt version, read from package data (``agent/prompts/vN``)."""

    def __init__(self, version: str = "v1") -> None:
        root = resources.files("agent").joinpath("prompts", version)
        if not root.joinpath("system.md").is_file():
            raise ValueError(f"unknown prompt version {version!r} (no agent/prompts/{version})")
        self.version = version
        self._root = root
        self._cache: dict[str, Template] = {}

    def render(self, name: str, **values: Any) -> str:
        if name not in self._cache:
            text = self._root.joinpath(f"{name}.md").read_text(encoding="utf-8")
            self._cache[name] = Template(text)
        return self._cache[name].substitute({k: str(v) for k, v in values.items()}).strip()


# ----------------------------------------------------------------------------- rendering
def _render_error(error: ModuleError, source: str) -> str:
    """The error as the traceback text, plus the offending source line."""
    parts = [error.render()]
    if not error.frames and error.traceback:
        parts.append(error.traceback[-1500:])
    lineno = error.lineno
    lines = source.splitlines()
    if lineno is not None and 1 <= lineno <= len(lines):
        pointer = f"The error points at line {lineno}:\n    {lines[lineno - 1].strip()}"
        offset = error.frames[-1].offset
        if error.kind == "syntax" and offset is not None and offset > 0:
            stripped = len(lines[lineno - 1]) - len(lines[lineno - 1].lstrip())
            pointer += "\n    " + " " * max(0, offset - 1 - stripped) + "^"
        parts.append(pointer)
    return "\n\n".join(parts)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _render_residuals(residuals: Mapping[str, Any], indent: str = "") -> list[str]:
    """Per-observable misfit summaries (as from mechanistic.fit) as short lines."""
    out: list[str] = []
    for name, summary in residuals.items():
        if isinstance(summary, Mapping) and "rmse" in summary:
            bias = summary.get("bias")
            direction = ""
            if isinstance(bias, int | float) and bias:
                direction = " (predictions too high on average)" if bias > 0 else \
                    " (predictions too low on average)"
            stats = ", ".join(f"{k}={_fmt(summary[k])}" for k in ("n", "rmse", "nrmse", "bias")
                              if k in summary)
            out.append(f"{indent}- {name}: {stats}{direction}")
            for miss in list(summary.get("largest") or ())[:3]:
                if isinstance(miss, Mapping):
                    out.append(f"{indent}    worst at t={_fmt(miss.get('t'))}: observed "
                               f"{_fmt(miss.get('observed'))}, predicted "
                               f"{_fmt(miss.get('predicted'))}")
        elif isinstance(summary, Mapping):
            out.append(f"{indent}- {name}:")
            out.extend(_render_residuals(summary, indent + "  "))
        else:
            out.append(f"{indent}- {name}: {json.dumps(summary, default=str)}")
    return out


def render_feedback(feedback: Feedback, source: str) -> str:
    """What went wrong, as prompt text: traceback with the offending line, failed checks,
    or the residual summary."""
    parts: list[str] = []
    error_text = _render_error(feedback.error, source) if feedback.error else ""
    if feedback.message and feedback.message.strip() not in error_text:
        parts.append(feedback.message.strip())
    if error_text:
        parts.append(error_text)
    failed = [c for c in feedback.checks if not c.get("passed", False)]
    if failed:
        parts.append("Failed structural checks:\n" + "\n".join(
            f"- {c.get('name', 'check')} ({c.get('severity', 'error')}): {c.get('message', '')}"
            for c in failed))
    if feedback.residuals:
        parts.append("Fit residuals by observable:\n"
                     + "\n".join(_render_residuals(feedback.residuals)))
    return "\n\n".join(parts) or feedback.kind


def render_critique(critique: Critique) -> str:
    parts = [critique.message.strip()]
    if critique.validation_error is not None:
        parts.append(f"Validation error (held-out window): {critique.validation_error:.4g}")
    if critique.residuals:
        parts.append("Residuals by observable:\n"
                     + "\n".join(_render_residuals(critique.residuals)))
    return "\n\n".join(p for p in parts if p)


def _training_summary(task: Task, structured: bool = False) -> str:
    """The data as the model may see it: the training window only (no peeking at the
    validation rows that will score its candidates). ``structured``: known inputs are
    declared in the specification's "inputs", not with ``m.control``."""
    try:
        train, _ = task.data.split(task.train_until)
    except DataError:
        train = task.data
    text = summarise_data(train, task.train_until)
    if task.validate_until is not None:
        text += (f"\nvalidation window ({task.train_until:g}, {task.validate_until:g}] is held "
                 f"out for scoring")
    for series in task.inputs:
        changes = series.schedule()
        steps = ", ".join(f"{v:.4g} from t={t:g}" if math.isfinite(t) else f"{v:.4g}"
                          for t, v in list(zip(changes.times, changes.values,
                                               strict=True))[:12])
        how = (f'list it in "inputs" as {series.name!r} and use it in the rates it drives; '
               f"it is not an observable") if structured else (
            f"Declare it with m.control({series.name!r}, default=...) and use it in the "
            f"rates it drives; never m.observe it")
        text += (f"\nknown input {series.name!r} ({series.doc or 'set by the experimenter'};"
                 f" {series.interpolation} between samples): {steps}. {how}")
    return text


def _is_local(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    if host in ("localhost", "") or host.endswith(".local"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(part.get("text", "") if isinstance(part, Mapping) else str(part)
                       for part in content)
    return str(content)


def _refuses_json_schema(message: str) -> bool:
    """Whether a refusal is a server that does not know ``"type": "json_schema"``."""
    text = message.lower()
    return "json_object" in text or ("response_format" in text and any(
        word in text for word in ("json_schema", "literal", "input should", "unsupported",
                                  "not supported", "invalid")))


def _strict_ok(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes ``schema``: every object lists all its
    properties as required and allows no others (optional fields need strict off)."""
    if isinstance(schema, Mapping):
        if schema.get("type") == "object" and (
                schema.get("additionalProperties") is not False
                or set(schema.get("required", ())) != set(schema.get("properties", {}))):
            return False
        return all(_strict_ok(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_strict_ok(v) for v in schema)
    return True


def _token_counts(response: Any) -> tuple[int, int]:
    usage = getattr(response, "usage_metadata", None) or {}
    prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
    if prompt is None or completion is None:
        meta = getattr(response, "response_metadata", None) or {}
        counts = meta.get("token_usage") or meta.get("usage") or {}
        prompt = counts.get("prompt_tokens", counts.get("input_tokens", 0))
        completion = counts.get("completion_tokens", counts.get("output_tokens", 0))
    return int(prompt or 0), int(completion or 0)


# ------------------------------------------------------------------------------ proposer
class LLMProposer:
    """Writes, repairs and refines simulator modules with any langchain chat model."""

    def __init__(self, chat_model: BaseChatModel, *, name: str = "llm",
                 log: EventSink | None = None, max_followups: int = 2,
                 prompt_version: str = "v1", context_window: int | None = None,
                 answer_tokens: int | None = None) -> None:
        if max_followups < 0:
            raise ValueError(f"max_followups must be >= 0, got {max_followups}")
        self.chat_model = chat_model
        self.name = name
        self.log = log
        self.max_followups = max_followups
        self.prompts = PromptSet(prompt_version)
        self.usage = Usage()
        self.model_label = str(getattr(chat_model, "model_name", None)
                               or getattr(chat_model, "model", None) or type(chat_model).__name__)
        self._proposed: list[str] = []   # structure labels so far, to ask for new ones
        # The model's context window in tokens (a setting, or learned from a refusal) and
        # the answer length the chat model was built with: together they bound the prompt.
        self.context_window = context_window
        self.answer_tokens = answer_tokens
        self._last_answer, self._last_problem = "", ""
        # How a JSON Schema is sent: OpenAI's {"type": "json_schema", ...} (OpenAI, vLLM,
        # Ollama, llama.cpp's llama-server), or {"type": "json_object", "schema": ...}, the
        # only form llama-cpp-python's server takes; switched once when a server refuses
        # the first.
        self.schema_flavour = "json_schema"
        # langchain-openai sends the answer cap as ``max_completion_tokens`` (OpenAI's
        # current name); llama.cpp's and other compatible servers read only the older
        # ``max_tokens`` and would answer up to their window. Base-URL models send both.
        self.cap_in_body = False

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_spec(cls, spec: str, *, settings: ChatSettings | None = None, name: str = "llm",
                  log: EventSink | None = None, max_followups: int = 2,
                  prompt_version: str = "v1") -> LLMProposer:
        """A chat model from ``provider:model`` (e.g. ``openai:gpt-4o``,
        ``anthropic:claude-sonnet-4-5``, ``ollama:qwen2.5-coder``) via ``init_chat_model``."""
        if not spec or not spec.strip():
            raise ValueError("an LLM spec looks like 'provider:model', e.g. 'openai:gpt-4o'")
        try:
            from langchain.chat_models import init_chat_model
        except ImportError as exc:
            raise ValueError("the LLM agent needs langchain: pip install langchain") from exc
        settings = settings or ChatSettings()
        try:
            model = init_chat_model(spec, **settings.kwargs())
        except Exception as exc:  # provider packages raise many types for a bad spec or key
            raise ValueError(f"cannot build a chat model from {spec!r}: "
                             f"{type(exc).__name__}: {exc}") from exc
        proposer = cls(model, name=name, log=log, max_followups=max_followups,
                       prompt_version=prompt_version, context_window=settings.context_window,
                       answer_tokens=settings.max_tokens)
        proposer.model_label = spec
        return proposer

    @classmethod
    def from_base_url(cls, url: str, model: str, api_key_env: str = "OPENAI_API_KEY", *,
                      settings: ChatSettings | None = None, name: str = "llm",
                      log: EventSink | None = None, max_followups: int = 2,
                      prompt_version: str = "v1") -> LLMProposer:
        """Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, a gateway).

        The key comes from ``$api_key_env``; local and private-network servers usually
        need none, so a placeholder is sent there when the variable is unset.
        """
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base URL must look like http://host:port/v1, got {url!r}")
        key = os.environ.get(api_key_env) or (_LOCAL_KEY if _is_local(url) else None)
        if key is None:
            raise ValueError(f"set ${api_key_env} to the API key for {url} (a key may be "
                             f"omitted only for local or private-network servers)")
        try:
            from langchain_openai import ChatOpenAI
        except ImportError as exc:
            raise ValueError("the LLM agent needs langchain-openai: "
                             "pip install langchain-openai") from exc
        settings = settings or ChatSettings()
        if settings.context_window is None:   # vLLM and others say it in /models
            window = served_window(url, model, key)
            if window is not None:
                settings = replace(settings, context_window=window)
        body = {"max_tokens": settings.max_tokens} if settings.max_tokens else None
        chat = ChatOpenAI(model=model, base_url=url, api_key=key, seed=settings.seed,
                          extra_body=body, **settings.kwargs())
        proposer = cls(chat, name=name, log=log, max_followups=max_followups,
                       prompt_version=prompt_version, context_window=settings.context_window,
                       answer_tokens=settings.max_tokens)
        proposer.model_label = f"{model}@{url}"
        proposer.cap_in_body = True
        return proposer

    # ---------------------------------------------------------------------- protocol
    def propose(self, task: Task, n: int) -> list[Candidate]:
        if n < 1:
            return []
        avoid = ""
        if self._proposed:
            avoid = ("\nStructures already proposed (write different ones): "
                     + "; ".join(dict.fromkeys(self._proposed)) + "\n")
        prompt = self.prompts.render(
            "propose", description=task.description.strip(), time_unit=task.time_unit,
            data_summary=_training_summary(task), columns=", ".join(task.data.columns),
            objectives=task.objectives, avoid=avoid, n=n)
        modules = self._ask_modules(self._start(prompt), "propose")
        out = [self._candidate(code, "propose") for code in modules[:n]]
        self._proposed.extend(c.structure for c in out)
        if not out:   # nothing usable after the follow-ups: a failed node that says why
            out = [self._rejected("propose")]
        return out

    def repair(self, task: Task, candidate: Candidate, feedback: Feedback) -> Candidate | None:
        prompt = self.prompts.render(
            "repair", description=task.description.strip(), time_unit=task.time_unit,
            columns=", ".join(task.data.columns), structure=candidate.structure,
            numbered_source=numbered(candidate.source), feedback_kind=feedback.kind,
            feedback=render_feedback(feedback, candidate.source))
        modules = self._ask_modules(self._start(prompt), "repair", single=True,
                                    exclude={candidate.source})
        if not modules:
            return None
        first_line = (feedback.message or feedback.kind).strip().splitlines()
        note = f"repair of {feedback.kind}: {first_line[0][:160] if first_line else ''}"
        return self._candidate(modules[0], "repair", parent=candidate.id, note=note)

    def refine(self, task: Task, candidate: Candidate, critique: Critique,
               n: int) -> list[Candidate]:
        if n < 1:
            return []
        prompt = self.prompts.render(
            "refine", description=task.description.strip(), time_unit=task.time_unit,
            columns=", ".join(task.data.columns), data_summary=_training_summary(task),
            structure=candidate.structure, source=candidate.source.rstrip(),
            critique=render_critique(critique), n=n)
        modules = self._ask_modules(self._start(prompt), "refine",
                                    exclude={candidate.source})
        return [self._candidate(code, "refine", parent=candidate.id,
                                note=comment_field(code, "change") or "")
                for code in modules[:n]]

    def intervention(self, task: Task, candidate: Candidate, model_json: str,
                     question: str) -> list[Intervention]:
        from mechanistic.serialize import model_from_json

        model = model_from_json(model_json)

        def names(items: Mapping[str, Any]) -> str:
            return ", ".join(f"{k} ({v.doc})" if getattr(v, "doc", "") else k
                             for k, v in items.items()) or "(none)"

        prompt = self.prompts.render(
            "intervention", description=task.description.strip(), time_unit=task.time_unit,
            t_first=f"{float(task.data.t[0]):g}", t_last=f"{float(task.data.t[-1]):g}",
            structure=candidate.structure, source=candidate.source.rstrip(),
            states=names(model.states_), params=names(model.params_),
            controls=names(model.controls_), question=question.strip())
        messages = self._start(prompt)
        problem = ""
        for attempt in range(2):   # the answer, then one re-ask with the validation error
            answer = self._call(messages, "intervention", attempt,
                                response_format=self.intervention_schema)
            value, problem_text = extract_json(answer)
            problem = problem_text or ""
            if value is not None:
                value = self._intervention_value(value)
                if isinstance(value, Mapping) and value.get("unmappable"):
                    raise ValueError(f"the question cannot be expressed on "
                                     f"{candidate.structure!r}: {value['unmappable']}")
                try:
                    items = interventions_from_json(value)
                    if not items:
                        raise ModelError("the list is empty; give at least one intervention")
                    validate_interventions(model, items)
                    return items
                except (ModelError, TypeError, ValueError) as exc:
                    problem = str(exc)
            messages = [*messages, ("assistant", answer),
                        ("user", self.prompts.render("intervention_retry", error=problem))]
        raise ValueError(f"could not translate the question into interventions on "
                         f"{candidate.structure!r}: {problem}")

    # ------------------------------------------------------------------------ helpers
    intervention_schema: Mapping[str, Any] | None = None
    """A JSON Schema for what-if answers (the structured channel sets one)."""

    def _intervention_value(self, value: Any) -> Any:
        """A what-if answer's JSON before it is read as interventions (a hook)."""
        return value

    def _start(self, prompt: str) -> list[Message]:
        return [("system", self.prompts.render("system")), ("user", prompt)]

    def _candidate(self, code: str, origin: str, parent: str | None = None,
                   note: str = "") -> Candidate:
        return Candidate(id=candidate_id(code), source=code, structure=structure_label(code),
                         origin=origin, parent=parent, note=note, proposer=self.name)

    def _rejected(self, origin: str) -> Candidate:
        """A candidate that is not a module: the last answer's problem, for the search to
        record as a failed node (``details["rejected"]``, never run), the answer kept."""
        problem, answer = self._last_problem or "no usable answer", self._last_answer
        source = ("# structure: unusable answer\n# The answer held no usable module; nothing "
                  "of it was run:\n" + "\n".join(f"# {line}" for line in problem.splitlines())
                  + "\n")
        return Candidate(id=candidate_id(source + answer), source=source,
                         structure="unusable answer", origin=origin, note="rejected answer",
                         proposer=self.name,
                         details={"rejected": problem, "answer": answer[:20_000]})

    def _ask_modules(self, messages: list[Message], purpose: str, single: bool = False,
                     exclude: set[str] | None = None) -> list[str]:
        """Ask, then follow up on unusable answers; [] once the follow-ups are spent
        (the last answer and its problem are kept for :meth:`_rejected`).

        ``single``: exactly one module is wanted (a repair); several are then ambiguous.
        """
        exclude = {code.strip() for code in exclude or ()}
        for attempt in range(self.max_followups + 1):
            answer = self._call(messages, purpose, attempt)
            self._last_answer = answer
            found = extract_modules(answer)
            modules = [m for m in found.modules if m.strip() not in exclude]
            if single and len(modules) > 1:
                problem = several_modules_problem(len(modules))
            elif modules:
                return modules
            elif found.modules:
                problem = ("Your module is identical to the one you were given; it would fail "
                           "the same way. Change what the feedback points at and send the "
                           "complete module in one ```python block.")
            else:
                problem = found.problem
            self._last_problem = problem or ""
            messages = [*messages, ("assistant", answer), ("user", problem or "")]
        return []

    def _call(self, messages: list[Message], purpose: str, attempt: int = 0,
              response_format: Mapping[str, Any] | None = None) -> str:
        """One chat call, logged; the answer's text.

        ``response_format`` is a JSON Schema the answer must follow (the structured
        channel, :mod:`agent.structured`). The prompt is fitted to the context window
        first (:meth:`_fit_context`); a server that refuses it and names its window is
        believed, and the call is made once more, shortened to that window."""
        for retry in range(3):
            sent, cap, shortened = self._fit_context(messages)
            try:
                return self._call_once(sent, purpose, attempt, response_format, cap,
                                       shortened)
            except LLMCallError as exc:
                if retry == 2:
                    raise
                window = window_from_error(str(exc))
                if window is not None and window != self.context_window:
                    self.context_window = window
                elif response_format is not None and self.schema_flavour == "json_schema" \
                        and _refuses_json_schema(str(exc)):
                    self.schema_flavour = "json_object"
                else:
                    raise
        raise AssertionError("unreachable")

    def _fit_context(self, messages: list[Message]) -> tuple[list[Message], int | None, bool]:
        """The messages to send, the answer's token cap and whether examples were dropped.

        Unknown window: sent as they are. Otherwise the prompt plus the answer must fit:
        the system prompt's worked examples go first, then the answer is capped at what
        is left; a prompt that leaves less than ``MIN_ANSWER_TOKENS`` is refused here,
        loudly, rather than cut by the server."""
        window = self.context_window
        if window is None:
            return messages, None, False
        answer = self.answer_tokens or window
        size = estimate_tokens([content for _, content in messages])
        shortened = False
        if size + min(answer, window // 2) > window:
            messages = [(role, drop_examples(content) if role == "system" else content)
                        for role, content in messages]
            size = estimate_tokens([content for _, content in messages])
            shortened = True
        cap = min(answer, window - size)
        if cap < MIN_ANSWER_TOKENS:
            raise LLMCallError(
                f"{self.name}: the prompt (about {size} tokens, examples dropped) leaves no "
                f"room for an answer in {self.model_label}'s context window of {window} "
                f"tokens; give the server a larger context (llama.cpp: --n_ctx) and say so "
                f"with --context-window")
        return messages, (cap if cap < answer or self.answer_tokens is None else None), \
            shortened

    def _runnable(self, response_format: Mapping[str, Any] | None, cap: int | None) -> Any:
        """The chat model, bound to the answer's cap and the JSON Schema, if any.

        OpenAI-compatible endpoints (and the scripted test model) get the schema as
        ``response_format`` (type ``json_schema``), which OpenAI, vLLM, Ollama and
        llama.cpp's server all honour; other providers go through langchain's
        ``with_structured_output``, and only its raw message is used: the answer is
        parsed here, under limits, never by the client."""
        model: Any = self.chat_model
        if cap is not None:
            model = model.bind(max_tokens=cap, **(
                {"extra_body": {"max_tokens": cap}} if self.cap_in_body else {}))
        if response_format is None:
            return model
        if getattr(self.chat_model, "_llm_type", "") in ("openai-chat", "mmw-scripted"):
            if self.schema_flavour == "json_object":   # llama-cpp-python's form
                return model.bind(response_format={"type": "json_object",
                                                   "schema": dict(response_format)})
            return model.bind(response_format={"type": "json_schema", "json_schema": {
                "name": "answer", "schema": dict(response_format),
                "strict": _strict_ok(response_format)}})
        return model.with_structured_output(dict(response_format), method="json_schema",
                                            include_raw=True)

    def _call_once(self, messages: list[Message], purpose: str, attempt: int,
                   response_format: Mapping[str, Any] | None, cap: int | None,
                   shortened: bool) -> str:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
        start = time.perf_counter()
        event: dict[str, Any] = {
            "kind": "llm_call", "proposer": self.name, "model": self.model_label,
            "purpose": purpose, "attempt": attempt, "prompt_version": self.prompts.version,
            "messages": [{"role": role, "content": content} for role, content in messages],
        }
        if response_format is not None:
            event["response_format"] = "json_schema"
        if cap is not None or shortened:
            event.update(context_window=self.context_window, answer_cap=cap,
                         examples_dropped=shortened)
        try:
            response = self._runnable(response_format, cap).invoke(
                [kinds[role](content=content) for role, content in messages])
        except Exception as exc:  # any provider/transport failure
            seconds = time.perf_counter() - start
            self.usage.add(0, 0, seconds)
            self._emit({**event, "answer": None, "error": f"{type(exc).__name__}: {exc}",
                        "prompt_tokens": 0, "completion_tokens": 0, "tokens": 0,
                        "seconds": seconds})
            raise LLMCallError(f"{self.name}: the {purpose} call to {self.model_label} failed: "
                               f"{type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - start
        if isinstance(response, Mapping):   # with_structured_output(include_raw=True)
            response = response.get("raw")
        text = _text(getattr(response, "content", ""))
        calls = getattr(response, "tool_calls", None) or []
        if not text.strip() and calls and isinstance(calls[0], Mapping):
            text = json.dumps(calls[0].get("args"), default=str)  # a provider's tool call
        prompt_tokens, completion_tokens = _token_counts(response)
        self.usage.add(prompt_tokens, completion_tokens, seconds)
        self._emit({**event, "answer": text, "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "tokens": prompt_tokens + completion_tokens, "seconds": seconds})
        return text

    def _emit(self, event: dict[str, Any]) -> None:
        if self.log is not None:
            self.log(event)
