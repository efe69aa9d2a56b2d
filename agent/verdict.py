"""Is the best candidate adequate? Naive baselines scored beside it on the validation window.

A ranked list always has a first entry, so ranking alone cannot say that the best model is
any good: a search on data none of its structures explains still returns a "best". The
verdict compares the best candidate with three forecasts that need no model at all, on the
same validation rows the candidates were ranked on:

* ``persistence``: the last training observation carried forward;
* ``mean``: the training window's mean level (what a model that learned only the average
  would say; an oscillation beats persistence this way, so persistence alone is not
  enough);
* ``trend``: a straight line through the last quarter of the training window (at least
  four points), extrapolated.

Errors are pooled over columns like the benchmark's forecast skill (``evals/metrics.py``):
``sqrt(sum_c MSE_c / s_c^2)``, each column scaled by the spread ``s_c`` of what the agent
saw of it, so the verdict on the validation window reads the same way as the skill on the
test window. The candidate is *adequate* only when its error is at most ``MARGIN`` times
every baseline's: a model that merely ties a naive forecast has not explained anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.core import Task

__all__ = ["Verdict", "baseline_forecasts", "judge"]

BASELINES = ("persistence", "mean", "trend")
MARGIN = 0.9


@dataclass(frozen=True)
class Verdict:
    """The adequacy verdict of a search; ``adequate`` is None when it cannot be judged."""

    adequate: bool | None
    best: str | None
    best_error: float | None
    baselines: Mapping[str, float]
    message: str
    advice: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return {True: "adequate", False: "not adequate", None: "not judged"}[self.adequate]

    def line(self) -> str:
        """One line for a terminal: the verdict, its numbers and what to try."""
        tail = f" Try: {'; '.join(self.advice)}." if self.advice else ""
        return f"verdict: {self.label}. {self.message}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {"adequate": self.adequate, "label": self.label, "best": self.best,
                "best_error": _finite(self.best_error),
                "baselines": {k: _finite(v) for k, v in self.baselines.items()},
                "message": self.message, "advice": list(self.advice)}

    @classmethod
    def from_dict(cls, data: Any) -> Verdict | None:
        """A verdict read back from ``tree.json``; None when absent or malformed."""
        if not isinstance(data, Mapping) or data.get("adequate") not in (True, False, None):
            return None
        base = data.get("baselines")
        baselines = {str(k): float(v) for k, v in base.items()
                     if isinstance(v, int | float)} if isinstance(base, Mapping) else {}
        err = data.get("best_error")
        advice = data.get("advice")
        return cls(data["adequate"], data.get("best") if isinstance(data.get("best"), str)
                   else None, float(err) if isinstance(err, int | float) else None, baselines,
                   str(data.get("message", "")),
                   tuple(str(a) for a in advice) if isinstance(advice, list) else ())


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _windows(task: Task) -> tuple[np.ndarray, np.ndarray]:
    t = task.data.t
    seen = t <= (task.validate_until if task.validate_until is not None else math.inf)
    return t <= task.train_until, seen & (t > task.train_until)


def baseline_forecasts(task: Task) -> dict[str, dict[str, np.ndarray]]:
    """Each baseline's forecast of every column on the validation rows."""
    t = task.data.t
    train, valid = _windows(task)
    out: dict[str, dict[str, np.ndarray]] = {b: {} for b in BASELINES}
    for name, y in task.data.values.items():
        known = train & np.isfinite(y)
        tv = t[valid]
        if not known.any():
            for b in BASELINES:
                out[b][name] = np.full(tv.size, np.nan)
            continue
        tk, yk = t[known], y[known]
        out["persistence"][name] = np.full(tv.size, yk[-1])
        out["mean"][name] = np.full(tv.size, float(np.mean(yk)))
        tail = max(4, math.ceil(0.25 * tk.size))
        if tk.size >= 2:
            slope, intercept = np.polyfit(tk[-tail:], yk[-tail:], 1)
            out["trend"][name] = intercept + slope * tv
        else:
            out["trend"][name] = np.full(tv.size, yk[-1])
    return out


def _pooled(errors: Mapping[str, float], scales: Mapping[str, float]) -> float:
    total = 0.0
    for name, mse in errors.items():
        if not math.isfinite(mse):
            return math.inf
        total += mse / scales[name] ** 2
    return math.sqrt(total) if errors else math.nan


def judge(task: Task, best: Any | None) -> Verdict:
    """The verdict for ``best`` (a Node: its fit's validation residuals carry the RMSE per
    column) against the baselines on the task's validation window."""
    train, valid = _windows(task)
    advice = ("declare the known inputs with --inputs COL", "an LLM agent (--agent llm) for "
              "structures outside the library", "more data or a longer training window")
    if best is None:
        return Verdict(False, None, None, {}, "no valid candidate was found.", advice)
    residuals = (best.fit or {}).get("validation_residuals") or {}
    seen = train | valid
    scales, base_mse = {}, {b: {} for b in BASELINES}
    forecasts = baseline_forecasts(task)
    for name, y in task.data.values.items():
        mask = valid & np.isfinite(y)
        if not mask.any():
            continue
        spread = float(np.std(y[seen & np.isfinite(y)]))
        scales[name] = spread if spread > 0 else (float(np.mean(np.abs(y[mask]))) or 1.0)
        for b in BASELINES:
            pred = forecasts[b][name][np.isfinite(y[valid])]
            base_mse[b][name] = float(np.mean((pred - y[mask]) ** 2))
    if not scales:
        return Verdict(None, best.id, None, {}, "no validation window to judge the best "
                       "candidate on; give --validate-until after --train-until with data "
                       "in between.")
    cand_mse = {n: float(residuals[n]["rmse"]) ** 2 if isinstance(residuals.get(n), Mapping)
                and isinstance(residuals[n].get("rmse"), int | float) else math.inf
                for n in scales}
    error = _pooled(cand_mse, scales)
    baselines = {b: _pooled(base_mse[b], scales) for b in BASELINES}
    beaten = [b for b, v in baselines.items() if error <= MARGIN * v]
    numbers = (f"best candidate {best.candidate.structure} ({best.id}): validation error "
               f"{error:.3g} against persistence {baselines['persistence']:.3g}, the "
               f"training mean {baselines['mean']:.3g} and a straight-line trend "
               f"{baselines['trend']:.3g}")
    if len(beaten) == len(BASELINES):
        return Verdict(True, best.id, error, baselines, f"{numbers}.")
    worse = ", ".join(b for b in BASELINES if b not in beaten)
    return Verdict(False, best.id, error, baselines,
                   f"no adequate structure was found: the {numbers}; it is not clearly "
                   f"better than {worse}, so its forecasts and what-if answers should not "
                   f"be trusted.", advice)
