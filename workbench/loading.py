"""Load a model from what a user hands the command line: model JSON, a DSL module, or an
SBML (``.xml``, ``.sbml``) or Antimony (``.ant``) file.

JSON, SBML and Antimony are data: JSON is parsed with :func:`mechanistic.model_from_json`,
which never evaluates anything. A DSL module (``.py``) is code, and code runs only in the
sandbox (docs/architecture.md): the module runs there and only its model JSON comes back.
There is no in-process path. SBML and Antimony are parsed under limits by
:mod:`mechanistic.formats` (no text from the file is evaluated); what the model language
cannot express is one error naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mechanistic.errors import ModelError
from mechanistic.model import Model
from mechanistic.serialize import MODEL_JSON_LIMITS, model_from_json
from mechanistic.untrusted import read_regular_file

__all__ = ["FORMAT_SUFFIXES", "MODULE_MAX_BYTES", "import_model", "load_model"]

FORMAT_SUFFIXES = (".xml", ".sbml", ".ant")

# A DSL module is a page or two of Python; a megabyte is far past any real one, and the
# sandbox has to hold the source too. Model JSON gets the bound model_from_json reads it under.
MODULE_MAX_BYTES = 1024 * 1024


def load_model(path: str | Path) -> Model:
    """Read ``path`` (``.json`` model, ``.py`` DSL module, ``.xml``/``.sbml`` SBML or ``.ant``
    Antimony) into a :class:`Model`.

    Raises ``FileNotFoundError`` for a missing file and :class:`ModelError` (or its
    subclass ``SerializationError``) for anything wrong with the content, with a message
    that names the file, so the command line can print one line and exit.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    what = f"model file {path}"
    if suffix == ".json":
        # Only the read is bounded here (a regular file, at most MODEL_JSON_LIMITS.max_bytes, so
        # a FIFO or /dev/zero is an error, not a hang); model_from_json checks the content.
        text = read_regular_file(path, what, MODEL_JSON_LIMITS.max_bytes)
        try:
            return model_from_json(text)
        except ModelError as exc:
            raise type(exc)(f"{path}: {exc}") from None
    if suffix == ".py":
        source = read_regular_file(path, what, MODULE_MAX_BYTES)
        return _run_module(source.decode("utf-8", errors="replace"), path)
    if suffix in FORMAT_SUFFIXES:
        return import_model(path).model
    raise ModelError(f"{path}: a model is a .json file, a .py DSL module, an SBML file (.xml, "
                     f".sbml) or an Antimony file (.ant), got {suffix or 'no'} suffix")


def import_model(path: str | Path) -> Any:
    """An SBML or Antimony file as a :class:`mechanistic.formats.sbml_in.ImportedModel`: the
    model with the parameter values, doses and schedules the file holds."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    if path.suffix.lower() == ".ant":
        from mechanistic.formats.antimony_text import read_antimony

        return read_antimony(path)
    if path.suffix.lower() in (".xml", ".sbml"):
        from mechanistic.formats.sbml_in import read_sbml

        return read_sbml(path)
    raise ModelError(f"{path}: an imported model is an SBML (.xml, .sbml) or Antimony (.ant) "
                     "file")


def _run_module(source: str, path: Path) -> Model:
    """Run the module in the sandbox; a sandbox that cannot be opened is an error that says
    how to fix it, never a silent in-process run."""
    from sandbox.runner import run_model_module
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
