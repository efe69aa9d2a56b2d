"""The host side of the guest protocol: one request line in, one authenticated answer out.

Shared by the warm ``local`` mode (pipes to a guest inside bubblewrap) and the
``container`` backend (the engine's attach stream): both run
:mod:`sandbox.guest`, so both encode requests and decode answers the same way.

The channel is authenticated per request, because the code a guest runs
shares its uid and might find a way to write on the channel (the red team
did, through ``/proc/<guest>/fd/1``). Each request line starts with a fresh
random nonce::

    <nonce hex> <request json>\\n

and the only answer the host accepts is::

    MMW-RESULT <hex HMAC-SHA256(nonce, answer json)> <answer json>\\n

The nonce never reaches a process that runs the code: the guest's front
process (the "notary") reads it and keeps it, and the worker that forks the
runs was split off before the first nonce arrived, so not even a fork
inherits it in memory. Any other byte on the channel (a line without the
marker, a wrong tag, a stale tag from an earlier request, garbage before the
answer) is :data:`FORGED`: the run fails with that reason and a warm guest is
killed and replaced, never asked again.

The answer JSON is then read as untrusted data (bounded size, depth and
numbers; duplicate keys refused) and every field is type-checked, so a
malformed answer is a failed run, never an exception on the host.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from mechanistic.errors import UntrustedDataError
from mechanistic.untrusted import JsonLimits, parse_json
from sandbox.spec import Guarantees, LimitHit, Limits, RunResult, RunSpec, failed_result

MARKER = b"MMW-RESULT "
NONCE_BYTES = 32
FORGED = ("the guest's channel carried a line that is not this request's authenticated "
          "answer (forged by the code it ran?)")


def new_nonce() -> str:
    """A fresh request nonce (hex): unguessable, never reused."""
    return secrets.token_hex(NONCE_BYTES)


def tag(nonce: str, payload: bytes) -> str:
    """The answer's tag: HMAC-SHA256 of the answer JSON, keyed by the request's nonce."""
    return hmac.new(bytes.fromhex(nonce), payload, hashlib.sha256).hexdigest()


def encode_request(spec: RunSpec, nonce: str, seccomp: bytes | None = None) -> bytes:
    """The request line for ``spec`` (file contents, stdin and the seccomp program base64)."""
    req = {
        "argv": list(spec.argv),
        "files": {k: base64.b64encode(v).decode() for k, v in spec.files.items()},
        "env": dict(spec.env), "stdin": base64.b64encode(spec.stdin).decode(),
        "limits": asdict(spec.limits), "collect": list(spec.collect),
        "seccomp": base64.b64encode(seccomp).decode() if seccomp else None,
    }
    return nonce.encode() + b" " + json.dumps(req).encode() + b"\n"


def max_answer_bytes(limits: Limits) -> int:
    """The longest answer line the guest can honestly send for a run under ``limits``:
    both output streams and the collected files, base64-encoded, plus room for the rest."""
    return (2 * limits.output_bytes + limits.collect_bytes) * 4 // 3 + 64 * 1024


@dataclass(frozen=True)
class Answer:
    """What one read of the channel yielded: the authenticated answer, or why there is none.

    ``forged``: the channel carried something that is not the current answer; the
    caller must not trust it again (a warm guest is replaced).
    """

    payload: bytes | None = None
    error: str | None = None
    forged: bool = False


def read_answer(buffer: bytes, nonce: str, max_bytes: int) -> tuple[Answer | None, bytes]:
    """The first complete line of ``buffer`` judged against ``nonce``: (answer, rest).

    (None, buffer) while no complete line has arrived yet and the buffer is within
    ``max_bytes``. Anything but ``MMW-RESULT <right tag> <json>`` is a forged answer.
    """
    end = buffer.find(b"\n")
    if end < 0:
        if len(buffer) > max_bytes:
            return Answer(error=f"{FORGED}: {len(buffer)} bytes without an end of line",
                          forged=True), b""
        return None, buffer
    line, rest = buffer[:end], buffer[end + 1:]
    if not line.startswith(MARKER):
        return Answer(error=f"{FORGED}: {_show(line)}", forged=True), rest
    got_tag, _, payload = line[len(MARKER):].partition(b" ")
    if not hmac.compare_digest(got_tag, tag(nonce, payload).encode()):
        return Answer(error=f"{FORGED}: an answer whose tag does not match this request",
                      forged=True), rest
    return Answer(payload=payload), rest


def _show(line: bytes) -> str:
    return repr(line[:60].decode("utf-8", "replace")) + ("..." if len(line) > 60 else "")


# Shape of an answer; its size is bounded by max_answer_bytes before it is parsed.
_ANSWER_LIMITS = JsonLimits(max_bytes=2**40, max_depth=4, max_members=100_000,
                            max_nodes=300_000, max_string=2**40)
_ANSWER_BOOLS = ("timed_out", "stdout_truncated", "stderr_truncated")


class _Malformed(ValueError):
    pass


def _int_or_none(answer: dict, key: str, lo: int, hi: int) -> int | None:
    value = answer.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _Malformed(f"{key!r} must be an integer in [{lo}, {hi}] or null")
    return value


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _Malformed(f"{what} must be a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed(f"{what} is not valid base64") from None


def decode_answer(payload: bytes, backend: str, g: Guarantees, wall_s: float,
                  oom_killed: bool = False) -> RunResult:
    """A RunResult from the guest's (authenticated) answer JSON; never raises.

    Wrong JSON, wrong types (``files`` a list, ``exit_code`` a string), unknown
    limits or bad base64 all become a failed run naming what was wrong.
    """
    try:
        answer = parse_json(payload, "the guest's answer", _ANSWER_LIMITS)
        if not isinstance(answer, dict):
            raise _Malformed(f"an answer must be an object, got {type(answer).__name__}")
        if "guest_error" in answer:
            err = answer["guest_error"]
            return failed_result(backend, g, "guest: " + (err[:2000] if isinstance(err, str)
                                                          else "an unreadable error"), wall_s)
        for key in _ANSWER_BOOLS:
            if not isinstance(answer.get(key), bool):
                raise _Malformed(f"{key!r} must be true or false")
        lh = answer.get("limit_hit")
        if lh is not None and lh not in {m.value for m in LimitHit}:
            raise _Malformed("'limit_hit' must be null or a known limit")
        lh = lh or ("memory" if oom_killed else None)
        files = answer.get("files")
        if not isinstance(files, dict):
            raise _Malformed(f"'files' must be an object, got {type(files).__name__}")
        return RunResult(
            exit_code=_int_or_none(answer, "exit_code", -(2**31), 2**31),
            signal=_int_or_none(answer, "signal", 1, 128),
            timed_out=answer["timed_out"], limit_hit=LimitHit(lh) if lh else None,
            stdout=_b64(answer.get("stdout"), "'stdout'").decode("utf-8", "replace"),
            stderr=_b64(answer.get("stderr"), "'stderr'").decode("utf-8", "replace"),
            stdout_truncated=answer["stdout_truncated"],
            stderr_truncated=answer["stderr_truncated"],
            files={str(k)[:4096]: _b64(v, "a collected file") for k, v in files.items()},
            wall_s=wall_s, backend=backend, guarantees=g,
        )
    except (UntrustedDataError, _Malformed) as exc:
        return failed_result(backend, g, f"malformed answer from the guest: {exc}", wall_s)
