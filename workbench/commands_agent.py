"""``mmw model``, ``mmw predict`` and ``mmw counterfactual``: the agent's front door.

``mmw model`` describes a system and hands over data; the agent searches simulator
structures and writes a run folder (see agent/store.py). ``predict`` and
``counterfactual`` read that folder back: the best fitted candidate, with intervals from
Laplace draws around its fit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

__all__ = ["DESCRIPTION_MAX_BYTES", "counterfactual_command", "model_command", "predict_command",
           "register"]

# A description is a few paragraphs an LLM reads in its prompt; 256 KiB is a long paper.
DESCRIPTION_MAX_BYTES = 256 * 1024


def _make_proposer(agent: str, llm: str | None, base_url: str | None, seed: int,
                   log: Any, chat: Mapping[str, Any] | None = None) -> Any:
    """The proposer registered as ``agent`` (agent/proposers.py), with the run's settings;
    ``chat``: the LLM's mode and window (``structured``, ``context_window``,
    ``answer_tokens``), as task.json keeps them for --resume."""
    from agent.llm import ChatSettings
    from agent.proposers import ProposerSettings, make_proposer

    chat = chat or {}
    settings = ChatSettings(context_window=chat.get("context_window"),
                            max_tokens=chat.get("answer_tokens") or ChatSettings().max_tokens)
    return make_proposer(agent, ProposerSettings(seed=seed, llm=llm, base_url=base_url,
                                                 log=log, chat=settings,
                                                 structured=bool(chat.get("structured"))))


def _plot_node(store: Any, node: Any, task: Any) -> None:
    """fit.png for a fitted candidate: data, fitted observables, the window edges."""
    from workbench.plots import plot_fit

    result = node.fit_result
    if result is None:
        return
    data = task.data
    grid = np.unique(np.concatenate([np.linspace(data.t[0], data.t[-1], 300), data.t]))
    sim = result.simulate(grid)
    fitted = {n: sim.observable(n)[0].numpy() for n in result.compiled.observable_names}
    validation = {k: v.get("rmse", math.nan)
                  for k, v in (node.fit or {}).get("validation_residuals", {}).items()} \
        if (node.fit or {}).get("validation_residuals") else None
    plot_fit(store.candidate_dir(node.id) / "fit.png", data.t, dict(data.values), grid, fitted,
             train_until=task.train_until, validation=validation,
             title=f"{node.candidate.structure} ({node.id})", time_label=data.time_name)


def _ranked_table(result: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"candidates ({result.stop_reason})", title_justify="left")
    for col in ("rank", "id", "structure", "origin", "status", "validation error", "checks",
                "repairs"):
        table.add_column(col, justify="right" if col in ("rank", "validation error",
                                                         "repairs") else "left")
    ranked = sorted(result.nodes, key=lambda n: (n.score, n.id))
    for i, node in enumerate(ranked, 1):
        failed = [c for c in node.checks if not c["passed"] and c.get("severity") == "error"]
        checks = "-" if not node.checks else ("ok" if not failed else f"{len(failed)} failed")
        err = node.validation_error
        table.add_row(str(i) if node.ok else "-", node.id, node.candidate.structure,
                      node.candidate.origin, node.status,
                      f"{err:.3f}" if err is not None and math.isfinite(err) else "-",
                      checks, str(node.repairs))
    return table


def model_command(
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")],
    data: Annotated[Path | None, typer.Option("--data", help="Observations (CSV).")] = None,
    describe: Annotated[str | None, typer.Option("--describe",
                                                 help="The system, in plain language.")]
    = None,
    describe_file: Annotated[Path | None, typer.Option(
        "--describe-file", help="A file holding the description.")] = None,
    train_until: Annotated[float | None, typer.Option(
        "--train-until", help="Last time fitted (default: 70% of the data).")] = None,
    validate_until: Annotated[float | None, typer.Option(
        "--validate-until", help="Last time of the validation window (later rows are "
                                 "never shown to the agent).")] = None,
    agent: Annotated[str, typer.Option(
        "--agent", help="offline (library motifs and discovery from the data, the "
                        "default), library (motifs only), discovery, or llm.")]
    = "offline",
    llm: Annotated[str | None, typer.Option("--llm", help="provider:model for --agent llm"
                                            )] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp); key "
                           "from OPENAI_API_KEY.")] = None,
    structured: Annotated[bool, typer.Option(
        "--structured", help="--agent llm answers JSON model specifications under a JSON "
                             "Schema, rendered into modules by the host (for small and "
                             "local models).")] = False,
    context_window: Annotated[int | None, typer.Option(
        "--context-window", min=256, help="The LLM's context window in tokens (else "
                                          "learned from the server's refusal).")] = None,
    answer_tokens: Annotated[int | None, typer.Option(
        "--answer-tokens", min=16, help="Longest LLM answer in tokens (default 8192).")]
    = None,
    max_nodes: Annotated[int, typer.Option("--max-nodes", min=1,
                                           help="Budget: candidates evaluated.")] = 12,
    initial: Annotated[int, typer.Option("--initial", min=1,
                                         help="Structures proposed first.")] = 4,
    max_llm_calls: Annotated[int | None, typer.Option("--max-llm-calls", min=1)] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1)] = None,
    max_seconds: Annotated[float | None, typer.Option("--max-seconds", min=1)] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume",
                                         help="Continue an interrupted run in --out.")]
    = False,
    inputs: Annotated[str | None, typer.Option(
        "--inputs", help="Known input columns (set by the experimenter: a dose or feed "
                         "rate, a switch, a temperature), COL[,COL] or COL:linear; "
                         "'none' fits every column. Default: the agent proposes them.")]
    = None,
    start_from: Annotated[Path | None, typer.Option(
        "--start-from", help="A model (SBML .xml, Antimony .ant, JSON or module) to "
                             "evaluate first, as a candidate; its observables must be "
                             "columns of the data.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=0, max=64, help="Fit worker processes evaluating candidates side "
                                         "by side (default: the CPUs, at most 4; 0 fits "
                                         "in this process). The result does not depend "
                                         "on it.")] = None,
    fit_strategy: Annotated[str, typer.Option(
        "--fit-strategy", help="shooting (segments fitted side by side, then one trajectory; "
                               "the default) or single (the whole window at every step, "
                               "the fitter before issue 15).")] = "shooting",
) -> None:
    """Describe a system, hand over data, get ranked, validated, fitted simulators."""
    from workbench.cli import _console, _user_errors
    with _user_errors(), _llm_errors():
        _run_model(out, data, describe, describe_file, train_until, validate_until, agent,
                   llm, base_url, max_nodes, initial, max_llm_calls, max_tokens,
                   max_seconds, seed, resume, _console, inputs, start_from, workers=workers,
                   fit_strategy=fit_strategy,
                   chat={"structured": structured, "context_window": context_window,
                         "answer_tokens": answer_tokens})


def predict_command(
    run: Annotated[Path, typer.Argument(help="Run folder written by mmw model.")],
    until: Annotated[float, typer.Option("--until", help="Forecast up to this time.")],
    out: Annotated[Path | None, typer.Option("--out", help="CSV to write.")] = None,
    candidate: Annotated[str | None, typer.Option("--candidate",
                                                  help="Candidate id (default: best).")]
    = None,
    step: Annotated[float | None, typer.Option("--step", help="Output spacing.")] = None,
    draws: Annotated[int, typer.Option("--draws", min=1)] = 200,
) -> None:
    """Forecast with intervals from the best candidate of a run."""
    from workbench.cli import _console, _user_errors, time_grid
    with _user_errors():
        fitted = _load(run, candidate)
        data = fitted.task.data
        spacing = step if step is not None else \
            (float(np.median(np.diff(data.t))) if len(data) > 1 else 1.0)
        if until <= data.t[0]:
            raise ValueError(f"--until {until:g} is before the data start {data.t[0]:g}")
        grid = time_grid(float(data.t[0]), until, spacing, f"--until {until:g} --step "
                         f"{spacing:g}", ("the data start", "--until", "--step"))
        _check_simulation_size(fitted, grid, draws)
        bands = fitted.bands(grid, draws=draws)
        frame = bands.frame()
        path = out or Path(run) / "forecast.csv"
        frame.to_csv(path, index=False)
        console = _console()
        _warn_verdict(run, console)
        console.print(f"forecast from {fitted.candidate.structure} ({fitted.candidate.id}) "
                      f"to {until:g}: {path}", markup=False)
        for note in bands.notes:
            console.print(f"note: {note}", markup=False)


def counterfactual_command(
    run: Annotated[Path, typer.Argument(help="Run folder written by mmw model.")],
    what: Annotated[str | None, typer.Option("--what", help="The question, in words.")]
    = None,
    intervention: Annotated[Path | None, typer.Option(
        "--intervention", help="Intervention JSON instead of a question.")] = None,
    t: Annotated[str | None, typer.Option("--t", help="START:STOP:STEP output grid "
                                                      "(default: the data span)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="CSV to write.")] = None,
    candidate: Annotated[str | None, typer.Option("--candidate")] = None,
    agent: Annotated[str | None, typer.Option(
        "--agent", help="Who translates the question (default: the run's agent).")] = None,
    llm: Annotated[str | None, typer.Option("--llm")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url")] = None,
    draws: Annotated[int, typer.Option("--draws", min=1)] = 200,
) -> None:
    """What if? Simulate the fitted model under an intervention, with intervals."""
    from workbench.cli import _console, _user_errors
    with _user_errors(), _llm_errors():
        _run_counterfactual(run, what, intervention, t, out, candidate, agent, llm,
                            base_url, draws, _console)


def register(app: typer.Typer) -> None:
    """Add ``mmw model``, ``mmw predict`` and ``mmw counterfactual`` to the command line."""
    app.command("model")(model_command)
    app.command("predict")(predict_command)
    app.command("counterfactual")(counterfactual_command)


@contextmanager
def _llm_errors() -> Iterator[None]:
    """An unreachable or misconfigured LLM endpoint ends the command with one line."""
    try:
        yield
    except Exception as exc:
        if type(exc).__name__ != "LLMCallError":
            raise
        raise ValueError(f"the LLM could not be called: {exc}") from None


def _load(run: Path, candidate: str | None) -> Any:
    from agent.fitted import load_fitted

    return load_fitted(run, candidate)


def _run_model(out: Path, data_path: Path | None, describe: str | None,
               describe_file: Path | None, train_until: float | None,
               validate_until: float | None, agent_kind: str, llm: str | None,
               base_url: str | None, max_nodes: int, initial: int, max_llm_calls: int | None,
               max_tokens: int | None, max_seconds: float | None, seed: int, resume: bool,
               console_factory: Any, inputs_option: str | None = None,
               start_from: Path | None = None, *, workers: int | None = None,
               fit_strategy: str = "shooting", chat: Mapping[str, Any] | None = None) -> None:
    from agent.core import Task
    from agent.fitpool import default_workers
    from agent.loop import Search, SearchConfig
    from agent.store import RunStore
    from mechanistic.data import load_csv
    from mechanistic.fit import STRATEGIES
    from sandbox.auto import backend_source, open_sandbox
    from sandbox.auto import describe as describe_sandbox
    from workbench.main_job import check_integration_grid

    store = RunStore(out)
    console = console_factory(stderr=True)
    if start_from is not None:  # read (and refused) before the run folder is written
        from workbench.loading import load_model

        start_model = load_model(start_from)
    if resume:
        task, meta = store.read_task()
        agent_kind, llm, base_url = meta["agent"], meta.get("llm"), meta.get("base_url")
        chat = meta.get("chat") if isinstance(meta.get("chat"), dict) else {}
        seed = meta.get("seed", seed)
        nodes = store.load_nodes()
        console.print(f"resuming {out}: {len(nodes)} finished candidate(s)", markup=False)
    else:
        if (out / "task.json").exists():
            raise ValueError(f"{out} already holds a run; use --resume to continue it or "
                             f"choose another --out")
        if data_path is None:
            raise ValueError("--data DATA.csv is required")
        text = describe or (_read_description(describe_file) if describe_file else None)
        if not text or not text.strip():
            raise ValueError("describe the system with --describe TEXT or --describe-file F")
        data = load_csv(data_path)
        data, inputs = _known_inputs(data, text, inputs_option, console)
        if train_until is None:
            train_until = float(data.t[int(0.7 * (len(data) - 1))])
        task = Task(text, data, train_until, validate_until, inputs=inputs)
        check_integration_grid(data, train_until)  # the search fits this window
        nodes = []
    config = SearchConfig(initial=initial, max_nodes=max_nodes, max_llm_calls=max_llm_calls,
                          max_tokens=max_tokens, max_seconds=max_seconds, seed=seed,
                          distill=True, workers=default_workers() if workers is None else
                          workers)
    if fit_strategy != config.fit.strategy:
        if fit_strategy not in STRATEGIES:
            raise ValueError(f"--fit-strategy must be one of {', '.join(STRATEGIES)}, got "
                             f"{fit_strategy!r}")
        config = replace(config, fit=replace(config.fit, strategy=fit_strategy))
    chat = {k: v for k, v in (chat or {}).items() if v}
    if chat and agent_kind != "llm":
        raise ValueError("--structured, --context-window and --answer-tokens are settings "
                         "of --agent llm")
    meta = {"agent": agent_kind, "llm": llm, "base_url": base_url, "seed": seed, "chat": chat,
            "search": config.to_dict()}
    if not resume:
        store.write_task(task, meta)
    log = store.trajectory
    proposer = _make_proposer(agent_kind, llm, base_url, seed, log, chat)
    if start_from is not None:
        from agent.start_from import StartFromProposer

        proposer = StartFromProposer(proposer, start_model, start_from.name)

    shown: set[str] = {n.id for n in nodes}

    def on_node(node: Any) -> None:
        store.save_node(node)
        if node.id in shown:  # saved again after its expansion: nothing new to show
            return
        shown.add(node.id)
        if node.fit_result is not None:
            _plot_node(store, node, task)
        err = node.validation_error
        score = f"validation error {err:.3f}" if err is not None and math.isfinite(err) else ""
        console.print(f"  [{node.status:>13}] {node.id} {node.candidate.structure} "
                      f"({node.candidate.origin}) {score}", markup=False)

    sandbox = open_sandbox()
    try:
        console.print(f"searching with the {proposer.name} agent; sandbox: "
                      f"{describe_sandbox(sandbox)}, selected by {backend_source(None)}",
                      markup=False)
        result = Search(task, proposer, config, sandbox=sandbox, log=log, on_node=on_node,
                        resume=nodes).run()
    finally:
        sandbox.close()
    verdict = result.verdict.to_dict() if result.verdict is not None else None
    store.save_tree(result.nodes, {"stop_reason": result.stop_reason, "usage": result.usage,
                                   "verdict": verdict})
    out_console = console_factory()
    if not out_console.is_terminal:
        out_console.width = 140  # a log file is not an 80-column terminal; keep rows whole
    out_console.print(_ranked_table(result))
    best = result.best
    if best is None:
        raise ValueError(f"no valid simulator found ({result.stop_reason}); see "
                         f"{out}/trajectory.jsonl for what failed")
    out_console.print(f"best: {best.candidate.structure} ({best.id}); run folder {out}",
                      markup=False)
    for note in dict.fromkeys(getattr(proposer, "notes", []) or []):
        out_console.print(f"note: {note}", markup=False)
    if result.verdict is not None:
        out_console.print(result.verdict.line(), markup=False)


def _read_description(path: Path) -> str:
    """The text of ``--describe-file``: a regular file (a FIFO is an error, not a hang) of
    at most DESCRIPTION_MAX_BYTES, in UTF-8."""
    from mechanistic.untrusted import read_regular_file

    raw = read_regular_file(path, f"--describe-file {path}", DESCRIPTION_MAX_BYTES)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"--describe-file {path}: byte {exc.start} is not UTF-8 text; save "
                         f"the description as UTF-8") from None


# Bounds on what predict and counterfactual simulate: draws x output times values per state
# (20 million is 160 MB a state), and solver steps from the fit's start to the last time
# (a million RK4 steps of 200 draws take minutes); a horizon typed with three zeros too
# many is an error that says so, not an hour of work or an exhausted memory.
MAX_DRAW_TIMES = 20_000_000
MAX_SOLVER_STEPS = 1_000_000


def _check_simulation_size(fitted: Any, grid: Any, draws: int) -> None:
    """Refuse (ValueError) a forecast or what-if larger than the bounds above."""
    cells = len(grid) * draws
    if cells > MAX_DRAW_TIMES:
        raise ValueError(f"--draws {draws} at {len(grid)} output times is {cells:,} values a "
                         f"state, more than {MAX_DRAW_TIMES:,}; use fewer --draws or a "
                         f"coarser grid")
    solver = fitted.fit.get("solver") or {}
    dt = solver.get("dt") if solver.get("kind") == "RK4" else None
    if isinstance(dt, int | float) and dt > 0 and len(grid):
        t0 = float(fitted.fit.get("t0", grid[0]))
        steps = (float(np.max(grid)) - t0) / float(dt)
        if not steps <= MAX_SOLVER_STEPS:
            raise ValueError(f"simulating from {t0:g} to {float(np.max(grid)):g} at the fit's "
                             f"step of {dt:g} takes {steps:.3g} solver steps, more than "
                             f"{MAX_SOLVER_STEPS:,}; ask for a nearer time")


def _warn_verdict(run: Path, console: Any) -> None:
    """Carry the run's adequacy verdict into every answer drawn from it."""
    from agent.store import RunStore
    from agent.verdict import Verdict

    try:
        verdict = Verdict.from_dict(RunStore(run).read_tree().get("verdict"))
    except (FileNotFoundError, ValueError, AttributeError):
        verdict = None
    if verdict is None:
        console.print("verdict: not judged (this run has no adequacy verdict)", markup=False)
    elif verdict.adequate is False:
        console.print(f"warning: {verdict.line()}", markup=False)
    else:
        console.print(verdict.line(), markup=False)


def _known_inputs(data: Any, description: str, option: str | None,
                  console: Any) -> tuple[Any, tuple[Any, ...]]:
    """Split the known inputs off the data: those named by ``--inputs``, or, without the
    flag, those the agent proposes (and says so, with the reason and how to override)."""
    from mechanistic.inputs import detect_inputs, parse_inputs_option, split_inputs

    chosen = parse_inputs_option(option)
    if chosen is None:
        found = detect_inputs(data, description)
        for name, reason in found.items():
            console.print(f"treating column {name!r} as a known input ({reason}); pass "
                          f"--inputs to choose the inputs yourself, or --inputs none",
                          markup=False)
        chosen = dict.fromkeys(found, "previous")
    if not chosen:
        return data, ()
    data, inputs = split_inputs(data, chosen)
    for series in inputs:
        console.print(f"input {series.describe()}", markup=False)
    return data, inputs


def _run_counterfactual(run: Path, what: str | None, intervention: Path | None,
                        t: str | None, out: Path | None, candidate: str | None,
                        agent_kind: str | None, llm: str | None, base_url: str | None,
                        draws: int, console_factory: Any) -> None:
    from agent.fitted import answer_counterfactual, slug
    from agent.store import RunStore
    from mechanistic.interventions import load_interventions
    from workbench.cli import parse_time_spec

    fitted = _load(run, candidate)
    if (what is None) == (intervention is None):
        raise ValueError("give exactly one of --what TEXT or --intervention I.json")
    items = load_interventions(intervention) if intervention is not None else None
    proposer = None
    if items is None:
        _, meta = RunStore(run).read_task()
        kind = agent_kind or meta.get("agent", "library")
        chat = meta.get("chat") if kind == meta.get("agent") and \
            isinstance(meta.get("chat"), dict) else None
        proposer = _make_proposer(kind, llm or meta.get("llm"),
                                  base_url or meta.get("base_url"),
                                  int(meta.get("seed", 0)), RunStore(run).trajectory, chat)
    data = fitted.task.data
    grid = parse_time_spec(t) if t else data.t
    _check_simulation_size(fitted, grid, draws)
    answer = answer_counterfactual(fitted, proposer, question=what or "", interventions=items,
                                   t_eval=np.asarray(grid, dtype=float), draws=draws)
    folder = Path(run) / "counterfactuals" / slug(what or intervention.stem)  # type: ignore[union-attr]
    answer.save(folder)
    path = out or folder / "counterfactual.csv"
    if out is not None:
        answer.frame().to_csv(out, index=False)
    console = console_factory()
    _warn_verdict(run, console)
    understood = getattr(proposer, "last_summary", "") if proposer is not None else ""
    if understood:
        console.print(f"understood: {understood}", markup=False)
    console.print(f"interventions: {[i.to_dict() for i in answer.interventions]}", markup=False)
    for name in fitted.model.observable_names:
        key = name if name not in fitted.model.states_ else f"{name}_obs"
        base = answer.baseline.best.get(key)
        new = answer.intervened.best.get(key)
        if base is not None and new is not None:
            console.print(f"{name}: total {np.nansum(base):.4g} -> {np.nansum(new):.4g} "
                          f"over the grid", markup=False)
    console.print(f"written: {path}", markup=False)
