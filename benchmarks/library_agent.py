"""The library agent on synthetic tasks: forecast error vs the oracle, counterfactual error.

    python benchmarks/library_agent.py --json [--task seir-town] [--seed 0]

For each task of ``benchmarks/synthetic_tasks.py`` (ground truths with hidden states and
noise): run the search with the library proposer in a warm sandbox under the small
budgets the tests use, fit the true structure (the oracle) on the same training window,
score both forecasts on the held-out test window the agent never saw, and answer the
task's what-if question with the agent's fitted model against the truth. Prints one
JSON object (``--json``) or a short table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.synthetic_tasks import SEARCH, TASKS, TOLERANCES, run_task
from sandbox.auto import SandboxSettings, open_sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--task", action="append", choices=sorted(TASKS),
                        help="run only these tasks (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="library proposer seed")
    args = parser.parse_args(argv)
    names = args.task or list(TASKS)
    started = time.perf_counter()
    sandbox = open_sandbox(SandboxSettings.from_env(warm=True))
    try:
        results = {name: run_task(TASKS[name], sandbox, SEARCH, seed=args.seed)
                   for name in names}
    finally:
        sandbox.close()
    out = {"budget": SEARCH.to_dict(), "tolerances": TOLERANCES, "tasks": results,
           "wall_seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    for name, r in results.items():
        if not r.get("ok"):
            print(f"{name}: no valid candidate ({r.get('stop_reason')})")
            continue
        f, c = r["forecast"], r["counterfactual"]
        print(f"{name}: best {r['best']!r}; test nRMSE agent {f['agent_vs_data']:.3f} vs "
              f"oracle {f['oracle_vs_data']:.3f} (ratio {f['ratio_vs_data']:.2f}); "
              f"counterfactual trajectory error {c['trajectory_error']:.3f}, effect error "
              f"{c['effect_relative_error']:.1%}; {r['seconds']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
