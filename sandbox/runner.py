"""Run a DSL module in the sandbox and bring back its model as JSON, or why it failed.

This is the seam between generated code and everything else: the module's
source goes in as a file, :mod:`sandbox._module_runner` executes it inside
the sandbox and writes a small JSON result file, and the host reads that file
as *data* (never unpickled, never executed). On failure the repair loop gets
a :class:`ModuleError` whose frames carry the module's own line numbers and
source lines, so a proposer can be told exactly which line to fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """Why a module produced no model, structured for the repair loop.

    ``kind``: ``syntax``, ``exception``, ``no_model``, ``multiple_models``,
    ``serialization``, ``timeout``, ``limit``, ``crashed``, ``sandbox``.
    """

    kind: str
    type: str
    message: str
    frames: tuple[Frame, ...] = ()
    traceback: str = ""

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
        return {"kind": self.kind, "type": self.type, "message": self.message,
                "lineno": self.lineno, "traceback": self.traceback,
                "frames": [{"lineno": f.lineno, "name": f.name, "line": f.line,
                            "offset": f.offset} for f in self.frames]}


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
        data = json.loads(raw)
    except ValueError:
        return fail(ModuleError("crashed", "Crashed", "unreadable result file"))
    if data.get("ok") and isinstance(data.get("model_json"), str):
        return ModuleRun(ok=True, model_json=data["model_json"], error=None, run=run,
                         filename=filename, variable=data.get("variable"))
    err = data.get("error") or {}
    frames = tuple(
        Frame(lineno=int(f.get("lineno") or 0), name=str(f.get("name", "")),
              line=str(f.get("line", "")), offset=f.get("offset"))
        for f in err.get("frames", []) if isinstance(f, dict)
    )
    return fail(ModuleError(str(err.get("kind", "exception")), str(err.get("type", "Error")),
                            str(err.get("message", "")), frames, str(err.get("traceback", ""))))


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
