"""Observation data: a time column and one column per observed quantity.

Scientists hand over spreadsheets. Loading is strict about what would silently corrupt a
fit (time that goes backwards, text in a numeric column, a column the model cannot
explain) and lenient about what is normal in real data (missing values, written as an
empty cell or NaN, are skipped by the likelihood).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mechanistic.errors import DataError

__all__ = ["TIME_COLUMNS", "ObservedData", "load_csv"]

TIME_COLUMNS = ("t", "time", "day", "days", "year", "date_index", "week", "hour", "hours")


@dataclass(frozen=True)
class ObservedData:
    """Observations on a strictly increasing time grid; NaN marks a missing value."""

    t: np.ndarray
    values: Mapping[str, np.ndarray]
    time_name: str = "t"
    source: str = ""
    _order: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        t = np.asarray(self.t, dtype=float)
        where = f"{self.source}: " if self.source else ""
        if t.ndim != 1 or t.size == 0:
            raise DataError(f"{where}time must be a non-empty 1-d sequence")
        if not np.isfinite(t).all():
            bad = int(np.flatnonzero(~np.isfinite(t))[0])
            raise DataError(f"{where}time column {self.time_name!r} has a missing or non-finite "
                            f"value at row {bad + 1}; every row needs a time")
        if t.size > 1 and not (np.diff(t) > 0).all():
            row = int(np.flatnonzero(np.diff(t) <= 0)[0])
            raise DataError(
                f"{where}time column {self.time_name!r} is not strictly increasing: row "
                f"{row + 2} has {t[row + 1]:g} after {t[row]:g}; sort the rows and remove "
                f"duplicate times"
            )
        values = {}
        for name, col in self.values.items():
            arr = np.asarray(col, dtype=float)
            if arr.shape != t.shape:
                raise DataError(f"{where}column {name!r} has {arr.size} values for {t.size} times")
            if np.isinf(arr).any():
                raise DataError(f"{where}column {name!r} contains an infinite value")
            values[name] = arr
        if not values:
            raise DataError(f"{where}no observation columns besides the time column")
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_order", tuple(values))

    @property
    def columns(self) -> list[str]:
        return list(self._order)

    def __len__(self) -> int:
        return int(self.t.size)

    def split(self, until: float) -> tuple[ObservedData, ObservedData | None]:
        """Training rows (t <= until) and validation rows (t > until)."""
        train = self.t <= until
        if not train.any():
            raise DataError(f"no observations at or before train-until={until:g} "
                            f"(data start at {self.t[0]:g})")
        first = self._subset(train)
        rest = None if train.all() else self._subset(~train)
        return first, rest

    def _subset(self, mask: np.ndarray) -> ObservedData:
        return ObservedData(self.t[mask], {k: v[mask] for k, v in self.values.items()},
                            self.time_name, self.source)

    def check_columns(self, observables: Iterable[str]) -> None:
        """Every data column must be an observable of the model."""
        known = list(observables)
        unknown = [c for c in self.columns if c not in known]
        if unknown:
            raise DataError(
                f"{self.source or 'data'}: column(s) {unknown} are not observables of the model "
                f"(it observes {known}); rename the columns or declare them with m.observe(...)"
            )

    def to_frame(self) -> object:
        import pandas as pd

        return pd.DataFrame({self.time_name: self.t, **self.values})


def load_csv(path: str | Path, time_column: str | None = None) -> ObservedData:
    """Read observations from CSV; the time column is named or found by a usual name."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV file ({first})") from None
    if frame.shape[1] < 2:
        raise DataError(f"{path}: needs a time column and at least one observation column, "
                        f"found columns {list(frame.columns)}")
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(set(frame.columns)) != len(frame.columns):
        raise DataError(f"{path}: duplicate column names in {list(frame.columns)}")
    if time_column is None:
        lowered = {c.lower(): c for c in frame.columns}
        found = next((lowered[n] for n in TIME_COLUMNS if n in lowered), None)
        time_column = found or frame.columns[0]
    elif time_column not in frame.columns:
        raise DataError(f"{path}: no time column {time_column!r}; columns are "
                        f"{list(frame.columns)}")
    values = {}
    for name in frame.columns:
        numeric = pd.to_numeric(frame[name], errors="coerce")
        bad = numeric.isna() & frame[name].notna() & (frame[name].astype(str).str.strip() != "")
        text_nan = frame[name].astype(str).str.strip().str.lower().isin(["nan", "na", ""])
        bad = bad & ~text_nan
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: column {name!r} row {row + 2} holds "
                            f"{frame[name].iloc[row]!r}, which is not a number; use a number "
                            f"or leave the cell empty for a missing value")
        values[name] = numeric.to_numpy(dtype=float)
    t = values.pop(time_column)
    return ObservedData(t, values, time_column, str(path))
