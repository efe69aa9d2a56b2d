"""What discovery, the verdict and leave-one-motif-out show on a finished benchmark run.

    mmw bench run --agents offline,offline-lomo,library,oracle --seeds 1 --workers 2 \\
        --budget-seconds 150 --max-nodes 4 --out OUT
    python benchmarks/discovery_suite.py OUT --json

Reads ``OUT/results/*.json`` (nothing is rerun) and prints one JSON object:

* ``headline``: mean and median counterfactual error and forecast skill per agent, over
  the library-domain tasks (the suite before discovery) and over the discovery tasks
  (systems no motif covers; ``held-out`` ones also separately);
* ``discovery``: per fully observed discovery task, the best discovery candidate's
  validation error over the oracle's (goal <= 1.5) and the offline agent's counterfactual
  error over the oracle's (goal <= 2), with which proposer won;
* ``lomo``: per fully observed library task, the counterfactual error with the task's own
  motif removed (``offline-lomo``), with it present (``offline``) and the oracle's; the
  median ratio to the oracle (goal <= 2);
* ``verdict``: per task, the offline agent's verdict (decided on the validation window)
  against whether its forecast beat persistence on the held-out test window, and the
  disagreements (goal: at most two).

The load average is printed with the figures, as for every benchmark here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _load(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((out / "results").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("seed", 0) == 0:
            rows[(str(data.get("task")), str(data.get("agent")))] = data
    return rows


def _metric(row: dict[str, Any] | None, key: str) -> float | None:
    if not row:
        return None
    value = (row.get("metrics") or {}).get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _detail(row: dict[str, Any] | None) -> dict[str, Any]:
    return ((row or {}).get("outcome") or {}).get("detail") or {}


def _summary(values: list[float | None]) -> dict[str, Any]:
    finite = [v for v in values if v is not None]
    return {"n": len(finite), "missing": len(values) - len(finite),
            "mean": round(statistics.fmean(finite), 4) if finite else None,
            "median": round(statistics.median(finite), 4) if finite else None}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b not in (None, 0.0) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a finished `mmw bench run --out` folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    from evals.agents import OWN_MOTIFS
    from evals.suite import all_tasks

    tasks = all_tasks()
    rows = _load(args.out)
    agents = sorted({a for _, a in rows})
    groups = {
        "library_tasks": [n for n, t in tasks.items() if "discovery" not in t.tags],
        "discovery_tasks": [n for n, t in tasks.items() if "discovery" in t.tags],
        "held_out_tasks": [n for n, t in tasks.items() if "held-out" in t.tags],
    }
    headline = {
        group: {agent: {"cf_error": _summary([_metric(rows.get((n, agent)), "cf_error")
                                              for n in names if (n, agent) in rows]),
                        "forecast_skill": _summary([_metric(rows.get((n, agent)),
                                                            "forecast_skill")
                                                    for n in names if (n, agent) in rows])}
                for agent in agents}
        for group, names in groups.items()}

    discovery = {}
    for name in groups["discovery_tasks"]:
        task = tasks[name]
        offline, oracle = rows.get((name, "offline")), rows.get((name, "oracle"))
        if offline is None or oracle is None:
            continue
        best_disc = (_detail(offline).get("best_by_proposer") or {}).get("discovery")
        disc_val = best_disc[2] if isinstance(best_disc, list) and len(best_disc) > 2 else None
        oracle_val = _detail(oracle).get("validation_error")
        cf, cf_oracle = _metric(offline, "cf_error"), _metric(oracle, "cf_error")
        discovery[name] = {
            "variant": task.variant, "held_out": "held-out" in task.tags,
            "best_proposer": _detail(offline).get("best_proposer"),
            "best_structure": (offline.get("outcome") or {}).get("structure"),
            "discovery_validation_error": disc_val, "oracle_validation_error": oracle_val,
            "validation_ratio": _ratio(disc_val, oracle_val),
            "cf_error": cf, "oracle_cf_error": cf_oracle, "cf_ratio": _ratio(cf, cf_oracle),
            "library_cf_error": _metric(rows.get((name, "library")), "cf_error"),
            "verdict": (_detail(offline).get("verdict") or {}).get("label")}

    lomo = {}
    for name in OWN_MOTIFS:
        lo, off, orc = (rows.get((name, a)) for a in ("offline-lomo", "offline", "oracle"))
        if lo is None or orc is None:
            continue
        lomo[name] = {"removed": list(OWN_MOTIFS[name]),
                      "cf_lomo": _metric(lo, "cf_error"), "cf_offline": _metric(off, "cf_error"),
                      "cf_oracle": _metric(orc, "cf_error"),
                      "ratio_lomo": _ratio(_metric(lo, "cf_error"), _metric(orc, "cf_error")),
                      "ratio_offline": _ratio(_metric(off, "cf_error"),
                                              _metric(orc, "cf_error")),
                      "best_structure_lomo": (lo.get("outcome") or {}).get("structure")}
    ratios = [v["ratio_lomo"] for v in lomo.values() if v["ratio_lomo"] is not None]
    present = [v["ratio_offline"] for v in lomo.values() if v["ratio_offline"] is not None]
    lomo_summary = {
        "median_ratio_lomo": statistics.median(ratios) if ratios else None,
        "median_ratio_offline": statistics.median(present) if present else None,
        "median_cf_lomo_over_median_cf_oracle": _ratio(
            _summary([v["cf_lomo"] for v in lomo.values()])["median"],
            _summary([v["cf_oracle"] for v in lomo.values()])["median"]),
    }

    verdict_rows, disagreements = {}, []
    for name in tasks:
        row = rows.get((name, "offline"))
        if row is None:
            continue
        verdict = _detail(row).get("verdict") or {}
        skill = _metric(row, "forecast_skill")
        beats = None if skill is None else skill < 1.0
        adequate = verdict.get("adequate")
        agree = None if beats is None or adequate is None else bool(adequate) == beats
        verdict_rows[name] = {"verdict": verdict.get("label"), "test_skill": skill,
                              "beats_persistence_on_test": beats, "agree": agree}
        if agree is False:
            disagreements.append(name)

    report = {"out": str(args.out), "agents": agents, "jobs": len(rows),
              "headline": headline, "discovery": discovery, "lomo": lomo,
              "lomo_summary": lomo_summary, "verdict": verdict_rows,
              "verdict_disagreements": disagreements,
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for key in ("headline", "discovery", "lomo_summary", "verdict_disagreements"):
            print(key, json.dumps(report[key], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
