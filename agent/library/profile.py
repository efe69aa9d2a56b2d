"""What the library reads off a task before building a motif: the data's shape and units.

Priors are scaled from the data (initial sizes from the first observations, noise levels
from the spread) and rates are converted into the task's time unit, so a motif written
once in its field's natural unit (per day for epidemics, per hour for drugs, per year for
populations) fits tasks in any unit without its priors excluding the truth.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from agent.core import Task

__all__ = ["ColumnProfile", "DataProfile", "days_per", "parse_amount", "parse_population"]

_DAYS = {"second": 1 / 86400, "minute": 1 / 1440, "hour": 1 / 24, "day": 1.0, "week": 7.0,
         "month": 30.44, "year": 365.25}
_ALIASES = {"s": "second", "sec": "second", "seconds": "second", "min": "minute",
            "minutes": "minute", "h": "hour", "hr": "hour", "hours": "hour", "d": "day",
            "days": "day", "weeks": "week", "wk": "week", "months": "month", "yr": "year",
            "years": "year", "y": "year"}


def canonical_unit(unit: str) -> str | None:
    """``'days'`` -> ``'day'``; None when the unit is not a time unit we know."""
    u = unit.strip().lower()
    u = _ALIASES.get(u, u)
    return u if u in _DAYS else None


def days_per(unit: str) -> float | None:
    u = canonical_unit(unit)
    return None if u is None else _DAYS[u]


@dataclass(frozen=True)
class ColumnProfile:
    """One observed series: its kind decides the noise model.

    ``kind``: ``count`` (non-negative integers), ``positive`` (all > 0, continuous) or
    ``real`` (anything else, including continuous data with zeros).
    """

    name: str
    kind: str
    first: float
    minimum: float
    maximum: float
    mean: float
    last: float
    total: float
    spread: float

    @property
    def typical(self) -> float:
        """A positive size for scaling priors (the first value, else the mean, else 1)."""
        for v in (self.first, self.mean, self.maximum):
            if math.isfinite(v) and v > 0:
                return float(v)
        return 1.0


@dataclass(frozen=True)
class DataProfile:
    t0: float
    t_end: float
    spacing: float
    time_unit: str
    description: str
    columns: tuple[ColumnProfile, ...]

    @property
    def span(self) -> float:
        return max(self.t_end - self.t0, self.spacing, 1e-9)

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)

    def rate_factor(self, native: str) -> float:
        """Multiply a rate written per ``native`` unit by this to get it per task unit."""
        task = days_per(self.time_unit)
        base = days_per(native)
        if task is None or base is None:
            return 1.0
        return task / base

    @classmethod
    def from_task(cls, task: Task) -> DataProfile:
        """Profile the training window only: the agent never peeks past ``train_until``."""
        data = task.data
        mask = data.t <= task.train_until
        t = data.t[mask]
        spacing = float(np.median(np.diff(t))) if t.size > 1 else 1.0
        unit = task.time_unit
        if canonical_unit(unit) is None:
            unit = data.time_name if canonical_unit(data.time_name) else unit
        cols = []
        for name in data.columns:
            v = data.values[name][mask]
            v = v[np.isfinite(v)]
            if v.size == 0:
                cols.append(ColumnProfile(name, "real", 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0))
                continue
            integer = bool(np.all(np.abs(v - np.round(v)) < 1e-9))
            if integer and v.min() >= 0 and v.max() > 1:
                kind = "count"
            elif v.min() > 0:
                kind = "positive"
            else:
                kind = "real"
            cols.append(ColumnProfile(name, kind, float(v[0]), float(v.min()), float(v.max()),
                                      float(v.mean()), float(v[-1]), float(v.sum()),
                                      float(v.std()) if v.size > 1 else float(abs(v[0]) or 1)))
        return cls(float(t[0]), float(t[-1]), spacing, canonical_unit(unit) or unit,
                   task.description, tuple(cols))


_NUMBER = r"(\d+(?:[.,]\d+)*(?:\.\d+)?)\s*(thousand|million|billion|k|m|bn)?"
_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9}


def _to_float(number: str, scale: str | None) -> float:
    return float(number.replace(",", "")) * _SCALE.get((scale or "").lower(), 1.0)


def parse_population(text: str) -> float | None:
    """'a town of 50,000 people', 'population of 2.1 million' -> the number, else None."""
    low = text.lower()
    m = re.search(r"population (?:of|size of|is|n\s*=)\s*(?:about |around |roughly )?" + _NUMBER,
                  low)
    if m is None:
        m = re.search(_NUMBER + r"\s*(?:people|inhabitants|residents|individuals|persons|"
                                r"students|pupils|hosts)", low)
    if m is None:
        return None
    value = _to_float(m.group(1), m.group(2))
    return value if value >= 10 else None


def parse_amount(text: str) -> float | None:
    """The first dose-like amount in a description ('a 100 mg oral dose') or None."""
    m = re.search(r"(\d+(?:\.\d+)?)\s*(mg|µg|ug|mcg|g|mmol|units|iu|nmol)\b", text.lower())
    return float(m.group(1)) if m else None
