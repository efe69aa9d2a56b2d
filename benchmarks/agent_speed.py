"""How long the agent takes, before and after issue 15, in one run.

``before`` is the path as it was: fits one candidate after another in the search's own
process (``workers=0``) by whole-window multi-start and L-BFGS (``strategy="single"``).
``after`` is today's default: segments fitted side by side, the batched Newton polish,
and fits in worker processes. Measured, both ways:

* the README's main job (``mmw model`` on the hare-lynx records, as a subprocess), its
  wall time and its ranked table (structure, validation error);
* one search on each of four suite tasks (the bench's offline agent: 3 proposals, 4
  nodes, 1 refinement; no time budget, so both ways evaluate the same nodes);
* every candidate's fit time (median and 90th percentile over all of the above).

Prints one JSON object (``--json``), with ratios and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("eco-voles-full", "epi-seir-delay-partial", "pk-saturable-full", "bio-chemostat-full")
MAIN_JOB = ["--data", "examples/data/hare_lynx.csv", "--describe-file",
            "examples/descriptions/hare_lynx.md", "--train-until", "1915", "--initial", "3",
            "--max-nodes", "6"]
PATHS = {"before": {"workers": 0, "strategy": "single"},
         "after": {"workers": None, "strategy": "shooting"}}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main_job(path: str, out: Path) -> dict[str, Any]:
    """The README's main job through the command line, as a user runs it."""
    settings = PATHS[path]
    cmd = [str(Path(sys.executable).parent / "mmw"), "model", *MAIN_JOB, "--out", str(out),
           "--fit-strategy", settings["strategy"]]
    if settings["workers"] is not None:
        cmd += ["--workers", str(settings["workers"])]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"main job ({path}) failed:\n{done.stderr[-2000:]}")
    tree = json.loads((out / "tree.json").read_text())
    fits, ranked = [], []
    for node in tree["nodes"]:
        fit_file = out / "candidates" / node["id"] / "fit.json"
        if fit_file.exists():
            fits.append(float(json.loads(fit_file.read_text())["wall_time"]))
        if node["status"] == "ok":
            ranked.append([node["structure"], node["validation_error"]])
    ranked.sort(key=lambda row: (row[1] is None, row[1]))
    return {"wall_seconds": round(wall, 1), "fit_seconds": fits, "ranked": ranked,
            "verdict": (tree.get("verdict") or {}).get("adequate")}


def suite_search(path: str, name: str, sandbox: Any) -> dict[str, Any]:
    """One search on a suite task with the bench's offline agent's breadth."""
    from agent.fitpool import default_workers
    from agent.loop import Search, SearchConfig
    from agent.proposers import ProposerSettings, make_proposer
    from evals.agents import Budget
    from evals.suite import all_tasks

    settings = PATHS[path]
    task = all_tasks()[name]
    workers = default_workers() if settings["workers"] is None else settings["workers"]
    fit = replace(Budget().fit, strategy=settings["strategy"])
    config = SearchConfig(initial=3, max_nodes=4, refinements=1, max_repairs=1, fit=fit,
                          seed=0, workers=workers)
    started = time.perf_counter()
    result = Search(task.agent_task(0), make_proposer("offline", ProposerSettings(seed=0)),
                    config, sandbox=sandbox).run()
    wall = time.perf_counter() - started
    return {"wall_seconds": round(wall, 1),
            "fit_seconds": [float(n.fit["wall_time"]) for n in result.nodes if n.fit],
            "ranked": [[n.candidate.structure, n.validation_error] for n in result.ranked]}


def run(paths: tuple[str, ...], tasks: tuple[str, ...], skip_main: bool) -> dict[str, Any]:
    from sandbox.auto import open_sandbox

    out: dict[str, Any] = {"load_before": _load(), "cpus": os.cpu_count(), "paths": PATHS,
                           "tasks": list(tasks)}
    scratch = Path(tempfile.mkdtemp(prefix="mmw-agent-speed-"))
    try:
        for path in paths:
            entry: dict[str, Any] = {}
            if not skip_main:
                entry["main_job"] = main_job(path, scratch / f"main-{path}")
            sandbox = open_sandbox()
            try:
                entry["suite"] = {name: suite_search(path, name, sandbox) for name in tasks}
            finally:
                sandbox.close()
            fits = list(entry.get("main_job", {}).get("fit_seconds", []))
            for search in entry["suite"].values():
                fits += search["fit_seconds"]
            entry["fit_median_seconds"] = round(statistics.median(fits), 2) if fits else None
            entry["fit_p90_seconds"] = round(_percentile(fits, 0.9) or 0.0, 2)
            entry["suite_wall_seconds"] = round(sum(s["wall_seconds"]
                                                    for s in entry["suite"].values()), 1)
            out[path] = entry
            out[f"load_after_{path}"] = _load()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if "before" in out and "after" in out:
        before, after = out["before"], out["after"]
        ratios: dict[str, Any] = {
            "fit_median": _ratio(before["fit_median_seconds"], after["fit_median_seconds"]),
            "fit_p90": _ratio(before["fit_p90_seconds"], after["fit_p90_seconds"]),
            "suite_wall": _ratio(before["suite_wall_seconds"], after["suite_wall_seconds"]),
        }
        if "main_job" in before:
            ratios["main_job_wall"] = _ratio(before["main_job"]["wall_seconds"],
                                             after["main_job"]["wall_seconds"])
            b, a = before["main_job"]["ranked"], after["main_job"]["ranked"]
            ratios["main_job_best_validation_error"] = {"before": b[0][1] if b else None,
                                                       "after": a[0][1] if a else None}
        out["speedup"] = ratios
    return out


def _ratio(before: float | None, after: float | None) -> float | None:
    return round(before / after, 2) if before and after else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--paths", default="before,after")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--skip-main", action="store_true", help="suite searches only")
    args = parser.parse_args()
    result = run(tuple(args.paths.split(",")), tuple(t for t in args.tasks.split(",") if t),
                 args.skip_main)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
