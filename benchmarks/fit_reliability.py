"""Does the fit of the true structure reach the likelihood of the true parameters?

For every suite task with a ground truth, the truth's own structure is fitted with the
search's default fit settings (``SearchConfig().fit``, not the oracle's budget) on the
training window, exactly as a candidate is (``evals.agents.fit_structure``), and its
log-likelihood is compared with that of the true parameters on the same rows, under the
same solver. A maximum-likelihood fit that works is at least as likely as the truth, up to
the solver's discretisation: the criterion is ``fit >= truth - 1`` (one nat).

``--strategies single,shooting`` measures the fitter before issue 15 beside today's.
Prints one JSON object (``--json``): per task and strategy the gap, the fit time, and why
a task fails; the pass counts for fully and partially observed tasks; load averages.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace
from typing import Any

import numpy as np


def truth_log_likelihood(task: Any, fit: Any, seed: int) -> float:
    """The true parameters' log-likelihood on the fit's training rows, with its solver."""
    import torch

    from mechanistic.observation import log_likelihood
    from mechanistic.simulate import compile_model
    from mechanistic.solvers import solver_from_dict

    model = task.truth_model
    data = task.agent_task(seed).data
    train, _ = data.split(task.train_until)
    controls = {k: v for k, v in task.controls.items() if k in model.controls_}
    params = {k: torch.tensor([v], dtype=torch.float64) for k, v in task.truth_params.items()
              if k in model.params_}
    with torch.no_grad():
        sim = compile_model(model).simulate(params, train.t, solver=solver_from_dict(fit.solver),
                                            interventions=task.conditions,
                                            controls=controls or None, t0=fit.t0)
    y = np.full((len(train), len(model.observable_names)), np.nan)
    for j, name in enumerate(model.observable_names):
        if name in train.values:
            y[:, j] = train.values[name]
    return float(log_likelihood(model, sim.observables, y, params)[0])


def measure(task: Any, strategy: str, seed: int) -> dict[str, Any]:
    from agent.loop import SearchConfig
    from evals.agents import fit_structure

    config = replace(SearchConfig().fit, strategy=strategy)
    started = time.perf_counter()
    try:
        fit = fit_structure(task.truth_model, task, seed, config)
    except Exception as exc:  # a failed fit is a row of the table, with its reason
        return {"ok": False, "why": f"fit raised {type(exc).__name__}: {str(exc)[:200]}",
                "seconds": round(time.perf_counter() - started, 1)}
    seconds = time.perf_counter() - started
    truth = truth_log_likelihood(task, fit, seed)
    gap = fit.log_likelihood - truth
    row: dict[str, Any] = {"gap_nats": round(gap, 3), "fit_ll": round(fit.log_likelihood, 3),
                           "truth_ll": round(truth, 3), "seconds": round(seconds, 1),
                           "ok": bool(math.isfinite(gap) and gap >= -1.0),
                           "shooting_used": bool(strategy == "shooting" and not task.conditions),
                           "converged": fit.converged}
    if not row["ok"]:
        row["why"] = ("no finite likelihood" if not math.isfinite(fit.log_likelihood) else
                      f"stopped {-gap:.1f} nats below the truth ({fit.message})")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--strategies", default="single,shooting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default="", help="comma-separated names (default: all)")
    args = parser.parse_args()
    from evals.suite import all_tasks

    tasks = [t for t in all_tasks().values() if t.truth_model is not None and
             (not args.tasks or t.name in args.tasks.split(","))]
    strategies = [s for s in args.strategies.split(",") if s]
    out: dict[str, Any] = {"load_before": [round(x, 2) for x in os.getloadavg()],
                           "seed": args.seed, "tasks": {}}
    for task in tasks:
        out["tasks"][task.name] = {"hidden": len(task.hidden), **{
            s: measure(task, s, args.seed) for s in strategies}}
    summary: dict[str, Any] = {}
    for s in strategies:
        for kind, want in (("fully_observed", False), ("partially_observed", True)):
            rows = [r[s] for r in out["tasks"].values() if (r["hidden"] > 0) == want]
            summary[f"{s}_{kind}"] = f"{sum(r['ok'] for r in rows)}/{len(rows)}"
        summary[f"{s}_median_seconds"] = float(np.median(
            [r[s]["seconds"] for r in out["tasks"].values()]))
        summary[f"{s}_failing"] = [n for n, r in out["tasks"].items() if not r[s]["ok"]]
    out["summary"] = summary
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
