"""Keeping a prompt inside a model's context window.

Local models have small windows (llama.cpp's server defaults to 2,048 tokens; the system
prompt alone is about 2,500). A server that gets a longer prompt either refuses it with
an error or, worse, silently drops its beginning, which is where the model language's
reference is. So the proposer estimates the prompt's size before it sends it and, when
prompt plus answer would not fit, drops the worked examples first (they help, but the
reference and the task are what the answer cannot do without), then caps the answer at
what is left. The window comes from a setting (``ChatSettings.context_window``) or is
learned from the server's own refusal (:func:`window_from_error`), after which the call is
made again, shortened.

The estimate is deliberately pessimistic (three characters a token; BPE tokenizers give
about four on English and code), so a prompt that passes it fits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

__all__ = ["drop_examples", "estimate_tokens", "window_from_error"]

CHARS_PER_TOKEN = 3.0
TOKENS_PER_MESSAGE = 8           # role markers of a chat template
_EXAMPLE_HEADING = re.compile(r"^#{1,3}\s+(worked\s+)?examples?\b", re.IGNORECASE)
_HEADING = re.compile(r"^#{1,3}\s+\S")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_WINDOW_PATTERNS = (
    re.compile(r"context window of (\d+)", re.IGNORECASE),                # llama-cpp-python
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),        # OpenAI, vLLM
    re.compile(r"context (?:size|length) (?:of |is )?\(?(\d+)", re.IGNORECASE),
    re.compile(r"n_ctx[^\d]{0,20}(\d+)", re.IGNORECASE),                   # llama.cpp
)


def estimate_tokens(contents: Sequence[str]) -> int:
    """A pessimistic token count of chat messages with these contents."""
    return sum(math.ceil(len(c) / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE for c in contents)


def drop_examples(text: str) -> str:
    """``text`` without its example sections (a heading "# Worked examples" or
    "# Example" up to the next heading of the same kind). Lines inside fenced code are
    never headings: a ``# structure:`` comment in a Python block does not end a section."""
    out: list[str] = []
    skipping = False
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and _HEADING.match(line):
            skipping = bool(_EXAMPLE_HEADING.match(line))
        if not skipping:
            out.append(line)
    return "\n".join(out).strip()


def window_from_error(message: str) -> int | None:
    """The context window a server's refusal names, or None if it names none."""
    if not re.search(r"context|n_ctx|too long|exceed", message, re.IGNORECASE):
        return None
    for pattern in _WINDOW_PATTERNS:
        match = pattern.search(message)
        if match and 64 <= int(match.group(1)) <= 10_000_000:
            return int(match.group(1))
    return None
