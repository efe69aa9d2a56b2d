"""Measured series: forecast-only tasks with no ground-truth simulator.

The Hudson's Bay Company fur returns (``examples/data/hare_lynx.csv``) are the classic
predator-prey record. Nothing is known about the true mechanism or its parameters, so an
agent is scored only on how well it forecasts the held-out years.
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask

__all__ = ["tasks"]

HARE_LYNX = "examples/data/hare_lynx.csv"


def hare_lynx() -> BenchTask:
    return BenchTask(
        name="eco-hare-lynx-real",
        domain="ecology",
        difficulty="hard",
        tags=("predator-prey", "real-data", "cycles", "forecast-only"),
        variant="real",
        description=(
            "Snowshoe hares and Canada lynx in the boreal forest of Canada, recorded as the "
            "number of pelts (thousands) the Hudson's Bay Company bought from trappers each "
            "year. Lynx feed mostly on hares, and both populations rise and fall in cycles "
            "of about ten years. Forecast both series for the coming years."),
        time_unit="year",
        times=np.arange(1845.0, 1936.0),
        train_until=1905.0,
        validate_until=1915.0,
        observed=("Hare", "Lynx"),
        hidden=(),
        truth_model=None,
        truth_params={},
        conditions=(),
        counterfactuals=(),
        recover={},
        wrong_model=None,
        noise_seed=0,
        data_path=HARE_LYNX,
    )


def tasks() -> list[BenchTask]:
    return [hare_lynx()]
