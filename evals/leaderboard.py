"""Aggregating job results into a leaderboard: means with bootstrap intervals, by agent,
overall, per domain and per task.

The unit of resampling is one (task, seed) job of an agent: a benchmark's uncertainty
comes from which tasks and noise realisations it happened to draw, so the 95% interval is
a percentile bootstrap over those units (2,000 resamples, seeded from the agent, scope
and metric names, so the same results give the same intervals, byte for byte). A metric
is averaged over the units where it exists (a forecast-only task has no counterfactual
error; a failed job has no forecast): the ``n`` next to each cell says how many, and the
valid rate, where failures count as zero, says how often an agent had anything to score.

Outputs, written by ``write_leaderboard``:

* ``results.json``: the manifest, every job (without plot series), ``scores`` and
  ``timing``;
* ``leaderboard.md``: score tables only. It depends on nothing but the scores, so two
  executors that produce the same results produce the same file (issue 8 compares it);
* ``timing.md``: wall times and the failed jobs' reasons, which differ run to run.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evals.runner import read_results, write_json
from mechanistic.files import write_atomic

__all__ = ["COMPACT", "METRICS", "METRIC_BY_KEY", "STATUSES", "TIMING", "Metric",
           "aggregate", "bootstrap", "cell_text", "leaderboard_markdown", "timing_markdown",
           "write_leaderboard"]

RESAMPLES = 2000


@dataclass(frozen=True)
class Metric:
    """A leaderboard column: the key in a result's ``metrics``, its label and group."""

    key: str
    label: str
    group: str
    higher_is_better: bool = False
    percent: bool = False


METRICS = (
    Metric("valid", "valid rate", "Validity and effort", True, True),
    Metric("valid_rate", "valid nodes", "Validity and effort", True, True),
    Metric("repairs", "repairs", "Validity and effort"),
    Metric("llm_calls", "LLM calls", "Validity and effort"),
    Metric("tokens", "tokens", "Validity and effort"),
    Metric("forecast_skill", "forecast skill", "Forecast"),
    Metric("forecast_nrmse_truth", "forecast NRMSE vs truth", "Forecast"),
    Metric("param_error", "param error", "Parameters"),
    Metric("cf_error", "cf error", "Counterfactuals"),
    Metric("cf_error_experiment", "cf error vs experiment", "Counterfactuals"),
    Metric("cf_noise_floor", "cf noise floor", "Counterfactuals"),
    Metric("cf_effect_error", "cf effect error", "Counterfactuals"),
)
COMPACT = ("valid", "forecast_skill", "forecast_nrmse_truth", "param_error", "cf_error",
           "cf_effect_error")
TIMING = (Metric("wall_s", "agent wall s", "Timing"), Metric("job_wall_s", "job wall s",
                                                              "Timing"))
STATUSES = ("ok", "invalid", "error", "timeout")
METRIC_BY_KEY = {m.key: m for m in (*METRICS, *TIMING)}


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def bootstrap(values: Sequence[float], seed: int,
              resamples: int = RESAMPLES) -> dict[str, float | int] | None:
    """Mean, median and percentile-bootstrap 95% interval of the mean; None when empty."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return None
    mean = float(v.mean())
    if v.size == 1:
        lo = hi = mean
    else:
        rng = np.random.default_rng(seed)
        means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)
        lo, hi = (float(q) for q in np.quantile(means, [0.025, 0.975]))
    return {"mean": _round(mean), "lo": _round(lo), "hi": _round(hi),
            "median": _round(float(np.median(v))), "n": int(v.size)}


def _seed(*parts: str) -> int:
    return zlib.crc32("|".join(parts).encode("utf-8"))


def _value(result: Mapping[str, Any], key: str) -> float | None:
    """A job's value for a metric; failures count as not valid, timing from the job."""
    metrics = result.get("metrics") or {}
    if key == "valid":
        value = metrics.get("valid", result.get("status") == "ok")
    elif key == "job_wall_s" or (key == "wall_s" and metrics.get("wall_s") is None):
        value = result.get("wall_s")
    else:
        value = metrics.get(key)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and np.isfinite(value):
        return float(value)
    return None


def _summarise(results: Sequence[Mapping[str, Any]], metrics: Iterable[Metric], scope: str,
               agent: str) -> dict[str, Any]:
    status = dict.fromkeys(STATUSES, 0)
    for r in results:
        status[r["status"]] = status.get(r["status"], 0) + 1
    out: dict[str, Any] = {"jobs": len(results), "status": status, "metrics": {}}
    for m in metrics:
        values = [v for v in (_value(r, m.key) for r in results) if v is not None]
        out["metrics"][m.key] = bootstrap(values, _seed(scope, agent, m.key))
    return out


def _agents(results: Sequence[Mapping[str, Any]], manifest: Mapping[str, Any]) -> list[str]:
    present = {r["agent"] for r in results}
    ordered = [a for a in manifest.get("agents", []) if a in present]
    return ordered + sorted(present - set(ordered))


def _domain(result: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    info = manifest.get("tasks", {}).get(result["task"], {})
    return str(info.get("domain") or result.get("domain") or "unknown")


def aggregate(results: Sequence[Mapping[str, Any]], manifest: Mapping[str, Any],
              metrics: Sequence[Metric] = METRICS, scopes: bool = True) -> dict[str, Any]:
    """``{"overall": {agent: summary}, "by_domain": {domain: {agent: ...}},
    "by_task": {task: {agent: ...}}}``; a summary holds job and status counts and, per
    metric, mean / median / 95% interval / n (or None)."""
    agents = _agents(results, manifest)
    groups: dict[str, dict[str, dict[str, list[Mapping[str, Any]]]]] = {
        "overall": {"all": {}}, "by_domain": {}, "by_task": {}}
    for r in sorted(results, key=lambda r: (r["task"], r["agent"], r["seed"])):
        groups["overall"]["all"].setdefault(r["agent"], []).append(r)
        if scopes:
            groups["by_domain"].setdefault(_domain(r, manifest), {}).setdefault(
                r["agent"], []).append(r)
            groups["by_task"].setdefault(r["task"], {}).setdefault(r["agent"], []).append(r)
    out: dict[str, Any] = {"overall": {}, "by_domain": {}, "by_task": {}}
    for a in agents:
        if a in groups["overall"]["all"]:
            out["overall"][a] = _summarise(groups["overall"]["all"][a], metrics, "overall", a)
    for scope in ("by_domain", "by_task"):
        for name in sorted(groups[scope]):
            out[scope][name] = {a: _summarise(groups[scope][name][a], metrics,
                                              f"{scope}:{name}", a)
                                for a in agents if a in groups[scope][name]}
    return out


# --------------------------------------------------------------------------- Markdown
def _md(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def cell_text(summary: Mapping[str, Any] | None, metric: Metric) -> str:
    """``mean [lo, hi] (n)``, percentages for rates, ``-`` when there is no value."""
    if summary is None:
        return "-"
    if metric.percent:
        return (f"{100 * summary['mean']:.0f}% [{100 * summary['lo']:.0f}, "
                f"{100 * summary['hi']:.0f}] ({summary['n']})")
    return f"{summary['mean']:.3g} [{summary['lo']:.3g}, {summary['hi']:.3g}] ({summary['n']})"


def _table(rows: Mapping[str, Mapping[str, Any]], keys: Sequence[str],
           counts: bool = False) -> list[str]:
    head = ["agent"] + (["jobs", *STATUSES] if counts else []) + [METRIC_BY_KEY[k].label
                                                                     for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for agent, summary in rows.items():
        cells = [_md(agent)]
        if counts:
            cells += [str(summary["jobs"])] + [str(summary["status"].get(s, 0))
                                               for s in STATUSES]
        cells += [cell_text(summary["metrics"].get(k), METRIC_BY_KEY[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def leaderboard_markdown(scores: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """The score tables (no wall times: see the module docstring)."""
    tasks = manifest.get("tasks", {})
    budget = manifest.get("budget", {})
    lines = ["# mmw bench leaderboard", "",
             f"Agents: {', '.join(_md(a) for a in scores['overall'])}. "
             f"Tasks: {len(scores['by_task'])} in {len(scores['by_domain'])} domain(s). "
             f"Seeds: {', '.join(str(s) for s in manifest.get('seeds', []))}. "
             f"Budget per job: {budget.get('max_seconds', '?')} s search, "
             f"{budget.get('max_nodes', '?')} nodes.", "",
             "Cells: mean [95% bootstrap interval over (task, seed) jobs] (jobs with a "
             "value). Lower is better except the valid rates. Forecast skill: test-window "
             "RMSE over that of the naive persistence forecast (below 1 beats it); errors "
             "are normalised by the spread of the truth; param error is the median "
             "relative error of the comparable parameters. Wall times are in timing.md."]
    groups: dict[str, list[str]] = {}
    for m in METRICS:
        groups.setdefault(m.group, []).append(m.key)
    for i, (group, keys) in enumerate(groups.items()):
        lines += ["", f"## {group}", ""] + _table(scores["overall"], keys, counts=i == 0)
    lines += ["", "## By domain"]
    for domain, rows in scores["by_domain"].items():
        lines += ["", f"### {_md(domain)}", ""] + _table(rows, COMPACT)
    lines += ["", "## By task"]
    for task, rows in scores["by_task"].items():
        info = tasks.get(task, {})
        about = ", ".join(_md(info[k]) for k in ("domain", "difficulty", "variant")
                          if info.get(k))
        lines += ["", f"### {_md(task)}" + (f" ({about})" if about else ""), ""]
        lines += _table(rows, COMPACT, counts=True)
    return "\n".join(lines) + "\n"


def timing_markdown(timing: Mapping[str, Any],
                    results: Sequence[Mapping[str, Any]]) -> str:
    """Wall times per agent and task, and why each failed job failed."""
    keys = [m.key for m in TIMING]
    lines = ["# mmw bench timing", "", "Cells: mean [95% bootstrap interval] (jobs), seconds."
             " Agent wall time is the agent's own; job wall time adds task loading, "
             "sandbox start-up and scoring.", "", "## Overall", ""]
    lines += _table(timing["overall"], keys)
    lines += ["", "## By task"]
    for task, rows in timing["by_task"].items():
        lines += ["", f"### {_md(task)}", ""] + _table(rows, keys)
    failed = [r for r in results if r["status"] in ("error", "timeout")]
    lines += ["", "## Failed jobs", ""]
    if not failed:
        lines.append("None.")
    for r in failed:
        reason = " ".join(str(r.get("reason", "")).split())[:300]
        lines.append(f"- `{_md(r['key'])}` {r['status']}: {_md(reason)}")
    return "\n".join(lines) + "\n"


def _job_row(result: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("series", "detail")}


def write_leaderboard(out: str | Path, manifest: Mapping[str, Any] | None = None,
                      results: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Path]:
    """Aggregate ``OUT/results/*.json`` into results.json, leaderboard.md and timing.md."""
    import json

    folder = Path(out)
    if manifest is None:
        path = folder / "bench.json"
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if results is None:
        results = read_results(folder)
    if not results:
        raise ValueError(f"{folder}: no job results (results/*.json) to aggregate")
    scores = aggregate(results, manifest)
    timing = aggregate(results, manifest, TIMING)
    timing.pop("by_domain")
    files = {"results": folder / "results.json", "leaderboard": folder / "leaderboard.md",
             "timing": folder / "timing.md"}
    write_json(files["results"], {"manifest": manifest, "scores": scores, "timing": timing,
                                  "jobs": [_job_row(r) for r in results]}, sort_keys=False)
    write_atomic(files["leaderboard"], leaderboard_markdown(scores, manifest))
    write_atomic(files["timing"], timing_markdown(timing, results))
    return files
