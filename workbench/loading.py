"""Load a model from what a user hands the command line: model JSON or a DSL module.

JSON is data: it is parsed with :func:`mechanistic.model_from_json`, which never evaluates
anything. A DSL module (``.py``) is code, and generated code runs only in the sandbox
(DESIGN.md): when :mod:`sandbox.runner` is importable, the module runs there and only its
model JSON comes back. Where the sandbox package is absent, the module is executed
in-process as the user's own trusted code (what the foundation issue allowed before the
sandbox landed); ``trusted=True`` asks for that path explicitly, for modules that ship with
mmw itself (the example job), so the main job does not depend on an isolation backend.
"""

from __future__ import annotations

from pathlib import Path

from mechanistic.errors import ModelError
from mechanistic.model import Model
from mechanistic.serialize import model_from_json

__all__ = ["load_model"]


def load_model(path: str | Path, *, trusted: bool = False) -> Model:
    """Read ``path`` (``.json`` model or ``.py`` DSL module) into a :class:`Model`.

    Raises ``FileNotFoundError`` for a missing file and :class:`ModelError` (or its
    subclass ``SerializationError``) for anything wrong with the content, with a message
    that names the file, so the command line can print one line and exit.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return model_from_json(path.read_bytes())
        except ModelError as exc:
            raise type(exc)(f"{path}: {exc}") from None
    if suffix == ".py":
        source = path.read_text(encoding="utf-8", errors="replace")
        if trusted:
            return _exec_in_process(source, path)
        return _run_module(source, path)
    raise ModelError(f"{path}: a model is a .json file or a .py DSL module, got {suffix or 'no'} "
                     f"suffix")


def _run_module(source: str, path: Path) -> Model:
    """Run the module in the sandbox when the sandbox package is there; else in-process.

    The fallback exists only for checkouts without ``sandbox/`` (the package landed after
    this command line). With the sandbox present, a sandbox that cannot be opened is an
    error that says how to fix it, never a silent in-process run of untrusted code.
    """
    try:
        from sandbox.runner import run_model_module
    except ImportError:
        # NOTE: pre-sandbox fallback: the module is the user's own code, trusted.
        return _exec_in_process(source, path)
    from sandbox.spec import SandboxError

    try:
        result = run_model_module(source, path.name if _plain_name(path.name) else "model.py")
    except SandboxError as exc:
        raise ModelError(f"{path}: no sandbox to run the module in ({exc}); run "
                         f"'mmw sandbox doctor', or convert the module to model JSON") from None
    if not result.ok or result.model_json is None:
        error = result.error
        if error is None:
            raise ModelError(f"{path}: the module produced no model")
        where = f" (line {error.lineno})" if error.lineno else ""
        raise ModelError(f"{path}{where}: {error.type}: {error.message}")
    try:
        return model_from_json(result.model_json)
    except ModelError as exc:
        raise type(exc)(f"{path}: the sandbox returned an unusable model: {exc}") from None


def _plain_name(name: str) -> bool:
    return name.endswith(".py") and "/" not in name and not name.startswith("_mmw_")


def _exec_in_process(source: str, path: Path) -> Model:
    """Execute trusted module source here and pick the one ``Model`` among its globals."""
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ModelError(f"{path} (line {exc.lineno}): SyntaxError: {exc.msg}") from None
    namespace: dict[str, object] = {"__name__": "__mmw_module__", "__file__": str(path)}
    try:
        exec(code, namespace)
    except ModelError as exc:
        raise ModelError(f"{path}{_line_of(exc, path)}: {exc}") from None
    except Exception as exc:
        raise ModelError(f"{path}{_line_of(exc, path)}: {type(exc).__name__}: {exc}") from None
    found = {name: value for name, value in namespace.items() if isinstance(value, Model)}
    distinct = {id(v): v for v in found.values()}
    if not distinct:
        raise ModelError(f"{path}: the module declares no Model; build one with "
                         f"m = Model('name') and declare states, parameters and dynamics on it")
    if len(distinct) > 1:
        raise ModelError(f"{path}: the module declares {len(distinct)} Models "
                         f"({', '.join(sorted(found))}); a module must declare exactly one")
    return next(iter(distinct.values()))


def _line_of(exc: BaseException, path: Path) -> str:
    """' (line N)' for the innermost traceback frame inside the module, if any."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f" (line {frames[-1].lineno})" if frames else ""
