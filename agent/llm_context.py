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

The estimate is deliberately pessimistic (2.8 characters a token; SmolLM2's tokenizer
gives 2.95 on the free-form system prompt, which is mostly code, and about four on
prose), so a prompt that passes it fits.
"""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from mechanistic.errors import UntrustedDataError
from mechanistic.untrusted import JsonLimits, parse_json

__all__ = ["drop_examples", "estimate_tokens", "served_window", "window_from_error"]

CHARS_PER_TOKEN = 2.8       # SmolLM2 measured: 2.95 on the free-form system prompt
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


_MODELS_LIMITS = JsonLimits(max_bytes=1024 * 1024, max_depth=12, max_nodes=50_000)
_WINDOW_KEYS = ("max_model_len", "context_length", "context_window", "n_ctx")


def served_window(base_url: str, model: str, api_key: str, timeout: float = 3.0
                  ) -> int | None:
    """The window ``GET {base_url}/models`` reports for ``model`` (vLLM: ``max_model_len``;
    others under similar names), read as untrusted JSON; None when the server says
    nothing, or is not there yet."""
    request = urllib.request.Request(f"{base_url.rstrip('/')}/models",
                                     headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read(_MODELS_LIMITS.max_bytes + 1)
        data: Any = parse_json(raw.decode("utf-8", "replace"), "the server's model list",
                               _MODELS_LIMITS)
    except (urllib.error.URLError, OSError, ValueError, UntrustedDataError):
        return None
    entries = data.get("data") if isinstance(data, dict) else None
    entries = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    for entry in entries:
        if entry.get("id") == model or len(entries) == 1:
            for key in _WINDOW_KEYS:
                value = entry.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and \
                        256 <= value <= 10_000_000:
                    return value
    return None


def window_from_error(message: str) -> int | None:
    """The context window a server's refusal names, or None if it names none."""
    if not re.search(r"context|n_ctx|too long|exceed", message, re.IGNORECASE):
        return None
    for pattern in _WINDOW_PATTERNS:
        match = pattern.search(message)
        if match and 64 <= int(match.group(1)) <= 10_000_000:
            return int(match.group(1))
    return None
