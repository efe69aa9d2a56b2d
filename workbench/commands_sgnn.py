"""``mmw sgnn train|predict|attribute|counterfactual``: an SGNN pretrained on a run's
validated simulators.

The simulators are the run's candidates: those approved in review when a review exists,
otherwise the top validated ones by the search's ranking (with a notice). The ranking is
the structural prior: better-scoring structures are simulated more often. Everything is
written under ``RUN/sgnn/``: the checkpoint (weights, config, model JSON), the embedding
index for attribution, a calibration report, predictions, attributions and
counterfactuals (the intervention JSON of ``mmw counterfactual --intervention``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from mechanistic.files import write_atomic

__all__ = ["attribute_command", "counterfactual_command", "predict_command", "register",
           "select_candidates", "train_command"]


def select_candidates(run: Path, top_k: int) -> tuple[list[dict[str, Any]], str | None]:
    """Ranked tree nodes to train on, and a notice when no review narrowed them.

    The run folder is read as untrusted data (agent/runfiles.py): tree.json and
    review.json against their shapes, candidate files only if they are plain files
    inside the run; a bad one is one clear error, not a traceback.
    """
    from agent.store import RunStore
    from mechanistic.untrusted import file_inside
    from workbench.review.runs import approved_candidates

    def present(relative: str) -> bool:
        try:
            file_inside(run, relative, f"{run.name}/{relative}")
        except FileNotFoundError:
            return False
        return True

    if not present("task.json") or not present("tree.json"):
        raise ValueError(f"{run}: not a finished run folder (needs task.json and tree.json); "
                         f"create one with `mmw model`")
    nodes = [n for n in RunStore(run).read_tree()["nodes"]
             if n["status"] == "ok" and present(f"candidates/{n['id']}/model.json")]
    notice = None
    if present("review.json"):
        approved = set(approved_candidates(run))
        nodes = [n for n in nodes if n["id"] in approved]
        if not nodes:
            raise ValueError(f"{run}: the review approves no validated candidate; approve at "
                             f"least one with `mmw review`")
    else:
        nodes = nodes[:top_k]
        notice = (f"no review.json: using the top {len(nodes)} validated candidate(s) by "
                  f"validation score; approve candidates with `mmw review` to choose")
    if not nodes:
        raise ValueError(f"{run}: the run has no validated candidate to train on")
    return nodes, notice


def _sgnn_dir(run: Path) -> Path:
    """RUN/sgnn, refused when it is a symbolic link: the checkpoint read and the results
    written stay inside the run (results are written atomically, so a link planted at a
    result's name is replaced, not written through)."""
    from mechanistic.untrusted import safe_child

    return safe_child(run, "sgnn", f"{run.name}/sgnn")


def _corpus_for(run: Path, nodes: list[dict[str, Any]], seed: int, notes: list[str],
                extra_heads: tuple[str, ...] = ()) -> Any:
    from agent.runfiles import FIT
    from agent.store import RunStore
    from mechanistic.serialize import model_from_json
    from sgnn.corpus import Corpus, CorpusConfig
    from sgnn.heads import DEFAULT_HEADS

    store = RunStore(run)
    task, _ = store.read_task()
    models, fits, names, scores = [], [], [], []
    for node in nodes:
        model = model_from_json(store.candidate_text(node["id"], "model.json"))
        if model.neural_:
            notes.append(f"{node['id']}: has neural terms; skipped (no trained networks here)")
            continue
        try:
            params = store.candidate_json(node["id"], "fit.json", FIT)["params"]
        except FileNotFoundError:
            params = None
        fit = {k: v for k, v in params.items() if v is not None} if params else None
        models.append(model)
        fits.append(fit)
        names.append(f"{node['id']}")
        score = node.get("score")
        scores.append(score if isinstance(score, int | float) and math.isfinite(score) else 0.0)
    if not models:
        raise ValueError(f"{run}: no candidate the SGNN can simulate")
    t = task.data.t
    n = len(t)
    dt = float(np.median(np.diff(t))) if n > 1 else 1.0
    horizon = max(1, min(14, n // 4))
    n_context = max(2, min(64, n - horizon))
    # Better-ranked structures are drawn more often: the search tree as structural prior.
    weights = np.exp(-(np.asarray(scores) - min(scores)))
    # Weekday effects only where a step is a day; yearly or hourly data have none.
    daily = task.time_unit.lower() in ("day", "days") and dt == 1.0
    config = CorpusConfig(n_context=n_context, min_context=max(2, n_context // 2),
                          horizon=horizon, dt=dt, solver_dt=dt / 4, max_offset=n,
                          weekday_sd=0.15 if daily else 0.0, narrow=0.5, seed=seed)
    heads = (*DEFAULT_HEADS, *(h for h in extra_heads if h not in DEFAULT_HEADS))
    return Corpus(models, config, weights=weights, fits=fits, names=names, heads=heads)


def train_command(
    run: Annotated[Path, typer.Argument(help="Run folder written by `mmw model`.")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Candidates used when no "
                                       "review exists.")] = 3,
    simulations: Annotated[int, typer.Option("--simulations", min=1,
                                             help="Fresh simulations per epoch.")] = 20_000,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue RUN/sgnn/.")] = False,
    executor: Annotated[str, typer.Option(
        "--executor", help="Who simulates the corpus: local (this process) or ray "
                           "(Ray workers, streamed to training; same network).")] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", help="Ray cluster address (with --executor ray; default: start "
                          "a local cluster).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Ray workers simulating (with --executor ray).")] = 2,
    head: Annotated[list[str] | None, typer.Option(
        "--head", help="A further SGNN head (registered by a plugin) trained beside "
                       "forecast, params and structure; repeatable.")] = None,
) -> None:
    """Pretrain an SGNN on simulations of the run's candidates; writes RUN/sgnn/."""
    from sgnn.attribute import EmbeddingIndex
    from sgnn.diagnostics import calibration
    from sgnn.sharded import open_source
    from sgnn.train import TrainConfig, load_checkpoint, train
    from workbench.cli import _console, _user_errors

    out = _console()
    with _user_errors():
        nodes, notice = select_candidates(run, top_k)
        if notice:
            out.print(f"notice: {notice}", markup=False)
        notes: list[str] = []
        corpus = _corpus_for(run, nodes, seed, notes, tuple(head or ()))
        for note in notes:
            out.print(f"notice: {note}", markup=False)
        folder = _sgnn_dir(run)
        config = TrainConfig(simulations=simulations, epochs=epochs, seed=seed,
                             held_out=min(1000, max(64, simulations // 10)))
        with open_source(executor, corpus, config, address=address,
                         workers=workers) as source:
            result = train(corpus, folder, config, resume=resume, progress=True,
                           log=lambda m: out.print(m, markup=False), source=source)
        checkpoint = load_checkpoint(folder)
        EmbeddingIndex.build(checkpoint, n=min(5000, max(500, simulations))).save(
            folder / "index.npz")
        report = calibration(checkpoint, n=1000)
        write_atomic(folder / "diagnostics.json", json.dumps(report, indent=2) + "\n")
    # The built-in heads' headline figures, where the network has those heads.
    shown = ", ".join(f"{label} {report[key]:.2f}" for key, label in (
        ("forecast_coverage_90", "90% interval coverage"),
        ("structure_accuracy", "structure accuracy")) if key in report)
    out.print(f"trained on {', '.join(corpus.names)}: {result.simulations_seen} "
              f"simulations, best held-out loss {result.best_val_loss:.4f} (epoch "
              f"{result.best_epoch}){'; ' + shown if shown else ''}; written to {folder}/",
              markup=False)


def predict_command(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained SGNN.")],
    data: Annotated[Path, typer.Option("--data", help="Observations (CSV).")],
    out_path: Annotated[Path | None, typer.Option("--out", help="Prediction JSON "
                                                  "(default RUN/sgnn/prediction.json).")]
    = None,
) -> None:
    """Forecast quantiles, parameter posteriors and structure probabilities."""
    from mechanistic.data import load_csv
    from sgnn.predict import describe, predict
    from sgnn.train import load_checkpoint
    from workbench.cli import _console, _user_errors

    out = _console()
    with _user_errors():
        checkpoint = load_checkpoint(_sgnn_dir(run))
        prediction = predict(checkpoint, load_csv(data))
        target = out_path or _sgnn_dir(run) / "prediction.json"
        write_atomic(target, json.dumps(prediction.to_dict(), indent=2) + "\n")
        write_atomic(target.with_suffix(".csv"), prediction.frame().to_csv(index=False))
    for note in prediction.notes:
        out.print(f"note: {note}", markup=False)
    out.print(describe(prediction), markup=False)
    out.print(f"written to {target} and {target.with_suffix('.csv')}", markup=False)


def counterfactual_command(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained SGNN.")],
    data: Annotated[Path, typer.Option("--data", help="Observations (CSV).")],
    intervention: Annotated[Path, typer.Option(
        "--intervention", help="Intervention JSON (as for `mmw counterfactual`), times "
                               "on the data's clock.")],
    draws: Annotated[int, typer.Option("--draws", min=1, max=100_000,
                                        help="Posterior draws (at most 100,000).")] = 200,
    horizon: Annotated[int | None, typer.Option(
        "--horizon", min=0, help="Steps past the data (default: the trained horizon).")]
    = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out_path: Annotated[Path | None, typer.Option(
        "--out", help="Result JSON (default RUN/sgnn/counterfactual.json; a CSV beside).")]
    = None,
) -> None:
    """Simulate the SGNN's posterior draws with and without an intervention."""
    from mechanistic.data import load_csv
    from mechanistic.interventions import load_interventions
    from sgnn.counterfactual import counterfactual
    from sgnn.train import load_checkpoint
    from workbench.cli import _console, _user_errors

    out = _console()
    with _user_errors():
        checkpoint = load_checkpoint(_sgnn_dir(run))
        items = load_interventions(intervention)
        result = counterfactual(checkpoint, load_csv(data), items, draws=draws,
                                horizon=horizon, seed=seed)
        target = out_path or _sgnn_dir(run) / "counterfactual.json"
        write_atomic(target, json.dumps(result.to_dict(), indent=2) + "\n")
        write_atomic(target.with_suffix(".csv"), result.frame().to_csv(index=False))
    for note in result.notes:
        out.print(f"note: {note}", markup=False)
    mid = len(result.quantiles) // 2
    for name in result.baseline:
        out.print(f"{name} at t={result.t[-1]:g}: baseline median "
                  f"{result.baseline[name][-1, mid]:.4g}, intervened median "
                  f"{result.intervened[name][-1, mid]:.4g}, effect median "
                  f"{result.effect[name][-1, mid]:.4g} ({result.n_draws} draws; "
                  + ", ".join(f"{k} {v}" for k, v in result.structures.items()) + ")",
                  markup=False)
    out.print(f"written to {target} and {target.with_suffix('.csv')}", markup=False)


def attribute_command(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained SGNN.")],
    data: Annotated[Path, typer.Option("--data", help="Observations (CSV).")],
    k: Annotated[int, typer.Option("--k", min=1, help="Nearest simulations.")] = 20,
) -> None:
    """The training simulations nearest the data, with their structures and parameters."""
    from mechanistic.data import load_csv
    from sgnn.attribute import EmbeddingIndex
    from sgnn.train import load_checkpoint
    from workbench.cli import _console, _user_errors

    out = _console()
    with _user_errors():
        checkpoint = load_checkpoint(_sgnn_dir(run))
        index_path = _sgnn_dir(run) / "index.npz"
        index = (EmbeddingIndex.load(index_path) if index_path.is_file()
                 else EmbeddingIndex.build(checkpoint))
        result = index.attribute(checkpoint, load_csv(data), k=k)
        target = _sgnn_dir(run) / "attribution.json"
        write_atomic(target, json.dumps(result.to_dict(), indent=2) + "\n")
    for name, share in sorted(result.structure_share.items(), key=lambda x: -x[1]):
        line = f"{name}: {share:.0%} of the {k} nearest simulations"
        params = result.params.get(name, {})
        if params:
            line += "; " + ", ".join(f"{p} {v['median']:.3g} [{v['q05']:.3g}, "
                                     f"{v['q95']:.3g}]" for p, v in params.items())
        out.print(line, markup=False)
    out.print(f"written to {target}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``mmw sgnn train|predict|counterfactual|attribute`` to the command line."""
    sgnn_app = typer.Typer(help="Simulation-grounded neural networks trained on a run's "
                                "validated simulators.", no_args_is_help=True)
    app.add_typer(sgnn_app, name="sgnn")
    sgnn_app.command("train")(train_command)
    sgnn_app.command("predict")(predict_command)
    sgnn_app.command("counterfactual")(counterfactual_command)
    sgnn_app.command("attribute")(attribute_command)
