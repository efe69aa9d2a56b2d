"""The host side of the guest protocol: one JSON request line in, one answer line out.

Shared by the warm ``local`` mode (pipes to a guest inside bubblewrap) and the
``container`` backend (the engine's attach stream): both run
:mod:`sandbox.guest`, so both encode requests and decode answers the same way.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict

from sandbox.spec import Guarantees, LimitHit, RunResult, RunSpec, failed_result

MARKER = b"MMW-RESULT "


def encode_request(spec: RunSpec) -> bytes:
    """The request line for ``spec`` (file contents and stdin base64-encoded)."""
    req = {
        "argv": list(spec.argv),
        "files": {k: base64.b64encode(v).decode() for k, v in spec.files.items()},
        "env": dict(spec.env), "stdin": base64.b64encode(spec.stdin).decode(),
        "limits": asdict(spec.limits), "collect": list(spec.collect),
    }
    return json.dumps(req).encode() + b"\n"


def decode_answer(answer: dict, backend: str, g: Guarantees, wall_s: float,
                  oom_killed: bool = False) -> RunResult:
    """A RunResult from the guest's answer; malformed answers become sandbox errors."""
    if "guest_error" in answer:
        return failed_result(backend, g, str(answer["guest_error"]), wall_s)
    try:
        lh = answer.get("limit_hit") or ("memory" if oom_killed else None)
        return RunResult(
            exit_code=answer["exit_code"], signal=answer["signal"],
            timed_out=bool(answer["timed_out"]), limit_hit=LimitHit(lh) if lh else None,
            stdout=base64.b64decode(answer["stdout"]).decode("utf-8", "replace"),
            stderr=base64.b64decode(answer["stderr"]).decode("utf-8", "replace"),
            stdout_truncated=bool(answer["stdout_truncated"]),
            stderr_truncated=bool(answer["stderr_truncated"]),
            files={str(k): base64.b64decode(v) for k, v in answer["files"].items()},
            wall_s=wall_s, backend=backend, guarantees=g,
        )
    except (KeyError, TypeError, ValueError) as exc:
        return failed_result(backend, g, f"malformed answer from the guest: {exc}", wall_s)


def parse_answer_line(buffer: bytes) -> tuple[dict | None, bytes]:
    """Find a complete ``MMW-RESULT`` line in ``buffer``: (answer or None, rest of buffer)."""
    i = buffer.find(MARKER)
    if i < 0:
        return None, buffer
    j = buffer.find(b"\n", i)
    if j < 0:
        return None, buffer
    line, rest = buffer[i + len(MARKER):j], buffer[j + 1:]
    try:
        return json.loads(line), rest
    except ValueError:
        return {"guest_error": "unreadable answer line"}, rest
