"""``mmw export``: a model or a run's best candidate as SBML, Antimony or a PEtab problem.

``SOURCE`` is a model file (JSON, DSL module, SBML, Antimony: whatever ``mmw show``
takes) or a run folder written by ``mmw model``. From a run, the chosen candidate (the
best, or ``--candidate``) is written with its fitted parameters and the task's known
inputs as schedules; PEtab needs a run, because a problem is a model *with* its data.
The run folder is read by the run's own untrusted-data readers (agent/fitted.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["export_command", "register"]


def _from_run(run: Path, candidate: str | None) -> tuple[Any, dict[str, float], dict[str, Any],
                                                         float, Any]:
    """Model, fitted parameters, known-input schedules, t0 and the fitted candidate."""
    from agent.fitted import load_fitted

    fitted = load_fitted(run, candidate)
    params = {k: float(v) for k, v in (fitted.fit.get("params") or {}).items()
              if v is not None and k in fitted.model.params_}
    return fitted.model, params, fitted.controls, float(fitted.fit["t0"]), fitted


def _shifted(controls: dict[str, Any], t0: float) -> dict[str, Any]:
    """Schedules in time since ``t0``: SBML and PEtab simulate from time 0."""
    from mechanistic.interventions import ControlSchedule

    return {n: ControlSchedule(tuple(t - t0 for t in s.times), s.values)
            for n, s in controls.items()}


def export_command(
    source: Annotated[Path, typer.Argument(
        help="A model file (.json, .py, .xml, .ant) or a run folder written by mmw "
             "model.")],
    sbml: Annotated[Path | None, typer.Option("--sbml", help="SBML file to write.")]
    = None,
    antimony: Annotated[Path | None, typer.Option(
        "--antimony", help="Antimony file to write.")] = None,
    petab: Annotated[Path | None, typer.Option(
        "--petab", help="Folder for the PEtab problem (SOURCE must be a run).")] = None,
    candidate: Annotated[str | None, typer.Option(
        "--candidate", help="Candidate id of a run (default: the best).")] = None,
) -> None:
    """Write a model as SBML or Antimony, or a run's best fit as a PEtab problem."""
    from workbench.cli import _console, _user_errors

    with _user_errors():
        if sbml is None and antimony is None and petab is None:
            raise ValueError("say what to write: --sbml OUT.xml, --antimony OUT.ant or "
                             "--petab DIR")
        console = _console()
        is_run = source.is_dir()
        if not is_run and (petab is not None or candidate is not None):
            raise ValueError(f"{source}: --petab and --candidate need a run folder "
                             "written by mmw model")
        if is_run:
            model, params, controls, t0, fitted = _from_run(source, candidate)
            schedules = _shifted(controls, t0)
            if t0 != 0:
                console.print(f"note: times are time since t0 = {t0:g} (SBML starts "
                              "at 0)", markup=False)
        else:
            from workbench.loading import FORMAT_SUFFIXES, import_model, load_model

            fitted, t0 = None, 0.0
            if source.suffix.lower() in FORMAT_SUFFIXES:
                imported = import_model(source)
                model, params, schedules = (imported.model, imported.values,
                                            imported.controls)
            else:
                model, params, schedules = load_model(source), {}, {}
        from mechanistic.files import write_atomic

        if sbml is not None:
            from mechanistic.formats.sbml_out import model_to_sbml

            write_atomic(sbml, model_to_sbml(model, params=params, controls=schedules))
            console.print(f"SBML: {sbml}", markup=False)
        if antimony is not None:
            from mechanistic.formats.antimony_text import model_to_antimony

            write_atomic(antimony, model_to_antimony(model, params=params,
                                                     controls=schedules))
            console.print(f"Antimony: {antimony}", markup=False)
        if petab is not None:
            from mechanistic.formats.petab_out import write_petab

            assert fitted is not None
            free = list(fitted.fit.get("free_params") or model.free_param_names)
            result = write_petab(petab, model, fitted.task.data, params=params, free=free,
                                 controls=controls, t0=t0,
                                 train_until=fitted.task.train_until)
            for note in result.notes:
                console.print(f"note: {note}", markup=False)
            console.print(f"PEtab: {result.files['yaml']} ({result.rows} measurements, "
                          f"candidate {fitted.candidate.id})", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``mmw export`` to the command line."""
    app.command("export")(export_command)
