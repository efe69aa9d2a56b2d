"""Antimony, the human-readable form of SBML, out and in through the ``antimony`` package.

Out: the model is written as SBML (:mod:`mechanistic.formats.sbml_out`) and libAntimony
prints that as Antimony text. Antimony has no place for annotations, so priors and noise
do not travel in it (the SBML form keeps them); libAntimony also renames ids that are its
own reserved words (``gamma`` becomes ``gamma_``).

In: the text (untrusted) is bounded in size and bracket depth before libAntimony's parser
sees it, converted to SBML by libAntimony, and imported like any SBML file. A syntax error
is one :class:`AntimonyError` with libAntimony's own line number and message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mechanistic.errors import ModelError
from mechanistic.formats.sbml_in import ImportedModel, sbml_to_model
from mechanistic.formats.sbml_out import model_to_sbml
from mechanistic.interventions import ControlSchedule, Intervention
from mechanistic.model import Model
from mechanistic.untrusted import read_regular_file

__all__ = ["MAX_BYTES", "AntimonyError", "antimony_to_model", "antimony_to_sbml",
           "model_to_antimony", "read_antimony"]

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100  # nesting of brackets: the C++ parser recurses on it


class AntimonyError(ModelError):
    """Antimony text libAntimony cannot read, or that breaks a limit."""


def _library():  # type: ignore[no-untyped-def]
    import antimony

    antimony.clearPreviousLoads()
    return antimony


def model_to_antimony(model: Model, *, params: Mapping[str, float] | None = None,
                      controls: Mapping[str, ControlSchedule] | None = None,
                      doses: Sequence[Intervention] = (), t0: float = 0.0) -> str:
    """The Antimony text of ``model`` (arguments as for :func:`model_to_sbml`)."""
    sbml = model_to_sbml(model, params=params, controls=controls, doses=doses, t0=t0)
    lib = _library()
    if lib.loadSBMLString(sbml) < 0:
        raise AntimonyError(f"libAntimony could not read mmw's SBML: {lib.getLastError()}")
    text = lib.getAntimonyString(None)
    lib.clearPreviousLoads()
    return text


def antimony_to_sbml(text: str | bytes, source: str = "Antimony") -> str:
    """SBML text for Antimony ``text``; AntimonyError (one line) on a syntax error."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if len(raw) > MAX_BYTES:
        raise AntimonyError(f"{source}: larger than {MAX_BYTES} bytes")
    if b"\0" in raw:
        raise AntimonyError(f"{source}: holds a NUL byte; Antimony is text")
    depth = deepest = 0
    for byte in raw:
        if byte in b"([{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b")]}":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise AntimonyError(f"{source}: brackets nested more than {MAX_DEPTH} deep")
    lib = _library()
    if lib.loadAntimonyString(raw.decode("utf-8", errors="replace")) < 0:
        message = " ".join(str(lib.getLastError()).split())
        lib.clearPreviousLoads()
        raise AntimonyError(f"{source}: {message[:500]}")
    name = lib.getMainModuleName()
    sbml = lib.getSBMLString(name) if name else ""
    lib.clearPreviousLoads()
    if not sbml:
        raise AntimonyError(f"{source}: no model in the text")
    return sbml


def antimony_to_model(text: str | bytes, source: str = "Antimony") -> ImportedModel:
    """Import Antimony text as a model (through SBML)."""
    return sbml_to_model(antimony_to_sbml(text, source), source)


def read_antimony(path: str | Path) -> ImportedModel:
    """An Antimony file: a regular file of at most MAX_BYTES."""
    data = read_regular_file(path, f"Antimony file {path}", MAX_BYTES)
    return antimony_to_model(data, str(path))
