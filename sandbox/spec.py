"""What a sandbox run is asked to do, and what it reports back, as plain data.

Everything here is a frozen, validated dataclass: a spec is checked once when
it is built (so a bad limit fails loudly at the call site, not deep inside a
backend), and a result is an observation the repair loop can store, compare
and serialise. A failed run is a :class:`RunResult`, never an exception.
"""

from __future__ import annotations

import enum
import posixpath
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

MiB = 1024 * 1024

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SandboxError(RuntimeError):
    """A sandbox cannot be built or used at all (as opposed to a run failing).

    Raised only by constructors and probes, e.g. when no engine answers or the
    runtime image is missing; ``run`` itself reports failures as data.
    """


class LimitHit(enum.StrEnum):
    """Which resource limit ended (or visibly constrained) a run."""

    WALL = "wall"
    CPU = "cpu"
    MEMORY = "memory"
    PIDS = "pids"
    FILE_SIZE = "file_size"
    OUTPUT = "output"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. Defaults suit a DSL module that declares a model."""

    wall_s: float = 20.0
    cpu_s: int = 20
    memory_bytes: int = 512 * MiB
    pids: int = 64
    output_bytes: int = 1 * MiB  # per stream (stdout, stderr)
    file_size_bytes: int = 16 * MiB  # largest single file a run may write
    workdir_bytes: int = 64 * MiB  # size of the work dir where the backend can bound it
    open_files: int = 256
    collect_bytes: int = 8 * MiB  # total size of output files brought back

    def __post_init__(self) -> None:
        for name in (
            "wall_s", "cpu_s", "memory_bytes", "pids", "output_bytes",
            "file_size_bytes", "workdir_bytes", "open_files", "collect_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")
        if self.memory_bytes < 16 * MiB:
            raise ValueError("Limits.memory_bytes below 16 MiB cannot start a Python interpreter")
        if self.pids < 4:
            raise ValueError("Limits.pids must be at least 4 (interpreter, init, helper threads)")


def _check_relpath(path: str) -> str:
    norm = posixpath.normpath(path)
    if not path or path.startswith("/") or norm.startswith("..") or "\x00" in path or norm == ".":
        raise ValueError(f"file path must be relative and stay inside the work dir: {path!r}")
    return norm


@dataclass(frozen=True)
class RunSpec:
    """One run: files written into a fresh work dir, then ``argv`` executed there.

    ``argv[0]`` is resolved inside the sandbox (``python3`` means the sandbox's
    interpreter). Only variables in ``env`` reach the process: the host
    environment never leaks in. ``collect`` lists glob patterns, relative to
    the work dir, of output files to bring back (bounded by
    ``limits.collect_bytes``).
    """

    argv: tuple[str, ...]
    files: Mapping[str, bytes] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes = b""
    collect: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        argv = tuple(self.argv)
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError("RunSpec.argv must be a non-empty sequence of non-empty strings")
        object.__setattr__(self, "argv", argv)
        files: dict[str, bytes] = {}
        for path, content in dict(self.files).items():
            data = content.encode() if isinstance(content, str) else content
            if not isinstance(data, bytes):
                raise TypeError(f"file {path!r} content must be bytes or str")
            files[_check_relpath(path)] = data
        object.__setattr__(self, "files", _FrozenMap(files))
        env = dict(self.env)
        for k, v in env.items():
            if not _ENV_NAME.match(k) or not isinstance(v, str) or "\x00" in v:
                raise ValueError(f"bad environment entry {k!r}")
        object.__setattr__(self, "env", _FrozenMap(env))
        object.__setattr__(self, "collect", tuple(_check_relpath(p) for p in self.collect))
        if not isinstance(self.limits, Limits):
            raise TypeError("RunSpec.limits must be a Limits")


class _FrozenMap(dict):
    """A dict that refuses mutation, so a frozen spec stays frozen."""

    def _ro(self, *a: Any, **k: Any) -> None:
        raise TypeError("RunSpec mappings are read-only")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _ro  # type: ignore[assignment]


@dataclass(frozen=True)
class Guarantees:
    """What a backend promises, stated plainly so a caller can refuse weak ones."""

    backend: str
    isolated: bool  # False only for the plain-subprocess fallback
    network: str  # "none" (no interfaces) or "host" (unrestricted)
    filesystem: str  # what of the host the code can see
    memory: str  # how memory is bounded ("cgroup", "rlimit-data", ...)
    pids: str  # how process count is bounded
    process_tree_killed: bool  # every descendant dies at the end of a run
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run, always returned, whatever happened.

    ``error`` is set only when the sandbox itself could not run the code (no
    engine, missing image, ...); everything the code did wrong shows up as
    exit status, signal, ``timed_out`` and ``limit_hit``.
    """

    exit_code: int | None
    signal: int | None
    timed_out: bool
    limit_hit: LimitHit | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    files: Mapping[str, bytes]
    wall_s: float
    backend: str
    guarantees: Guarantees
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The code ran to completion, exited 0, and hit no limit."""
        return (
            self.error is None and self.exit_code == 0 and not self.timed_out
            and self.limit_hit is None
        )

    def summary(self) -> str:
        """One line for logs and the repair loop."""
        if self.error:
            return f"[{self.backend}] sandbox error: {self.error}"
        parts = [f"exit={self.exit_code}"]
        if self.signal:
            parts.append(f"signal={self.signal}")
        if self.timed_out:
            parts.append("timed out")
        if self.limit_hit:
            parts.append(f"limit={self.limit_hit.value}")
        return f"[{self.backend}] " + " ".join(parts) + f" in {self.wall_s:.3f}s"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (file contents as latin-1 text would be lossy: sizes only)."""
        return {
            "exit_code": self.exit_code, "signal": self.signal, "timed_out": self.timed_out,
            "limit_hit": self.limit_hit.value if self.limit_hit else None,
            "stdout": self.stdout, "stderr": self.stderr,
            "stdout_truncated": self.stdout_truncated, "stderr_truncated": self.stderr_truncated,
            "files": {k: len(v) for k, v in self.files.items()}, "wall_s": self.wall_s,
            "backend": self.backend, "guarantees": self.guarantees.to_dict(), "error": self.error,
        }


@runtime_checkable
class Sandbox(Protocol):
    """A place to run untrusted code. Backends: ``local`` and ``container``."""

    name: str

    def guarantees(self) -> Guarantees:
        """What this backend promises about isolation and limits."""
        ...

    def run(self, spec: RunSpec) -> RunResult:
        """Run ``spec``; never raises for anything the code does."""
        ...

    def close(self) -> None:
        """Release warm resources (a warm container, temp dirs)."""
        ...


def failed_result(
    backend: str, guarantees: Guarantees, error: str, wall_s: float = 0.0
) -> RunResult:
    """A result for a run the sandbox itself could not carry out."""
    return RunResult(
        exit_code=None, signal=None, timed_out=False, limit_hit=None, stdout="", stderr="",
        stdout_truncated=False, stderr_truncated=False, files={}, wall_s=wall_s,
        backend=backend, guarantees=guarantees, error=error,
    )
