"""Host-side work on an untrusted model, run under a time and a memory bound.

The size limits of :mod:`mechanistic.expr` keep a model small, but a small expression can
still make sympy's ``simplify`` (inside the structural checks) slow: cancellation and
factoring are exponential in the worst case. So that work runs in a forked child with an
address-space limit on top of what the host already maps and a wall clock; the child
writes its JSON answer to a pipe and exits. A child past either bound is killed and the
caller gets a :class:`HostLimitError` naming the bound, which the search records as a
failed node. The parent never blocks longer than ``seconds`` on it.

Fork is cheap here (copy-on-write; the model is already built in the parent), and the
child touches only sympy and plain Python, never torch threads. Where fork is missing
(not Linux or macOS) the work runs inline, unbounded, and says so in the docs.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import time
from collections.abc import Callable
from typing import Any

from mechanistic.errors import UntrustedDataError
from mechanistic.untrusted import JsonLimits, parse_json

__all__ = ["CHECK_MEMORY_BYTES", "CHECK_SECONDS", "HostLimitError", "call_bounded"]

CHECK_SECONDS = 60.0
CHECK_MEMORY_BYTES = 2 * 1024**3
_ANSWER_LIMITS = JsonLimits(max_bytes=64 * 1024 * 1024)


class HostLimitError(UntrustedDataError):
    """Host-side work on an untrusted input ran past its time or memory bound."""


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def call_bounded(fn: Callable[[], Any], what: str, seconds: float = CHECK_SECONDS,
                 memory_bytes: int = CHECK_MEMORY_BYTES) -> Any:
    """``fn()`` run in a forked child under ``seconds`` of wall clock and ``memory_bytes``
    of new address space; its JSON-ready result, or HostLimitError. An exception inside
    ``fn`` comes back as HostLimitError too (with its type and message), never as a raise
    from a half-finished child."""
    if not hasattr(os, "fork"):
        return fn()
    limit = _vm_size() + memory_bytes
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: compute, answer, exit without running the parent's cleanup
        code = 0
        try:
            os.close(read_end)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                answer = {"ok": True, "value": fn()}
            except MemoryError:
                answer = {"ok": False, "why": "memory"}
            except BaseException as exc:  # reported to the parent as data
                answer = {"ok": False, "why": "error",
                          "error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
            data = json.dumps(answer, default=str).encode()
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
        except BaseException:  # nothing may escape a forked child
            code = 1
        os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_end], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(read_end, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        raise HostLimitError(f"{what} did not finish within {seconds:.0f} s; the model is too "
                             "large or too intricate for the host to check (simplify it)")
    try:
        answer = parse_json(b"".join(chunks), what, _ANSWER_LIMITS)
    except UntrustedDataError:
        answer = None
    if not isinstance(answer, dict) or not answer.get("ok"):
        why = answer.get("why") if isinstance(answer, dict) else None
        if why == "error":
            raise HostLimitError(f"{what} failed: {answer.get('error')}")
        signalled = os.WIFSIGNALED(status)
        raise HostLimitError(f"{what} ran past its memory bound of "
                             f"{memory_bytes // 1024**2} MiB" if why == "memory" or signalled
                             else f"{what} ended without an answer")
    return answer["value"]
