"""Normalised errors: one rule for every place that divides an RMSE by a series' spread.

The fitter's residual summaries, the main job's validation figures and the benchmark's
metrics all report NRMSE = RMSE / scale. Where the scale is zero (a flat or all-zero
reference) there is no spread to normalise by: a perfect match is 0, any error is
infinite (it cannot be made small relative to nothing), never NaN and never a silent
division by one. Kept here, below every stage, so the three cannot drift apart again.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["normalised_rmse", "series_scale"]


def series_scale(values: np.ndarray) -> float:
    """The spread a series' errors are measured against: its standard deviation, or, for
    a single value or a constant series, its mean magnitude (0 if all values are 0)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0
    spread = float(np.std(finite)) if finite.size > 1 else 0.0
    return spread if spread > 0 else float(np.mean(np.abs(finite)))


def normalised_rmse(rmse: float, scale: float) -> float:
    """``rmse / scale``; with no usable scale, 0 for a perfect match and inf otherwise."""
    if math.isnan(rmse):
        return math.nan
    if scale > 0 and math.isfinite(scale):
        return rmse / scale
    return 0.0 if rmse == 0 else math.inf
