"""Pull simulator modules and JSON out of free-form LLM answers.

Chat models wrap code in prose, send several blocks, forget to close a fence or answer
with no code at all. Extraction never raises: it returns what it found and, when nothing
usable was found, a ``problem`` phrased as the follow-up message to send back, so the
proposer can ask again instead of crashing the search.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import re
from dataclasses import dataclass
from typing import Any

from mechanistic.errors import UntrustedDataError
from mechanistic.untrusted import JsonLimits, parse_json, parse_json_at

ANSWER_JSON_LIMITS = JsonLimits(max_bytes=1024 * 1024, max_depth=20, max_nodes=20_000,
                                max_members=1_000, max_string=20_000)
"""An LLM's JSON answer (interventions, a spec) is small; anything beyond is refused."""

__all__ = [
    "CodeBlock",
    "Extraction",
    "candidate_id",
    "code_blocks",
    "comment_field",
    "extract_json",
    "extract_modules",
    "numbered",
    "several_modules_problem",
    "structure_label",
]

_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+.-]*)[^\n`]*$")
_MODEL_CALL = re.compile(r"\bModel\s*\(")
_PY_LANGS = {"", "python", "py", "python3", "py3"}


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block; ``closed`` is False when the answer ended inside it."""

    lang: str
    code: str
    closed: bool = True


@dataclass(frozen=True)
class Extraction:
    """Complete DSL modules found in an answer, or why there were none.

    ``problem`` is None when at least one module was found; otherwise it is the text of
    the follow-up message that tells the model what was wrong with its answer.
    """

    modules: tuple[str, ...]
    problem: str | None = None
    fragments: int = 0          # python blocks that do not declare a Model
    unclosed: bool = False      # the last fence was never closed (answer cut off?)


def code_blocks(text: str) -> list[CodeBlock]:
    """Fenced blocks (``` or ~~~) in order; an unclosed last fence runs to the end."""
    blocks: list[CodeBlock] = []
    fence: str | None = None
    lang = ""
    body: list[str] = []
    for line in text.splitlines():
        if fence is None:
            match = _FENCE.match(line)
            if match:
                fence, lang, body = match["fence"], match["lang"].lower(), []
            continue
        stripped = line.strip()
        if stripped.startswith(fence) and not stripped.strip(fence[0]):
            blocks.append(CodeBlock(lang, "\n".join(body).strip("\n")))
            fence = None
            continue
        reopened = _FENCE.match(line)
        if reopened and reopened["lang"]:
            # a new ```lang fence inside a block: the previous one was never closed
            blocks.append(CodeBlock(lang, "\n".join(body).strip("\n"), closed=False))
            fence, lang, body = reopened["fence"], reopened["lang"].lower(), []
            continue
        body.append(line)
    if fence is not None and any(b.strip() for b in body):
        blocks.append(CodeBlock(lang, "\n".join(body).strip("\n"), closed=False))
    return blocks


def _declares_model(code: str) -> bool:
    return bool(_MODEL_CALL.search(code))


def _normalise(code: str) -> str:
    return code.strip("\n").rstrip() + "\n"


def _bare_module(text: str) -> str | None:
    """An answer that is nothing but a module (no fences): accept it if it parses."""
    start = re.search(r"^(#|from |import |\"\"\")", text, flags=re.MULTILINE)
    if start is None:
        return None
    candidate = text[start.start():]
    try:
        ast.parse(candidate)
    except SyntaxError:
        return None
    return candidate if _declares_model(candidate) else None


def several_modules_problem(count: int) -> str:
    """The follow-up when one module was asked for and several came back: asking beats
    guessing which one the model meant."""
    return (f"Your answer contains {count} different complete modules; I need exactly one. "
            "Reply with the single corrected module in one ```python fenced block.")


def extract_modules(text: str) -> Extraction:
    """Complete modules (python blocks that call ``Model(``), de-duplicated, in order."""
    blocks = [b for b in code_blocks(text) if b.lang in _PY_LANGS]
    unclosed = any(not b.closed for b in blocks)
    modules: list[str] = []
    fragments = 0
    for block in blocks:
        if not block.code.strip():
            continue
        if _declares_model(block.code):
            code = _normalise(block.code)
            if code not in modules:
                modules.append(code)
        else:
            fragments += 1
    if not blocks:
        bare = _bare_module(text)
        if bare is not None:
            return Extraction((_normalise(bare),))
        return Extraction((), problem=(
            "Your answer contained no ```python code block. Reply with the complete model "
            "module(s), each in its own ```python fenced block, first line "
            "`# structure: <short label>`."
        ))
    if not modules:
        return Extraction((), fragments=fragments, unclosed=unclosed, problem=(
            "Your code does not declare a model: a module must create exactly one "
            "`m = Model(...)` and declare its states, parameters, dynamics, initial "
            "conditions and observables. Send complete modules, not fragments or diffs, each "
            "in its own ```python fenced block."
        ))
    return Extraction(tuple(modules), fragments=fragments, unclosed=unclosed)


def comment_field(code: str, key: str, head_lines: int = 8) -> str | None:
    """The value of a ``# key: value`` comment among the first lines of a module."""
    pattern = re.compile(rf"^\s*#\s*{re.escape(key)}\s*:\s*(.+?)\s*$", re.IGNORECASE)
    for line in code.splitlines()[:head_lines]:
        match = pattern.match(line)
        if match:
            return match.group(1)
    return None


def structure_label(code: str) -> str:
    """``# structure: ...`` if present, else the Model's name, else "unlabelled"."""
    label = comment_field(code, "structure")
    if label:
        return label[:120]
    match = re.search(r"\bModel\s*\(\s*(['\"])(.+?)\1", code)
    return match.group(2)[:120] if match else "unlabelled"


def candidate_id(source: str) -> str:
    """A short, stable id: the same source always gets the same id (resume, dedupe)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:10]


def numbered(source: str) -> str:
    """Source with line numbers, so a traceback's ``line N`` can be found at a glance."""
    lines = source.splitlines()
    width = len(str(len(lines)))
    return "\n".join(f"{i:>{width}} | {line}" for i, line in enumerate(lines, start=1))


def extract_json(text: str) -> tuple[Any | None, str | None]:
    """The first JSON value in an answer: a ```json block, any block, or inline.

    Returns ``(value, None)`` or ``(None, problem)``.
    """
    blocks = code_blocks(text)
    ordered = [b for b in blocks if b.lang == "json"] + [b for b in blocks if b.lang != "json"]
    refused = None
    for block in ordered:
        try:
            return parse_json(block.code, "the JSON in your answer", ANSWER_JSON_LIMITS), None
        except UntrustedDataError as exc:
            refused = refused or exc
    for match in itertools.islice(re.finditer(r"[\[{]", text), 200):
        try:
            value, _ = parse_json_at(text, match.start(), "the JSON in your answer",
                                     ANSWER_JSON_LIMITS)
        except UntrustedDataError as exc:
            refused = refused or exc
            continue
        if isinstance(value, list | dict):
            return value, None
    if refused is not None and "not valid JSON" not in str(refused):
        return None, (f"{refused}. Reply with the interventions as a short JSON list in one "
                      "```json fenced block.")
    return None, ("Your answer contained no valid JSON. Reply with the interventions as a "
                  "JSON list in one ```json fenced block.")
