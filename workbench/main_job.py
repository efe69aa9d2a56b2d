"""Fit a model to data and write what a person reviews; the example job built on it.

``mmw fit`` and ``mmw example`` share :func:`fit_and_report`: fit by maximum likelihood
on the training window, simulate the fitted model over the whole record, and write the
fit summary, the fitted parameters, a plot and a table. Nothing here prints: the command
line decides how to show progress and results, and tests call these functions directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mechanistic.data import CSV_LIMIT_VARIABLES, CsvLimits, ObservedData, load_csv
from mechanistic.errors import DataError
from mechanistic.files import json_data, write_atomic
from mechanistic.model import Model
from mechanistic.scores import normalised_rmse, series_scale

__all__ = [
    "EXAMPLE_TRAIN_UNTIL",
    "ExampleReport",
    "FitReport",
    "check_fit_inputs",
    "check_integration_grid",
    "example_paths",
    "fit_and_report",
    "fit_config",
    "run_example",
    "validation_errors",
]

EXAMPLE_TRAIN_UNTIL = 1915.0
_REPO = Path(__file__).resolve().parents[1]

# FitConfig option names this command line maps its flags onto, in order of preference.
@dataclass(frozen=True)
class FitReport:
    """What ``fit_and_report`` produced: headline numbers and the files written."""

    out_dir: Path
    params: dict[str, float]
    loglik: float
    aic: float
    bic: float
    train_until: float | None
    validation: dict[str, dict[str, float]]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def validation_nrmse(self) -> float | None:
        """Mean normalised RMSE over observables on the validation window (None if none)."""
        values = [v["nrmse"] for v in self.validation.values() if math.isfinite(v["nrmse"])]
        return float(np.mean(values)) if values else None


@dataclass(frozen=True)
class ExampleReport:
    """The example job: a simulation at the prior's typical values, then a fit."""

    out_dir: Path
    simulation_csv: Path
    simulation_png: Path
    model_json: Path
    fit: FitReport


def fit_config(starts: int | None = None, seed: int | None = None,
               steps: int | None = None) -> Any:
    """A ``FitConfig`` from the command line's options; FitConfig's own defaults (and
    its validation) hold for anything not given."""
    from mechanistic.fit import FitConfig

    given = {"starts": starts, "seed": seed, "adam_steps": steps}
    return FitConfig(**{k: v for k, v in given.items() if v is not None})


def validation_errors(
    t: np.ndarray, data: dict[str, np.ndarray], fitted: dict[str, np.ndarray],
    train_until: float | None,
) -> dict[str, dict[str, float]]:
    """RMSE per observable on rows after ``train_until``; NRMSE divides it by the spread
    (standard deviation) of the validation data, as the fitter's residual summaries do.

    Computed here from the fitted trajectory rather than taken from the fitter, so the
    number printed, plotted and written to ``fit.json`` is the same by construction.
    """
    if train_until is None:
        return {}
    out: dict[str, dict[str, float]] = {}
    for name, y in data.items():
        mask = (t > train_until) & np.isfinite(y) & np.isfinite(fitted[name])
        if not mask.any():
            continue
        resid = fitted[name][mask] - y[mask]
        rmse = float(np.sqrt(np.mean(resid**2)))
        out[name] = {"rmse": rmse, "nrmse": normalised_rmse(rmse, series_scale(y[mask])),
                     "n": int(mask.sum())}
    return out


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_fit_inputs(model: Model, data: ObservedData, train_until: float | None) -> None:
    """Fail fast (DataError) on data the fit cannot use, before any slow work starts."""
    data.check_columns(model.observable_names)
    if train_until is not None:
        if not math.isfinite(train_until):
            raise DataError(f"--train-until must be a finite time, got {train_until}")
        data.split(train_until)  # raises a DataError naming the problem if nothing trains
    check_integration_grid(data, train_until)


def check_integration_grid(data: ObservedData, train_until: float | None,
                           limits: CsvLimits | None = None) -> None:
    """Refuse (DataError) a training window whose RK4 grid is larger than the row limit's.

    The fitter steps at a quarter of the training rows' median spacing over their whole
    span, and its memory grows with every step (the autograd graph holds each one: about
    30 KB a step for a one-state model). So four rows at 0, 1e-6, 2e-6 and 100 ask for
    4 * 10**8 steps and filled 4.5 GB in a minute. A window is accepted if it takes no more
    steps than evenly spaced data at the row limit would (4 * max_rows), so the memory
    measured at the row limit bounds every CSV that loads, and MMW_CSV_MAX_ROWS is the
    one setting that raises both.
    """
    from mechanistic.fit import _auto_solver  # the fitter's own step rule, not a copy

    limits = CsvLimits.from_env() if limits is None else limits
    train = data.split(train_until)[0] if train_until is not None else data
    if len(train) < 2:
        return
    t = train.t
    dt = _auto_solver(t, float(t[0])).dt
    steps = (float(t[-1]) - float(t[0])) / dt
    budget = 4 * limits.max_rows
    if not steps <= 1.01 * budget:  # 1%: times rounded in the file shift the median a little
        raise DataError(
            f"{data.source or 'data'}: the training rows ({data.time_name} {t[0]:g} to "
            f"{t[-1]:g}) have a median spacing of {4 * dt:g}, so the fit would take "
            f"{steps:.3g} solver steps (a quarter of the median spacing each), more than the "
            f"{budget} of evenly spaced data at the limit of {limits.max_rows} rows; thin out "
            f"the densely sampled stretch, or set {CSV_LIMIT_VARIABLES['max_rows']} to raise "
            f"the limit")


def fit_and_report(
    model: Model,
    data: ObservedData,
    out_dir: str | Path,
    *,
    train_until: float | None = None,
    config: Any = None,
) -> FitReport:
    """Fit ``model`` to ``data`` (training rows only) and write fit.json,
    fitted_params.json, fit.png and table.csv into ``out_dir``."""
    import pandas as pd

    from mechanistic import fit as fitting
    from workbench.plots import plot_fit

    check_fit_inputs(model, data, train_until)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kwargs = {} if config is None else {"config": config}
    result = fitting.fit_model(model, data, train_until=train_until, **kwargs)
    params = {k: float(v) for k, v in result.params.items()}

    t0, t1 = float(data.t[0]), float(data.t[-1])
    fine = np.linspace(t0, t1, max(200, 8 * len(data)))
    grid = np.unique(np.concatenate([fine, data.t]))
    sim = result.simulate(grid)
    fitted_all = {n: sim.observable(n)[0].detach().cpu().numpy() for n in model.observable_names}
    at_data = np.searchsorted(grid, data.t)
    fitted = {n: v[at_data] for n, v in fitted_all.items() if n in data.values}
    values = {n: np.asarray(v, dtype=float) for n, v in data.values.items()}
    validation = validation_errors(data.t, values, fitted, train_until)

    table = {data.time_name: data.t}
    if train_until is not None:
        table["split"] = np.where(data.t <= train_until, "train", "validation")
    for name, y in values.items():
        table[name] = y
        table[f"{name}_fit"] = fitted[name]
        table[f"{name}_residual"] = y - fitted[name]
    files = {"table": out / "table.csv", "plot": out / "fit.png",
             "fit": out / "fit.json", "params": out / "fitted_params.json"}
    pd.DataFrame(table).to_csv(files["table"], index=False)
    plot_fit(files["plot"], data.t, values, grid, fitted_all, train_until=train_until,
             validation={k: v["rmse"] for k, v in validation.items()},
             title=f"{model.name}: fit", time_label=f"{data.time_name} ({model.time_unit})")
    write_atomic(files["params"], json.dumps(json_data(params), indent=2, allow_nan=False) + "\n")
    summary = {
        "model": model.name, "data": data.source, "train_until": train_until,
        "params": params, "loglik": _number(result.log_likelihood), "aic": _number(result.aic),
        "bic": _number(result.bic), "validation": validation,
        "files": {k: p.name for k, p in files.items()}, "result": result.to_dict(),
    }
    write_atomic(files["fit"], json.dumps(json_data(summary), indent=2, allow_nan=False) + "\n")
    return FitReport(out, params, summary["loglik"], summary["aic"], summary["bic"],
                     train_until, validation, files)


def example_paths() -> tuple[Path, Path]:
    """The shipped hare-lynx model and data (present in a source checkout)."""
    model = _REPO / "examples" / "models" / "hare_lynx.py"
    data = _REPO / "examples" / "data" / "hare_lynx.csv"
    for path in (model, data):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: example file not found; run from a source "
                                    f"checkout of mmw or pass --model and --data")
    return model, data


def run_example(
    out_dir: str | Path,
    *,
    model_path: Path | None = None,
    data_path: Path | None = None,
    train_until: float = EXAMPLE_TRAIN_UNTIL,
    config: Any = None,
    stage: Callable[[str], None] = lambda _msg: None,
) -> ExampleReport:
    """Simulate the hare-lynx model at its priors' typical values, then fit it on the
    years up to ``train_until`` and validate on the rest.

    The module runs in the sandbox like any other (``mmw sandbox doctor`` says which).
    """
    import pandas as pd

    from mechanistic.simulate import RK4, compile_model
    from workbench.loading import load_model
    from workbench.plots import plot_trajectories

    if model_path is None or data_path is None:
        default_model, default_data = example_paths()
        model_path = model_path or default_model
        data_path = data_path or default_data
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    stage(f"loading {model_path.name} and {data_path.name}")
    model = load_model(model_path)
    data = load_csv(data_path)
    check_fit_inputs(model, data, train_until)  # before the simulation, which spans the data
    model_json = out / "model.json"
    model_json.write_text(model.to_json())

    stage("simulating at the priors' typical values")
    typical = {n: p.prior.typical for n, p in model.params_.items()}
    grid = np.linspace(float(data.t[0]), float(data.t[-1]), 8 * len(data))
    sim = compile_model(model).simulate(typical, grid, solver=RK4(0.05))
    frame = sim.frame(0)
    frame = frame.rename(columns={"t": data.time_name})
    sim_csv = out / "simulation.csv"
    pd.DataFrame(frame).to_csv(sim_csv, index=False)
    sim_png = plot_trajectories(
        out / "simulation.png", grid,
        {n: sim.observable(n)[0].detach().numpy() for n in model.observable_names},
        title=f"{model.name}: priors' typical values (before fitting)",
        time_label=f"{data.time_name} ({model.time_unit})")

    stage(f"fitting on {data.time_name} <= {train_until:g}, validating after")
    report = fit_and_report(model, data, out, train_until=train_until, config=config)
    return ExampleReport(out, sim_csv, sim_png, model_json, report)
