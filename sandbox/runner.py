"""Run a DSL module in the sandbox and bring back its model as JSON, or why it failed.

This is the seam between generated code and everything else: the module's
source goes in as a file, :mod:`sandbox._module_runner` executes it inside
the sandbox and writes a small JSON result file, and the host reads that file
as *data* (never unpickled, never executed). On failure the repair loop gets
a :class:`ModuleError` whose frames carry the module's own line numbers and
source lines, so a proposer can be told exactly which line to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mechanistic.errors import UntrustedDataError
from mechanistic.untrusted import JsonLimits, parse_json
from sandbox.spec import Limits, RunResult, RunSpec, Sandbox

RUNNER_FILE = "_mmw_runner.py"
RESULT_FILE = "_mmw_result.json"
_RUNNER_SOURCE = Path(__file__).with_name("_module_runner.py")


@dataclass(frozen=True)
class Frame:
    """One traceback frame inside the module."""

    lineno: int
    name: str
    line: str
    offset: int | None = None


@dataclass(frozen=True)
class ModuleError:
    """Why a candidate produced no model or no fit, structured for the repair loop: the
    one error type a search node (``agent.evaluate.Node.error``) and a repair request
    (``agent.core.Feedback.error``) carry.

    ``kind``: from the module's run ``syntax``, ``exception``, ``no_model``,
    ``multiple_models``, ``serialization``, ``runner``, ``timeout``, ``limit``,
    ``crashed``, ``sandbox``; from the host after it (:meth:`host`) ``serialization``
    (the model JSON refused), ``limit`` (the checks past a host bound), ``fit``,
    ``sandbox``; and ``answer``: the proposer's answer gave no module to run (a
    structured specification that failed validation, an answer without code).

    ``compact``: an error the host met outside the module's run, made by :meth:`host`.
    It has no frames, and :meth:`to_dict` writes it as run folders have always held such
    errors: kind, type, message, and the traceback only when there is one.
    """

    kind: str
    type: str
    message: str
    frames: tuple[Frame, ...] = ()
    traceback: str = ""
    compact: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames", tuple(self.frames))
        if self.compact and self.frames:
            raise ValueError("a host error (compact) has no module frames")

    @classmethod
    def host(cls, kind: str, type: str, message: str, traceback: str = "") -> ModuleError:
        """An error met on the host after the module ran: its model JSON refused, the
        structural checks past a host limit, a fit that raised or found no finite
        likelihood (``kind`` as listed on the class)."""
        return cls(kind, type, message, traceback=traceback, compact=True)

    @property
    def lineno(self) -> int | None:
        """The module line the failure points at (innermost frame), if any."""
        return self.frames[-1].lineno if self.frames else None

    def render(self, filename: str = "model.py") -> str:
        """Plain text for a prompt or a terminal: type, message, the module lines involved."""
        out = [f"{self.type}: {self.message}"]
        for fr in self.frames:
            out.append(f'  File "{filename}", line {fr.lineno}, in {fr.name}')
            if fr.line:
                out.append(f"    {fr.line}")
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what node.json, tree.json and the trajectory hold (read back by
        :meth:`from_dict`)."""
        if self.compact:
            out = {"kind": self.kind, "type": self.type, "message": self.message}
            if self.traceback:
                out["traceback"] = self.traceback
            return out
        return {"kind": self.kind, "type": self.type, "message": self.message,
                "lineno": self.lineno, "traceback": self.traceback,
                "frames": [{"lineno": f.lineno, "name": f.name, "line": f.line,
                            "offset": f.offset} for f in self.frames]}

    @classmethod
    def from_dict(cls, data: Any, what: str = "an error") -> ModuleError:
        """The error :meth:`to_dict` wrote, read back from untrusted data (a run folder
        may be copied in or edited): every field checked, one UntrustedDataError naming
        ``what`` and the key for a value of the wrong kind; nothing truncated, so an
        error read back is written again byte for byte. Absent fields take the runner's
        defaults; an object without ``lineno`` and ``frames`` is a host error
        (``compact``). ``lineno`` is derived from the frames, so its value is only
        checked. A plain string (the run-folder shape accepts one for other writers) is
        the message of a host error of kind ``unknown``."""
        if isinstance(data, str):
            return cls.host("unknown", "Error", data)
        if not isinstance(data, dict):
            raise UntrustedDataError(f"{what}: must be an error object, not "
                                     f"{type(data).__name__}")

        def get(key: str, default: str) -> str:
            value = data.get(key)
            if value is None:
                return default
            if not isinstance(value, str):
                raise UntrustedDataError(f"{what}: {key!r} must be a string, not "
                                         f"{type(value).__name__}")
            return value

        lineno = data.get("lineno")
        if lineno is not None and not _line_number(lineno):
            raise UntrustedDataError(f"{what}: 'lineno' is not a line number")
        raw_frames = data.get("frames")
        compact = "frames" not in data and "lineno" not in data
        if raw_frames is None:
            raw_frames = []
        if not isinstance(raw_frames, list):
            raise UntrustedDataError(f"{what}: 'frames' must be an array, not "
                                     f"{type(raw_frames).__name__}")
        frames = []
        for i, f in enumerate(raw_frames):
            where = f"{what}: frames[{i}]"
            if not isinstance(f, dict):
                raise UntrustedDataError(f"{where} must be an object")
            lineno, offset = f.get("lineno", 0), f.get("offset")
            if not _line_number(lineno) or not (offset is None or _line_number(offset)):
                raise UntrustedDataError(f"{where}: its line or offset is not a line number")
            name, line = f.get("name", ""), f.get("line", "")
            if not isinstance(name, str) or not isinstance(line, str):
                raise UntrustedDataError(f"{where}: 'name' and 'line' must be strings")
            frames.append(Frame(lineno=lineno, name=name, line=line, offset=offset))
        return cls(get("kind", "exception"), get("type", "Error"), get("message", ""),
                   tuple(frames), get("traceback", ""), compact=compact)


def _line_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9


@dataclass(frozen=True)
class ModuleRun:
    """The outcome of running one module: a model as JSON, or a ModuleError; plus the run."""

    ok: bool
    model_json: str | None
    error: ModuleError | None
    run: RunResult
    filename: str = "model.py"
    variable: str | None = field(default=None)

    @property
    def stdout(self) -> str:
        return self.run.stdout

    @property
    def stderr(self) -> str:
        return self.run.stderr

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "filename": self.filename, "variable": self.variable,
                "model_json": self.model_json,
                "error": self.error.to_dict() if self.error else None, "run": self.run.to_dict()}


def module_spec(source: str, filename: str = "model.py", limits: Limits | None = None) -> RunSpec:
    """The RunSpec that executes ``source`` under the in-sandbox runner."""
    if "/" in filename or filename in (RUNNER_FILE, RESULT_FILE) or not filename.endswith(".py"):
        raise ValueError(f"filename must be a plain *.py name, got {filename!r}")
    return RunSpec(
        argv=("python3", "-B", RUNNER_FILE, filename, RESULT_FILE),
        files={filename: source.encode(), RUNNER_FILE: _RUNNER_SOURCE.read_bytes()},
        limits=limits or Limits(), collect=(RESULT_FILE,),
    )


def _from_run(run: RunResult, filename: str) -> ModuleRun:
    def fail(error: ModuleError) -> ModuleRun:
        return ModuleRun(ok=False, model_json=None, error=error, run=run, filename=filename)

    if run.error is not None:
        return fail(ModuleError("sandbox", "SandboxError", run.error))
    if run.timed_out:
        return fail(ModuleError("timeout", "Timeout",
                                f"the module did not finish within the wall-clock limit "
                                f"({run.wall_s:.1f}s); look for an endless loop"))
    raw = run.files.get(RESULT_FILE)
    if run.limit_hit is not None and (raw is None or run.exit_code != 0):
        return fail(ModuleError("limit", "LimitExceeded",
                                f"the module hit the {run.limit_hit.value} limit",
                                traceback=run.stderr[-2000:]))
    if raw is None:
        why = f"signal {run.signal}" if run.signal else f"exit status {run.exit_code}"
        return fail(ModuleError("crashed", "Crashed",
                                f"the module ended the interpreter ({why}) before a result "
                                "was written", traceback=run.stderr[-2000:]))
    try:
        data = parse_json(raw, "the module's result file", RESULT_LIMITS)
        return _parse_result(data, run, filename)
    except UntrustedDataError as exc:
        return fail(ModuleError("crashed", "UnreadableResult",
                                f"the sandbox returned a result the host refuses: {exc}"))


RESULT_LIMITS = JsonLimits(max_bytes=Limits().collect_bytes, max_depth=8, max_nodes=50_000,
                           max_members=10_000, max_string=8 * 1024 * 1024)
"""The result file is written by the runner, in the module's own process, so the module
can replace it; it is read as untrusted data of one fixed, shallow shape."""

_KINDS = ("syntax", "exception", "no_model", "multiple_models", "serialization", "runner")
_MAX_FRAMES = 200


def _field(obj: dict[str, Any], key: str, kind: type, default: Any = ...) -> Any:
    value = obj.get(key, default)
    if value is ... or not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise UntrustedDataError(f"the module's result file: {key!r} must be "
                                 f"{kind.__name__}, got {type(value).__name__}")
    return value


def _parse_result(data: Any, run: RunResult, filename: str) -> ModuleRun:
    """The result file's one shape: ``{ok: true, model_json, variable}`` or ``{ok: false,
    error: {kind, type, message, frames: [{lineno, name, line, offset?}], traceback}}``."""
    if not isinstance(data, dict):
        raise UntrustedDataError(f"the module's result file must hold an object, got "
                                 f"{type(data).__name__}")
    if _field(data, "ok", bool):
        variable = _field(data, "variable", str, "")
        if variable and not variable.isidentifier():
            raise UntrustedDataError("the module's result file: 'variable' is not a name")
        return ModuleRun(ok=True, model_json=_field(data, "model_json", str), error=None,
                         run=run, filename=filename, variable=variable or None)
    err = _field(data, "error", dict)
    kind = _field(err, "kind", str, "exception")
    if kind not in _KINDS:
        raise UntrustedDataError(f"the module's result file: unknown error kind {kind[:40]!r}")
    frames = []
    for f in _field(err, "frames", list, [])[:_MAX_FRAMES]:
        if not isinstance(f, dict):
            raise UntrustedDataError("the module's result file: a frame must be an object")
        lineno, offset = _field(f, "lineno", int, 0), f.get("offset")
        if not _line_number(lineno) or not (offset is None or _line_number(offset)):
            raise UntrustedDataError("the module's result file: a frame's line or offset "
                                     "is not a line number")
        frames.append(Frame(lineno=lineno, name=_field(f, "name", str, "")[:200],
                            line=_field(f, "line", str, "")[:2000], offset=offset))
    error = ModuleError(kind, _field(err, "type", str, "Error")[:200],
                        _field(err, "message", str, "")[:20_000], tuple(frames),
                        _field(err, "traceback", str, "")[-8000:])
    return ModuleRun(ok=False, model_json=None, error=error, run=run, filename=filename)


def run_model_module(
    source: str,
    filename: str = "model.py",
    sandbox: Sandbox | None = None,
    limits: Limits | None = None,
) -> ModuleRun:
    """Execute a DSL module's ``source`` in ``sandbox`` (default: ``auto``) and return its model.

    Never raises for anything the module does; a sandbox that cannot be
    opened at all (no engine and no local isolation) raises SandboxError.
    """
    spec = module_spec(source, filename, limits)
    if sandbox is not None:
        return _from_run(sandbox.run(spec), filename)
    from sandbox.auto import open_sandbox

    sb = open_sandbox()
    try:
        return _from_run(sb.run(spec), filename)
    finally:
        sb.close()
