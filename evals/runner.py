"""Planning and running a benchmark: jobs, one result file per job, resume, the manifest.

A run folder ``OUT`` holds:

* ``bench.json``: the manifest (tasks with their domains, agents, seeds, budget,
  software versions), merged across resumed invocations;
* ``results/<task>__<agent>__s<seed>.json``: one result per job, written atomically
  (status ``ok | invalid | error | timeout``, metrics, plot series, the agent's outcome);
* ``work/<key>/``: each agent's scratch folder;
* later ``results.json``, ``leaderboard.md``, ``timing.md`` (evals.leaderboard) and
  ``report.html`` (evals.report).

Resume is by file: a job whose result file exists and parses is not run again, so a
killed benchmark continues where it stopped (``retry_failed`` re-runs errors and timeouts).

Each job gets ``timeout = budget.max_seconds * 1.5 + 120`` seconds of wall clock
(``job_timeout``): the agent's search stops itself at ``max_seconds`` but the fit it is in
the middle of, the final forecasts and counterfactuals, scoring, process start-up and
imports (torch) come on top; past that limit the executor kills the job and records a
``timeout``.
"""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evals.executor import Executor, Job, failure_result
from mechanistic.files import json_data, write_atomic
from mechanistic.untrusted import parse_json, read_inside

if TYPE_CHECKING:
    from evals.agents import Budget
    from evals.task import BenchTask

__all__ = ["BenchResult", "job_timeout", "load_tasks", "make_manifest", "plan",
           "read_result", "read_results", "run_benchmark", "run_job",
           "write_json", "write_result"]

TIMEOUT_FACTOR = 1.5
TIMEOUT_OVERHEAD_S = 120.0


def job_timeout(job: Job) -> float:
    """Wall-clock limit of one job (see the module docstring for why the slack)."""
    return float(job.budget.max_seconds) * TIMEOUT_FACTOR + TIMEOUT_OVERHEAD_S


# --------------------------------------------------------------------------- JSON files
def write_json(path: Path, data: Any, indent: int | None = 1, sort_keys: bool = True) -> Path:
    """Write JSON atomically (temp file in the folder, then ``os.replace``): a reader or a
    resumed run sees the old file or the whole new one, never half of one. ``sort_keys``
    False keeps an order that means something (agents in the order they were asked for)."""
    text = json.dumps(json_data(data), indent=indent, allow_nan=False,
                      sort_keys=sort_keys) + "\n"
    return write_atomic(path, text)


def result_path(out: str | Path, key: str) -> Path:
    return Path(out) / "results" / f"{key}.json"


def write_result(out: str | Path, result: Mapping[str, Any]) -> Path:
    return write_json(result_path(out, str(result["key"])), result)


def read_result(path: Path) -> dict[str, Any] | None:
    """A stored result, or None when it is missing, truncated or not a result."""
    try:
        data = parse_json(read_inside(path.parent, path.name, str(path)), str(path))
    except (OSError, ValueError):  # missing, a link, a FIFO, torn or hostile: not a result
        return None
    if not isinstance(data, dict) or data.get("status") not in ("ok", "invalid", "error",
                                                                 "timeout"):
        return None
    return data


def read_results(out: str | Path) -> list[dict[str, Any]]:
    """Every readable result in ``OUT/results``, sorted by key."""
    folder = Path(out) / "results"
    found = (read_result(p) for p in sorted(folder.glob("*.json"))) if folder.is_dir() else ()
    return [r for r in found if r is not None]


# --------------------------------------------------------------------------- tasks and plan
def load_tasks(tasks_dir: str | Path | None = None) -> dict[str, BenchTask]:
    """The shipped suite, or every ``*.json`` task in ``tasks_dir`` (validated on load)."""
    from evals.suite import all_tasks

    return dict(all_tasks(tasks_dir))


def plan(tasks: Iterable[BenchTask], agents: Sequence[str], seeds: int | Sequence[int],
         budget: Budget, out: str | Path, *, llm: Mapping[str, Any] | None = None,
         tasks_dir: str | Path | None = None) -> list[Job]:
    """Every applicable (task, agent, seed) job, task-major, in a stable order.

    ``seeds`` is a count (seeds 0..N-1) or explicit seeds. Pairs where the agent cannot
    run (``evals.agents.applicable``: no truth model for the oracle, counterfactual-only
    agents on forecast-only tasks) are left out rather than scored as failures.
    """
    from evals.agents import agent_names, applicable

    known = agent_names()
    unknown = [a for a in agents if a not in known]
    if unknown:
        raise ValueError(f"unknown agent(s) {', '.join(unknown)}; agents: {', '.join(known)}")
    if not agents:
        raise ValueError(f"name at least one agent: {', '.join(known)}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("at least one seed is needed")
    llm_dict = dict(llm) if llm else None
    folder = str(Path(out))
    where = None if tasks_dir is None else str(tasks_dir)
    return [Job(task=t.name, agent=a, seed=s, budget=budget, out=folder, llm=llm_dict,
                tasks_dir=where)
            for t in sorted(tasks, key=lambda t: t.name) for a in agents
            if applicable(a, t) for s in seed_list]


# --------------------------------------------------------------------------- one job
def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": platform.python_version(), "numpy": np.__version__}
    for dist in ("torch", "mmw", "sympy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        if rev.returncode == 0:
            found["git"] = rev.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return found


def _open_sandbox(agent: str) -> tuple[Any, str]:
    """A sandbox for agents that execute generated code; (None, why) when none opens, so
    the agent reports 'no sandbox' as an invalid outcome instead of the job crashing."""
    from evals.agents import needs_sandbox

    if not needs_sandbox(agent):
        return None, "not needed"
    from sandbox.auto import SandboxSettings, open_sandbox
    from sandbox.spec import SandboxError

    try:
        box = open_sandbox(SandboxSettings.from_env())
    except SandboxError as exc:
        return None, f"unavailable: {exc}"
    return box, type(box).__name__


def _outcome_dict(outcome: Any) -> dict[str, Any]:
    return {"valid": bool(outcome.valid), "reason": outcome.reason,
            "structure": outcome.structure, "nodes": outcome.nodes,
            "valid_nodes": outcome.valid_nodes, "repairs": outcome.repairs,
            "llm_calls": outcome.llm_calls, "tokens": outcome.tokens,
            "wall_s": outcome.wall_s, "interventions": list(outcome.interventions),
            "params": dict(outcome.params), "detail": _summary_detail(outcome.detail)}


def _summary_detail(detail: Any) -> dict[str, Any]:
    """The agent's small notes (stop reason, ranking, verdict, best proposer) for reports;
    large or agent-specific entries stay out of the result files."""
    keep = ("stop_reason", "ranked", "verdict", "best", "best_proposer", "best_by_proposer",
            "cf_problems", "validation_error")
    return {k: v for k, v in (detail or {}).items() if k in keep}


def run_job(job: Job) -> dict[str, Any]:
    """Run one job in this process: load the task, open a sandbox, run the agent, score,
    write ``OUT/results/<key>.json`` atomically and return the result.

    Never raises for a failure of the task, agent, sandbox or scoring: those become a
    result with status ``error`` and the exception's message (traceback under
    ``detail``), so a bad job is a row in the leaderboard and not a lost batch.
    """
    start = time.monotonic()
    try:
        from evals.agents import make_agent
        from evals.metrics import score

        task = _task(job.task, job.tasks_dir)
        agent = make_agent(job.agent, llm=job.llm)
        workdir = Path(job.out) / "work" / job.key
        workdir.mkdir(parents=True, exist_ok=True)
        sandbox, sandbox_note = _open_sandbox(job.agent)
        try:
            outcome = agent.run(task, job.seed, job.budget, sandbox, workdir)
        finally:
            if sandbox is not None:
                sandbox.close()
        scored = score(task, job.seed, outcome)
        result = {**job.describe(), "domain": task.domain,
                  "status": "ok" if outcome.valid else "invalid",
                  "reason": "" if outcome.valid else outcome.reason,
                  "wall_s": round(time.monotonic() - start, 3),
                  "metrics": scored["metrics"], "series": scored.get("series"),
                  "outcome": _outcome_dict(outcome), "sandbox": sandbox_note}
    except Exception as exc:
        result = failure_result(job, "error", f"{type(exc).__name__}: {exc}",
                                time.monotonic() - start, detail=traceback.format_exc())
    result = json_data(result)
    try:
        write_result(job.out, result)
    except OSError as exc:  # the driver stores what we return; say why the copy failed
        result["write_error"] = str(exc)
    return result


def _task(name: str, tasks_dir: str | None) -> BenchTask:
    tasks = load_tasks(tasks_dir)
    if name not in tasks:
        raise ValueError(f"no task {name!r} in {tasks_dir or 'the suite'}")
    return tasks[name]


# --------------------------------------------------------------------------- the batch
def make_manifest(tasks: Iterable[BenchTask], agents: Sequence[str], seeds: Sequence[int],
                  budget: Budget, **extra: Any) -> dict[str, Any]:
    """What a run folder was asked to run, with the software that ran it."""
    return {"tasks": {t.name: {"domain": t.domain, "difficulty": t.difficulty,
                               "variant": t.variant, "tags": list(t.tags),
                               "observed": list(t.observed), "hidden": list(t.hidden),
                               "time_unit": t.time_unit, "description": t.description}
                      for t in sorted(tasks, key=lambda t: t.name)},
            "agents": list(agents), "seeds": sorted(int(s) for s in seeds),
            "budget": budget.to_dict(),
            "timeout": {"factor": TIMEOUT_FACTOR, "overhead_s": TIMEOUT_OVERHEAD_S},
            "versions": _versions(), "argv": sys.argv[1:], **extra}


def _merge_manifest(out: Path, new: Mapping[str, Any]) -> dict[str, Any]:
    """Resuming into a folder keeps its budget (results under two budgets would be mixed
    in one leaderboard) and adds the new tasks, agents and seeds."""
    path = out / "bench.json"
    try:
        old = parse_json(read_inside(out, "bench.json", str(path)), str(path))
    except FileNotFoundError:
        return dict(new)
    except ValueError as exc:
        raise ValueError(f"{path} cannot be resumed into: {exc}; use a new --out folder") \
            from None
    if not isinstance(old, dict):
        raise ValueError(f"{path} is not a bench manifest; use a new --out folder")
    if old.get("budget") != json_data(new.get("budget")):
        raise ValueError(f"{out} holds results for budget {old.get('budget')}; this run asks "
                         f"for {json_data(new.get('budget'))}: use another --out")
    merged = {**old, **new}
    merged["tasks"] = {**old.get("tasks", {}), **new.get("tasks", {})}
    merged["agents"] = list(dict.fromkeys([*old.get("agents", []), *new.get("agents", [])]))
    merged["seeds"] = sorted(set(old.get("seeds", [])) | set(new.get("seeds", [])))
    return merged


@dataclass(frozen=True)
class BenchResult:
    """What one ``run_benchmark`` call did: results by key, and which ran or were reused."""

    out: Path
    results: dict[str, dict[str, Any]]
    ran: tuple[str, ...]
    reused: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        counts = {"ok": 0, "invalid": 0, "error": 0, "timeout": 0}
        for r in self.results.values():
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return counts


Progress = Callable[[int, int, Job, dict[str, Any]], None]


def run_benchmark(jobs: Sequence[Job], executor: Executor, out: str | Path,
                  progress: Progress | None = None, *, manifest: Mapping[str, Any] | None = None,
                  retry_failed: bool = False,
                  timeout: Callable[[Job], float] = job_timeout,
                  fn: Callable[[Job], dict[str, Any]] = run_job) -> BenchResult:
    """Run the jobs that have no stored result yet; store every result as it arrives.

    ``progress(done, total, job, result)`` is called per finished job (reused ones are
    not reported). The runner, not the worker, is the one writer that matters: results
    yielded by the executor (a killed or crashed job included) are written here, so the
    run folder is complete even when workers run on other machines. ``fn`` is the job
    function the executor runs (tests pass a fake).
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("the job list names the same (task, agent, seed) twice")
    if manifest is not None:
        write_json(folder / "bench.json", _merge_manifest(folder, manifest), indent=2)
    results: dict[str, dict[str, Any]] = {}
    todo: list[Job] = []
    for job in jobs:
        stored = read_result(result_path(folder, job.key))
        if stored is not None and not (retry_failed and stored["status"] in ("error",
                                                                               "timeout")):
            results[job.key] = stored
        else:
            todo.append(job)
    reused = tuple(results)
    ran: list[str] = []
    for done, (job, result) in enumerate(executor.run(fn, todo, timeout), 1):
        result = json_data(result)
        write_result(folder, result)
        results[job.key] = result
        ran.append(job.key)
        if progress is not None:
            progress(done, len(todo), job, result)
    return BenchResult(folder, {k: results[k] for k in keys if k in results}, tuple(ran),
                       reused)

