"""The calls behind ``import mmw``: each mirrors a command and returns pandas objects.

=================================  ======================================================
``mmw.load_model(path)``           ``mmw show`` (JSON, DSL module in the sandbox, SBML, Antimony)
``mmw.fit(model, data, ...)``      ``mmw fit``: a :class:`Fit` (parameters, table, plot)
``mmw.model(describe, data, out)`` ``mmw model``: the agent's search; a :class:`Run`
``mmw.load_run(path)``             a run folder, read as untrusted data (agent/fitted.py)
``run.forecast(until)``            ``mmw predict``: a DataFrame of bands
``run.counterfactual(...)``        ``mmw counterfactual``: baseline and intervened bands
``mmw.to_sbml / to_antimony``      ``mmw export --sbml / --antimony``
=================================  ======================================================

Fits and runs render in Jupyter (``_repr_html_``): equations, a parameter table, the
ranked candidates and the fit plot as an inline PNG. Every module this needs is imported
inside the call, so ``import mmw`` stays quick and does nothing.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from mechanistic.model import Model

__all__ = ["Fit", "Run", "counterfactual", "fit", "forecast", "from_sbml", "load_data",
           "load_model", "load_run", "model", "to_antimony", "to_sbml"]


# ------------------------------------------------------------------------------ models
def load_model(path: str | Path) -> Model:
    """A model file, as ``mmw show`` reads it: ``.json``, ``.py`` (run in the sandbox),
    ``.xml``/``.sbml`` or ``.ant``."""
    from workbench.loading import load_model as _load

    return _load(path)


def from_sbml(path: str | Path) -> Any:
    """An SBML or Antimony file with what it holds beyond the model (``.values``,
    ``.doses``, ``.controls``, ``.renamed``, ``.notes``)."""
    from workbench.loading import import_model

    return import_model(path)


def to_sbml(model: Model, path: str | Path | None = None, **options: Any) -> str:
    """The SBML text of ``model`` (options as ``model_to_sbml``), written to ``path`` if
    given."""
    from mechanistic.formats.sbml_out import model_to_sbml

    text = model_to_sbml(model, **options)
    if path is not None:
        Path(path).write_text(text)
    return text


def to_antimony(model: Model, path: str | Path | None = None, **options: Any) -> str:
    """The Antimony text of ``model``, written to ``path`` if given."""
    from mechanistic.formats.antimony_text import model_to_antimony

    text = model_to_antimony(model, **options)
    if path is not None:
        Path(path).write_text(text)
    return text


def load_data(data: Any, time_column: str | None = None) -> Any:
    """Observations: a CSV path (read as ``mmw fit`` reads it), a DataFrame (its time
    column named or first), or ``ObservedData`` as it is."""
    from mechanistic.data import ObservedData, load_csv

    if isinstance(data, ObservedData):
        return data
    if isinstance(data, str | Path):
        return load_csv(data, time_column)
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        name = time_column or str(data.columns[0])
        values = {str(c): data[c].to_numpy(dtype=float) for c in data.columns if c != name}
        return ObservedData(data[name].to_numpy(dtype=float), values, time_name=name,
                            source="DataFrame")
    raise TypeError(f"data must be a CSV path, a DataFrame or ObservedData, got "
                    f"{type(data).__name__}")


# ------------------------------------------------------------------------------ plots
def _png(path: Path) -> str:
    return "<img alt='fit' src='data:image/png;base64," + \
        base64.b64encode(path.read_bytes()).decode("ascii") + "'/>"


def _frame_html(frame: Any, max_rows: int = 30) -> str:
    return str(frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                            escape=True))


# ------------------------------------------------------------------------------ fit
@dataclass
class Fit:
    """A model fitted to data (``mmw fit``): the fit result with tables and a plot."""

    model: Model
    data: Any
    result: Any
    train_until: float | None = None

    @property
    def params(self) -> Any:
        """The fitted parameters (a pandas Series)."""
        import pandas as pd

        return pd.Series({k: float(v) for k, v in self.result.params.items()}, name="fitted")

    def simulate(self, t: Sequence[float] | None = None) -> Any:
        """States and observables of the fitted model on ``t`` (default: a fine grid over
        the data), as a DataFrame."""
        import numpy as np

        grid = np.asarray(t, dtype=float) if t is not None else np.unique(np.concatenate(
            [np.linspace(self.data.t[0], self.data.t[-1], 200), self.data.t]))
        return self.result.simulate(grid).frame(0)

    def forecast(self, until: float, step: float | None = None) -> Any:
        """The fitted trajectory from the data start to ``until`` (no bands; a run's
        :meth:`Run.forecast` has them)."""
        import numpy as np

        t = self.data.t
        step = step or (float(np.median(np.diff(t))) if len(t) > 1 else 1.0)
        return self.simulate(np.arange(float(t[0]), until + step / 2, step))

    def table(self) -> Any:
        """Data, fitted values and residuals at the data times (``table.csv``)."""
        import numpy as np

        sim = self.result.simulate(self.data.t)
        out = {self.data.time_name: self.data.t}
        for name, y in self.data.values.items():
            if name in self.model.observable_names:
                fitted = sim.observable(name)[0].detach().numpy()
                out[name] = np.asarray(y, dtype=float)
                out[f"{name}_fit"] = fitted
                out[f"{name}_residual"] = out[name] - fitted
        import pandas as pd

        return pd.DataFrame(out)

    def plot(self, path: str | Path) -> Path:
        """fit.png: data points, fitted curves, the train/validation split."""
        from workbench.plots import plot_fit

        frame = self.simulate()
        fitted = {n: frame[n if n not in self.model.states_ else f"{n}_obs"].to_numpy()
                  for n in self.model.observable_names}
        values = {n: v for n, v in self.data.values.items() if n in fitted}
        return plot_fit(path, self.data.t, values, frame["t"].to_numpy(), fitted,
                        train_until=self.train_until, title=f"{self.model.name}: fit",
                        time_label=self.data.time_name)

    def _repr_html_(self) -> str:
        import pandas as pd

        from mechanistic.formats.notebook import model_html

        with tempfile.TemporaryDirectory() as tmp:
            img = _png(self.plot(Path(tmp) / "fit.png"))
        r = self.result
        summary = pd.DataFrame([{"log-likelihood": r.log_likelihood, "AIC": r.aic,
                                 "validation error": r.validation_error,
                                 "converged": r.converged}])
        params = self.params.rename_axis("parameter").reset_index()
        return (f"<div class='mmw-fit'><h3>fit of {escape(self.model.name)}</h3>"
                + model_html(self.model) + "<h4>fitted parameters</h4>" + _frame_html(params)
                + _frame_html(summary) + img + "</div>")


def fit(model: Model | str | Path, data: Any, *, train_until: float | None = None,
        starts: int | None = None, steps: int | None = None, seed: int | None = None,
        time_column: str | None = None) -> Fit:
    """``mmw fit``: maximum likelihood on the rows up to ``train_until``; the rest validate.
    ``starts``/``steps``/``seed`` are the command's --starts/--steps/--seed."""
    from mechanistic import fit as fitting
    from workbench.main_job import check_fit_inputs, check_integration_grid, fit_config

    if not isinstance(model, Model):
        model = load_model(model)
    observed = load_data(data, time_column)
    check_fit_inputs(model, observed, train_until)
    check_integration_grid(observed, train_until)
    result = fitting.fit_model(model, observed, config=fit_config(starts, seed, steps),
                               train_until=train_until)
    return Fit(model, observed, result, train_until)


# ------------------------------------------------------------------------------ runs
@dataclass
class Run:
    """A run folder written by ``mmw model``, read as untrusted data."""

    path: Path
    tree: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def best(self) -> str | None:
        """The best valid candidate's id."""
        return self.tree.get("best")

    @property
    def verdict(self) -> str:
        """The adequacy verdict, as ``mmw predict`` prints it."""
        from agent.verdict import Verdict

        verdict = Verdict.from_dict(self.tree.get("verdict"))
        return verdict.line() if verdict is not None else "not judged"

    def candidates(self) -> Any:
        """Every candidate, ranked (rank is empty for those without a valid fit)."""
        import pandas as pd

        rows = sorted(self.tree.get("nodes", []),
                      key=lambda n: (n.get("score") is None, n.get("score") or 0.0, n["id"]))
        out, rank = [], 0
        for node in rows:
            ok = node.get("status") == "ok"
            rank += ok
            out.append({"rank": rank if ok else None, "id": node["id"],
                        "structure": node.get("structure", ""), "origin": node.get("origin"),
                        "status": node.get("status"),
                        "validation error": node.get("validation_error"),
                        "AIC": node.get("aic"), "repairs": node.get("repairs")})
        return pd.DataFrame(out)

    def fitted(self, candidate: str | None = None) -> Any:
        """The fitted candidate (the best, or the one named), rebuilt from the folder."""
        from agent.fitted import load_fitted

        return load_fitted(self.path, candidate)

    def model(self, candidate: str | None = None) -> Model:
        return self.fitted(candidate).model

    def forecast(self, until: float, *, step: float | None = None, draws: int = 200,
                 candidate: str | None = None) -> Any:
        """``mmw predict``: bands from Laplace draws around the fit, data start to
        ``until``."""
        import numpy as np

        from workbench.cli import time_grid
        from workbench.commands_agent import _check_simulation_size

        fitted = self.fitted(candidate)
        t = fitted.task.data.t
        spacing = step if step is not None else (float(np.median(np.diff(t))) if len(t) > 1
                                                 else 1.0)
        if until <= t[0]:
            raise ValueError(f"until={until:g} is before the data start {t[0]:g}")
        grid = time_grid(float(t[0]), until, spacing, f"until={until:g}, step={spacing:g}")
        _check_simulation_size(fitted, grid, draws)
        return fitted.bands(grid, draws=draws).frame()

    def counterfactual(self, interventions: Any = None, *, question: str | None = None,
                       t: Sequence[float] | None = None, draws: int = 200,
                       candidate: str | None = None) -> Any:
        """``mmw counterfactual``: baseline and intervened bands from the same draws.
        ``interventions`` are intervention dicts (``{"kind": "scale", ...}``) or objects;
        a ``question`` is translated by the run's agent instead."""
        import numpy as np

        from agent.fitted import answer_counterfactual
        from agent.store import RunStore
        from mechanistic.interventions import Intervention, interventions_from_json
        from workbench.commands_agent import _check_simulation_size, _make_proposer

        if (interventions is None) == (question is None):
            raise ValueError("give exactly one of interventions=[...] or question='...'")
        fitted = self.fitted(candidate)
        items, proposer = None, None
        if interventions is not None:
            items = [i if isinstance(i, Intervention) else interventions_from_json([i])[0]
                     for i in interventions]
        else:
            _, meta = RunStore(self.path).read_task()
            proposer = _make_proposer(meta.get("agent", "library"), meta.get("llm"),
                                      meta.get("base_url"), int(meta.get("seed", 0)),
                                      RunStore(self.path).trajectory)
        grid = np.asarray(t if t is not None else fitted.task.data.t, dtype=float)
        _check_simulation_size(fitted, grid, draws)
        answer = answer_counterfactual(fitted, proposer, question=question or "",
                                       interventions=items, t_eval=grid, draws=draws)
        return answer.frame()

    def _repr_html_(self) -> str:
        from agent.runfiles import CANDIDATE_ID
        from mechanistic.formats.notebook import model_html
        from mechanistic.untrusted import read_inside

        parts = [f"<div class='mmw-run'><h3>run {escape(str(self.path))}</h3>",
                 f"<p>{escape(self.verdict)}</p>", _frame_html(self.candidates())]
        if self.best:
            folder = f"candidates/{CANDIDATE_ID(self.best, 'the best candidate', 'best')}"
            parts.append(f"<h4>best: {escape(self.best)}</h4>")
            parts.append(model_html(self.model()))
            try:
                png = read_inside(self.path, f"{folder}/fit.png", "the best fit's plot",
                                  16 * 1024 * 1024)
                parts.append("<img alt='fit' src='data:image/png;base64,"
                             + base64.b64encode(png).decode("ascii") + "'/>")
            except (FileNotFoundError, ValueError):
                parts.append("<p>(no fit plot)</p>")
        return "".join(parts) + "</div>"


def load_run(path: str | Path) -> Run:
    """A run folder written by ``mmw model`` (its files read as untrusted data)."""
    from agent.store import RunStore

    root = Path(path)
    if not (root / "tree.json").is_file():
        raise FileNotFoundError(f"{root}: not a finished run folder (no tree.json)")
    return Run(root, RunStore(root).read_tree())


def model(describe: str, data: str | Path, out: str | Path, *, agent: str = "offline",
          max_nodes: int = 12, initial: int = 4, seed: int = 0,
          train_until: float | None = None, validate_until: float | None = None,
          max_seconds: float | None = None, inputs: str | None = None,
          start_from: str | Path | None = None, llm: str | None = None,
          base_url: str | None = None) -> Run:
    """``mmw model``: describe the system, hand over the data, get a run folder of ranked,
    validated, fitted candidates (progress is printed as the command prints it)."""
    from workbench.cli import _console
    from workbench.commands_agent import _run_model

    _run_model(Path(out), Path(data), describe, None, train_until, validate_until, agent, llm,
               base_url, max_nodes, initial, None, None, max_seconds, seed, False, _console,
               inputs, None if start_from is None else Path(start_from))
    return load_run(out)


def forecast(run: str | Path | Run, until: float, **options: Any) -> Any:
    """``mmw predict RUN --until T`` as a DataFrame."""
    return (run if isinstance(run, Run) else load_run(run)).forecast(until, **options)


def counterfactual(run: str | Path | Run, interventions: Any = None, **options: Any) -> Any:
    """``mmw counterfactual RUN`` as a DataFrame (baseline_* and intervened_* columns)."""
    target = run if isinstance(run, Run) else load_run(run)
    return target.counterfactual(interventions, **options)

