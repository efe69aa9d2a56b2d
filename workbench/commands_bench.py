"""``mmw bench list|run|report``: the NIMM-style benchmark from the command line.

``run`` plans (task, agent, seed) jobs, runs them in parallel processes (or on a Ray
cluster with ``--executor ray``), prints a line per finished job, and writes the run
folder: ``bench.json``, ``results/``, ``results.json``, ``leaderboard.md``, ``timing.md``
and ``report.html``. Running the same command again resumes: finished jobs are reused.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["list_command", "register", "report_command", "run_command"]

_HEADLINE = ("valid", "forecast_skill", "param_error", "cf_error")
TasksDir = Annotated[Path | None, typer.Option(
    "--tasks-dir", help="Load tasks from this folder of task JSON files instead of the suite.")]


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _agents(value: str) -> list[str]:
    from evals.agents import agent_names

    known = agent_names()  # the registry's names, plugins included
    names = list(dict.fromkeys(_split(value)))
    unknown = [a for a in names if a not in known]
    if unknown or not names:
        raise ValueError(f"--agents: unknown agent(s) {', '.join(unknown) or '(none given)'}; "
                         f"agents: {', '.join(known)}")
    return names


def _llm(agents: list[str], model: str | None, base_url: str | None,
         context_window: int | None = None, answer_tokens: int | None = None
         ) -> dict[str, Any] | None:
    """LLM settings as data (validated here, so a typo fails before any job starts)."""
    if model is None and base_url is None:
        if "llm" in agents or "llm-structured" in agents:
            raise ValueError("--agents llm needs --llm-model provider:model (e.g. "
                             "openai:gpt-4o-mini) or --base-url URL of an OpenAI-compatible "
                             "endpoint")
        return None
    from evals.agents import LLMSettings

    name = model or "default"
    if base_url:  # "openai:NAME" names the protocol; the endpoint wants the bare name
        name = name.removeprefix("openai:")
    settings = LLMSettings(model=name, base_url=base_url, context_window=context_window)
    if answer_tokens is not None:
        settings = replace(settings, max_tokens=answer_tokens)
    return settings.to_dict()


def _executor(kind: str, workers: int, address: str | None) -> Any:
    if kind == "local":
        if address is not None:
            raise ValueError("--address is for --executor ray")
        from evals.executor import LocalProcessExecutor

        return LocalProcessExecutor(workers=workers)
    if kind == "ray":
        try:
            import ray  # noqa: F401  (the optional dependency; RayExecutor imports it lazily)
        except ImportError as exc:
            raise ValueError(f"--executor ray is not available here ({exc}); install the "
                             f"ray extra (pip install 'mmw[ray]') or use --executor local"
                             ) from None
        from evals.executor_ray import RayExecutor

        return RayExecutor(address=address, workers=workers)
    raise ValueError(f"--executor {kind!r}: use local or ray")


def _progress_line(done: int, total: int, job: Any, result: dict[str, Any]) -> str:
    metrics = result.get("metrics") or {}
    parts = [f"[{done}/{total}] {job.key}: {result['status']}"]
    for key, label in (("forecast_skill", "skill"), ("cf_error", "cf"),
                       ("param_error", "param")):
        if isinstance(metrics.get(key), int | float):
            parts.append(f"{label} {metrics[key]:.3g}")
    if isinstance(result.get("wall_s"), int | float):
        parts.append(f"{result['wall_s']:.1f} s")
    if result["status"] != "ok" and result.get("reason"):
        parts.append("- " + " ".join(str(result["reason"]).split())[:160])
    return "  ".join(parts)


def _headline(console: Any, scores: dict[str, Any]) -> None:
    from rich.box import SIMPLE_HEAD
    from rich.table import Table

    from evals.leaderboard import METRIC_BY_KEY, cell_text

    table = Table(title="leaderboard: mean, [95% bootstrap interval]", title_justify="left",
                  box=SIMPLE_HEAD)
    table.add_column("agent", no_wrap=True)
    table.add_column("jobs", justify="right", min_width=4)
    for key in _HEADLINE:
        table.add_column(METRIC_BY_KEY[key].label, justify="right", no_wrap=True)
    for agent, summary in scores["overall"].items():
        # "mean [lo, hi] (n)" on two lines: the interval under the mean, n dropped (the
        # jobs column says it), so the table fits a terminal of 80 columns.
        cells = (cell_text(summary["metrics"].get(k), METRIC_BY_KEY[k]) for k in _HEADLINE)
        table.add_row(agent, str(summary["jobs"]),
                      *(c.rsplit(" (", 1)[0].replace(" [", "\n[", 1) for c in cells))
    console.print(table)


def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the tasks as JSON.")]
    = False,
    tasks: Annotated[str | None, typer.Option(
        "--tasks", help="Comma-separated patterns over names, domains, tags.")] = None,
    tasks_dir: TasksDir = None,
) -> None:
    """List the benchmark's tasks (and the agents that can be run on them)."""
    from evals.agents import agent_names
    from evals.suite import select
    from workbench.cli import _console, _user_errors

    with _user_errors():
        chosen = select(tasks, tasks_dir)
    rows = [{"name": t.name, "domain": t.domain, "difficulty": t.difficulty,
             "variant": t.variant, "tags": list(t.tags), "observed": list(t.observed),
             "hidden": list(t.hidden), "time_unit": t.time_unit,
             "times": len(t.times), "train_until": t.train_until,
             "validate_until": t.validate_until,
             "counterfactuals": [c.question for c in t.counterfactuals]}
            for t in chosen]
    if as_json:
        typer.echo(json.dumps({"tasks": rows, "agents": list(agent_names())}, indent=2))
        return
    from rich.table import Table

    # Fits 80 columns: names (which end in the variant) never wrap, observed columns
    # wrap at commas, numbers are counts (hidden states, what-if questions);
    # difficulty, variant and tags are in --json.
    table = Table(title=f"{len(rows)} task(s)", title_justify="left", box=None,
                  padding=(0, 2, 0, 0), header_style="bold")
    for col in ("name", "domain"):
        table.add_column(col, no_wrap=True)
    table.add_column("observed", overflow="fold")
    table.add_column("hidden", justify="right", no_wrap=True)
    table.add_column("what-if", justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r["name"], r["domain"], ", ".join(r["observed"]),
                      str(len(r["hidden"])), str(len(r["counterfactuals"])))
    console = _console()
    console.print(table)
    console.print(f"agents: {', '.join(agent_names())}", markup=False)


def run_command(
    agents: Annotated[str, typer.Option("--agents", help="Comma-separated agents, e.g. "
                                        "library,zero-shot,repair-only,neural,oracle.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (resumed if it exists).")],
    tasks: Annotated[str | None, typer.Option(
        "--tasks", help="Comma-separated patterns over task names, domains and tags "
                        "(default: every task).")] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1,
                                       help="Seeds per task (noise draws).")] = 1,
    workers: Annotated[int, typer.Option("--workers", min=1,
                                         help="Jobs at once.")] = 1,
    budget_seconds: Annotated[float, typer.Option(
        "--budget-seconds", help="Each agent's search time per job; jobs are killed "
                                 "at 1.5x this plus 120 s.")] = 300.0,
    max_nodes: Annotated[int, typer.Option("--max-nodes", min=1,
                                           help="Candidates per search.")] = 5,
    executor: Annotated[str, typer.Option("--executor", help="local or ray.")] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", help="Ray cluster address (with --executor ray).")] = None,
    llm_model: Annotated[str | None, typer.Option(
        "--llm-model", help="For the llm agent: provider:model, or the model name "
                            "at --base-url.")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="OpenAI-compatible endpoint for the llm agent.")] = None,
    context_window: Annotated[int | None, typer.Option(
        "--context-window", min=256, help="The llm agents' model's context window in "
                                          "tokens (else learned from the server).")] = None,
    answer_tokens: Annotated[int | None, typer.Option(
        "--answer-tokens", min=16, help="Longest answer of the llm agents, in tokens "
                                        "(default 8192).")] = None,
    tasks_dir: TasksDir = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Run errors and timeouts again when resuming.")] = False,
) -> None:
    """Run agents on tasks in parallel; write results, leaderboard and report."""
    from evals.agents import Budget
    from evals.report import write_report
    from evals.runner import make_manifest, plan, run_benchmark
    from evals.suite import select
    from workbench.cli import _console, _fail, _user_errors

    console, err = _console(), _console(stderr=True)
    with _user_errors():
        names = _agents(agents)
        llm = _llm(names, llm_model, base_url, context_window, answer_tokens)
        runner = _executor(executor, workers, address)
        budget = Budget(max_seconds=budget_seconds, max_nodes=max_nodes)
        chosen = select(tasks, tasks_dir)
        jobs = plan(chosen, names, seeds, budget, out, llm=llm, tasks_dir=tasks_dir)
        if not jobs:
            raise ValueError(f"none of the agents {', '.join(names)} applies to the "
                             f"selected tasks ({', '.join(t.name for t in chosen)})")
        manifest = make_manifest(chosen, names, range(seeds), budget, executor=executor,
                                 workers=workers)
    err.print(f"{len(jobs)} job(s): {len(chosen)} task(s) x {len(names)} agent(s) x "
              f"{seeds} seed(s), {workers} at once ({executor}); results in {out}/",
              markup=False)
    try:
        with _user_errors():
            result = run_benchmark(
                jobs, runner, out, manifest=manifest, retry_failed=retry_failed,
                progress=lambda d, n, j, r: err.print(_progress_line(d, n, j, r),
                                                      markup=False))
    except KeyboardInterrupt:
        raise _fail(f"interrupted; finished jobs are kept in {out}/results: run the "
                    f"same command to resume") from None
    if result.reused:
        err.print(f"reused {len(result.reused)} finished job(s) from {out}/results",
                  markup=False)
    from evals.bench_files import SUMMARY, read_bench_json

    report = write_report(out)  # aggregates first: results.json, leaderboard.md
    _headline(console, read_bench_json(out, "results.json", SUMMARY)["scores"])
    counts = ", ".join(f"{n} {s}" for s, n in result.counts().items() if n)
    console.print(f"jobs: {counts}; leaderboard {out / 'leaderboard.md'}, timing "
                  f"{out / 'timing.md'}, report {report}", markup=False)


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Folder written by `mmw bench run`.")],
) -> None:
    """Re-aggregate a run folder; write leaderboard.md, results.json and report.html."""
    from evals.report import write_report
    from workbench.cli import _console, _user_errors

    with _user_errors():
        path = write_report(run_dir)
    console = _console()
    console.print(f"leaderboard: {run_dir / 'leaderboard.md'}", markup=False)
    console.print(f"report: {path}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``mmw bench list|run|report`` to the command line."""
    bench_app = typer.Typer(help="NIMM-style benchmark: tasks with ground truths, agents "
                                 "side by side, a leaderboard and a report.",
                            no_args_is_help=True)
    app.add_typer(bench_app, name="bench")
    bench_app.command("list")(list_command)
    bench_app.command("run")(run_command)
    bench_app.command("report")(report_command)
