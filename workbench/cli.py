"""The ``mmw`` command line: show, simulate and fit a model, and run the example job.

Every command turns bad input into one red ``error: ...`` line and exit status 2: a
scientist who mistyped a column name needs the name, not a traceback. Heavy modules
(torch, pandas, matplotlib) are imported inside the commands so ``mmw --help`` is quick
and importing this module has no side effects beyond defining the commands.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from mechanistic.errors import DataError, ModelError, SerializationError

app = typer.Typer(
    name="mmw",
    help="mmw, the mechanistic modelling workbench: from a description and data to "
         "reviewed, fitted mechanistic simulators (mmw model), and the tools around them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2
MAX_SOLVER_STEPS = 10_000_000  # mmw simulate: a step count the host answers in minutes


@app.callback()
def _load_plugins() -> None:
    """Plugins (MMW_PLUGINS, the mmw.plugins entry points) register their parts before any
    command looks a name up; one that cannot be imported is one error line."""
    from mechanistic.plugins import PluginError, load_plugins

    try:
        load_plugins()
    except PluginError as exc:
        raise _fail(str(exc)) from None


ModelArg = Annotated[Path, typer.Argument(
    help="Model: a .json model file, a .py DSL module, or an SBML (.xml) or Antimony (.ant) "
         "file.")]


class InputError(ValueError):
    """A command-line value is malformed (a --t spec, a params file's shape)."""


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False, emoji=False)


def _fail(message: str) -> typer.Exit:
    from rich.markup import escape

    first = " ".join(str(message).split())
    _console(stderr=True).print(f"[bold red]error:[/bold red] {escape(first)}")
    return typer.Exit(EXIT_BAD_INPUT)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors that mean 'your input is wrong' into one line and exit status 2."""
    try:
        yield
    except json.JSONDecodeError as exc:  # before ValueError, of which it is a subclass
        raise _fail(f"not valid JSON: {exc}") from None
    except (ModelError, DataError, SerializationError, InputError, ValueError) as exc:
        # ValueError: validated configs and tasks (FitConfig, SearchConfig, Task) say what
        # is wrong with a value the user gave.
        raise _fail(str(exc)) from None
    except FileNotFoundError as exc:
        name = exc.filename if exc.filename else None
        raise _fail(f"{name}: no such file" if name else str(exc)) from None
    except IsADirectoryError as exc:
        raise _fail(f"{exc.filename}: is a directory, expected a file") from None


# --------------------------------------------------------------------------- parsing
MAX_OUTPUT_TIMES = 1_000_001  # a grid of output times: each is a row of every trajectory


def parse_time_spec(spec: str) -> Any:
    """``START:STOP:STEP`` → output times from START to STOP inclusive (numpy array)."""
    parts = spec.split(":")
    if len(parts) != 3:
        raise InputError(f"--t {spec!r} must be START:STOP:STEP, e.g. 0:100:1")
    try:
        start, stop, step = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"--t {spec!r}: START, STOP and STEP must be numbers") from None
    return time_grid(start, stop, step, f"--t {spec!r}", ("START", "STOP", "STEP"))


def time_grid(start: float, stop: float, step: float, what: str,
              names: tuple[str, str, str] = ("start", "stop", "step")) -> Any:
    """Output times from ``start`` to ``stop`` inclusive, ``step`` apart (numpy array), or
    an InputError naming ``what``: the values must be finite, the step positive and the
    grid at most MAX_OUTPUT_TIMES long, so a typo of three zeros is an error, not an
    allocation of terabytes."""
    import numpy as np

    first, last, gap = names
    if not all(math.isfinite(x) for x in (start, stop, step)):
        raise InputError(f"{what}: {first}, {last} and {gap} must be finite")
    if step <= 0:
        raise InputError(f"{what}: {gap} must be positive")
    if stop <= start:
        raise InputError(f"{what}: {last} must be after {first}")
    count = (stop - start) / step + 1  # may overflow to inf: compared, never floored first
    if not count <= MAX_OUTPUT_TIMES:
        raise InputError(f"{what} asks for {count:,.0f} output times; at most "
                         f"{MAX_OUTPUT_TIMES:,} (use a larger {gap})")
    n = math.floor((stop - start) / step + 1e-9)
    return start + step * np.arange(n + 1)


PARAMS_MAX_BYTES = 1024 * 1024  # a params file is {name: number}; a megabyte is thousands


def read_params(path: Path, model: Any) -> dict[str, float]:
    """A params JSON object {name: number}; every free parameter must be given.

    The file is read as untrusted data (mechanistic.untrusted): a regular file of at most
    PARAMS_MAX_BYTES, duplicate keys, 400-digit integers, NaN and deep nesting refused,
    each as one error naming the file, never an OverflowError or RecursionError.
    """
    from mechanistic.untrusted import JsonLimits, parse_json, read_regular_file

    what = f"--params {path}"
    data = parse_json(read_regular_file(path, what, PARAMS_MAX_BYTES), what,
                      JsonLimits(max_bytes=PARAMS_MAX_BYTES, max_depth=2, max_string=1000))
    if not isinstance(data, dict):
        raise InputError(f"{path}: parameters must be a JSON object {{name: value}}")
    unknown = sorted(set(data) - set(model.param_names))
    if unknown:
        raise InputError(f"{path}: unknown parameter(s) {unknown[:10]}; the model has "
                         f"{model.param_names}")
    bad = [k for k, v in data.items()
           if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)]
    if bad:
        raise InputError(f"{path}: parameter(s) {bad} must be finite numbers, as in "
                         f'{{"{bad[0]}": 0.5}}')
    missing = [n for n in model.free_param_names if n not in data]
    if missing:
        raise InputError(f"{path}: missing value(s) for parameter(s) {missing}")
    return {k: float(v) for k, v in data.items()}


# --------------------------------------------------------------------------- show
@app.command()
def show(
    model_path: ModelArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the review as JSON.")] = False,
    antimony: Annotated[bool, typer.Option(
        "--antimony", help="Also print the model in Antimony, SBML's human-readable form.")]
    = False,
) -> None:
    """Show a model's equations, parameter table and structural checks."""
    from mechanistic.checks import run_checks_bounded
    from mechanistic.review import equations_text, parameter_table, review_dict
    from workbench.loading import load_model

    with _user_errors():
        model = load_model(model_path)
        checks = run_checks_bounded(model)  # HostLimitError is a ValueError: one line
    if as_json:
        typer.echo(json.dumps(review_dict(model, checks), indent=2))
        return
    from rich.panel import Panel
    from rich.table import Table

    out = _console()
    out.print(Panel(equations_text(model), title=f"{model.name} (time in {model.time_unit})",
                    expand=False), markup=False)
    params = Table(title="parameters", title_justify="left")
    for col in ("name", "prior", "support", "unit", "fixed", "doc"):
        params.add_column(col, overflow="fold")
    for row in parameter_table(model):
        params.add_row(row["name"], row["prior"], row["support"], row["unit"],
                       "yes" if row["fixed"] else "", row["doc"])
    out.print(params)
    table = Table(title="checks", title_justify="left")
    for col in ("", "check", "message"):
        table.add_column(col, overflow="fold")
    for r in checks:
        mark = ("[green]ok[/green]" if r.passed else
                "[red]FAIL[/red]" if r.severity == "error" else "[yellow]warn[/yellow]")
        table.add_row(mark, r.name, r.message)
    out.print(table)
    if antimony:
        from mechanistic.formats.antimony_text import model_to_antimony

        with _user_errors():
            text = model_to_antimony(model)
        out.print(Panel(text.rstrip(), title="Antimony", expand=False), markup=False)


# --------------------------------------------------------------------------- simulate
@app.command()
def simulate(
    model_path: ModelArg,
    params: Annotated[Path, typer.Option("--params", help="JSON object {parameter: value}.")],
    t: Annotated[str, typer.Option("--t", help="Output times START:STOP:STEP (inclusive).")],
    intervention: Annotated[
        Path | None, typer.Option("--intervention", help="Interventions JSON file.")] = None,
    solver: Annotated[str, typer.Option("--solver", help="rk4, dopri5 or any registered "
                                        "solver kind.")] = "rk4",
    dt: Annotated[
        float | None, typer.Option("--dt", help="RK4 step (default: STEP/10).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the trajectory CSV.")] = None,
) -> None:
    """Simulate a model for one parameter set; write time, states and observables as CSV."""
    with _user_errors():
        from dataclasses import fields

        from mechanistic.interventions import load_interventions
        from mechanistic.simulate import Status, compile_model
        from mechanistic.solvers import SOLVERS
        from workbench.loading import load_model

        grid = parse_time_spec(t)
        kinds = {kind.lower(): cls for kind, cls in SOLVERS.items()}
        if solver.lower() not in kinds:
            raise InputError(f"--solver {solver!r}: use one of {', '.join(kinds)}")
        step = float(grid[1] - grid[0]) if len(grid) > 1 else 1.0
        if dt is not None and not (math.isfinite(dt) and dt > 0):
            raise InputError(f"--dt must be positive, got {dt}")
        span = float(grid[-1] - grid[0]) if len(grid) > 1 else 0.0
        if dt is not None and span / dt > MAX_SOLVER_STEPS:
            raise InputError(f"--dt {dt:g} over {span:g} time units is more than "
                             f"{MAX_SOLVER_STEPS:,} solver steps; use a larger --dt")
        model = load_model(model_path)
        values = read_params(params, model)
        items = load_interventions(intervention) if intervention else []
        cls = kinds[solver.lower()]  # a fixed-step solver takes --dt, an adaptive one not
        stepped = "dt" in {f.name for f in fields(cls)}  # type: ignore[arg-type]
        strategy = cls(dt=dt or step / 10) if stepped else cls()  # type: ignore[call-arg]
        sim = compile_model(model).simulate(values, grid, solver=strategy, interventions=items)
    frame = sim.frame(0)
    status = Status(int(sim.status[0]))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
    _print_simulation_summary(model.name, frame, status, solver, out)


def _print_simulation_summary(name: str, frame: Any, status: Any, solver: str,
                              out: Path | None) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"{name}: {len(frame)} output times, solver {solver}",
                  title_justify="left")
    for col in ("column", "start", "end", "min", "max"):
        table.add_column(col, justify="left" if col == "column" else "right")
    for col in frame.columns[1:]:
        series = frame[col]
        table.add_row(col, *(f"{x:.6g}" for x in (series.iloc[0], series.iloc[-1],
                                                   series.min(), series.max())))
    console.print(table)
    if status.name != "OK":
        console.print(f"[yellow]warning:[/yellow] simulation status {status.name}: values are "
                      f"NaN from the point where it failed")
    if out is not None:
        console.print(f"wrote {out}", markup=False)


# --------------------------------------------------------------------------- fit
@app.command()
def fit(
    model_path: ModelArg,
    data_path: Annotated[Path, typer.Argument(help="Observations CSV: a time column and one "
                                                   "column per observable.")],
    train_until: Annotated[float | None, typer.Option(
        "--train-until", help="Fit on rows with time <= T; validate on the rest.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("fit-out"),
    starts: Annotated[int | None, typer.Option("--starts", min=1,
                                               help="Multi-start count.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1,
                                              help="Optimiser steps per start.")] = None,
) -> None:
    """Fit a model to data by maximum likelihood (multi-start).

    Writes fit.json, fitted_params.json, fit.png and table.csv into --out.
    """
    with _user_errors():
        from mechanistic.data import load_csv
        from workbench.loading import load_model
        from workbench.main_job import check_fit_inputs, fit_and_report, fit_config

        model = load_model(model_path)
        data = load_csv(data_path)
        check_fit_inputs(model, data, train_until)
        config = fit_config(starts, seed, steps)
        with _spinner(f"fitting {model.name} to {data_path.name}"):
            report = fit_and_report(model, data, out, train_until=train_until, config=config)
    print_fit_report(report)


@contextmanager
def _spinner(message: str) -> Iterator[None]:
    """A transient spinner with elapsed time: fits take seconds to minutes."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = _console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as progress:
        progress.add_task(message, total=None)
        yield


def print_fit_report(report: Any) -> None:
    """Fitted parameters, log-likelihood, AIC/BIC, validation error and the files written."""
    from rich.table import Table

    console = _console()
    table = Table(title="fitted parameters", title_justify="left")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for name, value in report.params.items():
        table.add_row(name, f"{value:.6g}")
    console.print(table)
    console.print(f"log-likelihood {report.loglik:.4f}   AIC {report.aic:.3f}   "
                  f"BIC {report.bic:.3f}", markup=False)
    if report.validation:
        for name, v in report.validation.items():
            console.print(f"validation {name}: RMSE {v['rmse']:.4g}, NRMSE {v['nrmse']:.3f} "
                          f"({v['n']} points after {report.train_until:g})", markup=False)
    elif report.train_until is not None:
        console.print("no validation rows after --train-until", markup=False)
    for label, path in report.files.items():
        console.print(f"{label:>7}: {path}", markup=False)


# --------------------------------------------------------------------------- example
@app.command()
def example(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/example"),
    starts: Annotated[int | None, typer.Option("--starts", min=1,
                                               help="Multi-start count.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1,
                                              help="Optimiser steps per start.")] = None,
    model_path: Annotated[Path | None, typer.Option(
        "--model", help="Model instead of examples/models/hare_lynx.py.")] = None,
    data_path: Annotated[Path | None, typer.Option(
        "--data", help="Data instead of examples/data/hare_lynx.csv.")] = None,
    train_until: Annotated[float, typer.Option(
        "--train-until", help="Last training year.")] = 1915.0,
) -> None:
    """Quick job without the agent: simulate and fit the hare-lynx example module.

    Lotka-Volterra on the Hudson's Bay pelt records, trained on 1845-1915 and validated
    on 1916-1935.
    """
    with _user_errors():
        from workbench.main_job import fit_config, run_example

        config = fit_config(starts, seed, steps)
        console = _console(stderr=True)
        with _spinner("hare-lynx example"):
            report = run_example(out, model_path=model_path, data_path=data_path,
                                 train_until=train_until, config=config,
                                 stage=lambda msg: console.print(f"- {msg}", markup=False))
    print_fit_report(report.fit)
    console = _console()
    console.print(f"simulation: {report.simulation_csv}, {report.simulation_png}", markup=False)
    console.print(f"results in {report.out_dir}/: plot {report.fit.files['plot'].name}, "
                  f"table {report.fit.files['table'].name}", markup=False)


# --------------------------------------------------------------------- command groups
def _register_groups() -> None:
    """Add each command group's commands (``workbench/commands_<area>.py``, whose
    ``register(app)`` attaches its module-level functions), in the order ``mmw --help``
    lists them. The groups import this module's helpers when a command runs, so they are
    imported here, once those helpers exist."""
    from workbench import (
        commands_agent,
        commands_bench,
        commands_export,
        commands_review,
        commands_sandbox,
        commands_sgnn,
    )

    for group in (commands_sandbox, commands_agent, commands_review, commands_sgnn,
                  commands_bench, commands_export):
        group.register(app)


_register_groups()


def main() -> None:  # pragma: no cover - console entry point convenience
    app()
