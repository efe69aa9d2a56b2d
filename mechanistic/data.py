"""Observation data: a time column and one column per observed quantity.

Scientists hand over spreadsheets. Loading is strict about what would silently corrupt a
fit (time that goes backwards, text in a numeric column, a column the model cannot
explain) and lenient about what is normal in real data (missing values, written as an
empty cell or NaN, are skipped by the likelihood).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mechanistic.errors import DataError, UntrustedDataError

__all__ = ["CSV_LIMIT_VARIABLES", "TIME_COLUMNS", "CsvLimits", "ObservedData", "load_csv"]

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


MiB = 1024 * 1024

# The environment variables that override each CsvLimits field: the one place they are read.
CSV_LIMIT_VARIABLES = {
    "max_bytes": "MMW_CSV_MAX_BYTES",
    "max_rows": "MMW_CSV_MAX_ROWS",
    "max_columns": "MMW_CSV_MAX_COLUMNS",
}


@dataclass(frozen=True)
class CsvLimits:
    """How large an observations CSV may be, checked before and while it is parsed.

    Without a bound a file of 10**6 columns kept the loader busy for minutes, and the
    fitter's memory grows with the rows: it integrates with RK4 at a quarter of the median
    spacing and its autograd graph holds every step, about 0.4 GB plus 125 KB a row for a
    one-state model and 400 KB a row for the four-state SEIR example (10**6 rows had
    reached 18.5 GB when stopped). Measured at the default row limit, 10,000 evenly spaced
    rows: ``mmw fit`` of the one-state decay model peaked at 2.4 GB with its defaults (8
    starts; still optimising after 30 min on two shared cores) and 1.6 GB with
    ``--starts 1 --steps 1`` (3.5 min); one fitting pass of SEIR at 4.1 GB. That is well
    below a 24 GB machine, and the limit still holds the series mechanistic
    models are fitted to (hare-lynx is 91 rows, three years of daily counts about 1,100,
    a year of hourly readings 8,760). Larger models cost more per row, so the bound is on
    the data's share. 256 columns is far past the observables of any model here, and
    64 MiB is 10,000 rows of 256 columns at 25 bytes a cell. Override with the environment
    variables in :data:`CSV_LIMIT_VARIABLES` (read only by :meth:`from_env`).
    """

    max_bytes: int = 64 * MiB
    max_rows: int = 10_000
    max_columns: int = 256

    def __post_init__(self) -> None:
        for name in CSV_LIMIT_VARIABLES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CsvLimits.{name} must be a whole number >= 1, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CsvLimits:
        """The defaults, each replaced by its environment variable where that is set."""
        env = os.environ if environ is None else environ
        given: dict[str, int] = {}
        for name, variable in CSV_LIMIT_VARIABLES.items():
            text = env.get(variable, "").strip().replace("_", "")
            if not text:
                continue
            if not text.isdigit() or len(text) > 18 or int(text) < 1:
                raise DataError(f"{variable}={env[variable]!r} must be a whole number >= 1 "
                                f"(the default is {getattr(cls, name)})")
            given[name] = int(text)
        return cls(**given)

    def exceeded(self, name: str, found: str) -> DataError:
        """The error for breaking limit ``name``: what was found, the limit, how to raise it."""
        return DataError(f"{found}, more than the limit of {getattr(self, name)} "
                         f"{name.removeprefix('max_')}; set {CSV_LIMIT_VARIABLES[name]} to "
                         f"raise it")


def _read_text(path: Path, limits: CsvLimits) -> str:
    """The file's text, read only if it is a regular file within the byte limit."""
    from mechanistic.untrusted import read_regular_file

    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if size > limits.max_bytes:  # a regular file's size, before anything is read
        raise limits.exceeded("max_bytes", f"{path}: {size} bytes")
    try:
        raw = read_regular_file(path, str(path), limits.max_bytes)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UntrustedDataError as exc:
        if "more than the limit" in str(exc):  # it grew after the check
            raise limits.exceeded("max_bytes", f"{path}: over {limits.max_bytes} bytes") \
                from None
        raise DataError(str(exc)) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a readable CSV file (byte {exc.start} is not UTF-8 "
                        f"text); save it as UTF-8 CSV") from None


def _header_width(text: str) -> int:
    """Fields of the first record, counted by the csv module (quotes respected) before
    pandas builds anything: 10**6 columns are refused in milliseconds."""
    try:
        header = next(csv.reader(io.StringIO(text), skipinitialspace=True), [])
    except csv.Error:
        return 0  # pandas reports the malformed file in its own words
    return len(header)


def load_csv(path: str | Path, time_column: str | None = None,
             limits: CsvLimits | None = None) -> ObservedData:
    """Read observations from CSV; the time column is named or found by a usual name.

    The file must be a regular file (a FIFO or a directory is an error, not a hang) within
    ``limits`` (by default :meth:`CsvLimits.from_env`): its size is checked before it is
    read, its header's width before pandas parses it, and pandas reads at most one row
    more than the row limit, so a huge file costs no more than the limit allows.
    """
    import pandas as pd

    path = Path(path)
    limits = CsvLimits.from_env() if limits is None else limits
    text = _read_text(path, limits)
    width = _header_width(text)
    if width > limits.max_columns:
        raise limits.exceeded("max_columns", f"{path}: the header has {width} columns")
    try:
        frame = pd.read_csv(io.StringIO(text), skipinitialspace=True,
                            nrows=limits.max_rows + 1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV file ({first})") from None
    del text
    if len(frame) > limits.max_rows:
        raise limits.exceeded("max_rows", f"{path}: more than {limits.max_rows} data rows")
    if frame.shape[1] > limits.max_columns:  # a header the csv module read differently
        raise limits.exceeded("max_columns", f"{path}: {frame.shape[1]} columns")
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
        # Only cells that did not parse are looked at as text: a numeric column costs no
        # string copies, whatever its length.
        unparsed = numeric.isna() & frame[name].notna()
        cells = frame[name][unparsed].astype(str).str.strip().str.lower()
        bad = pd.Series(False, index=frame.index)
        bad[unparsed] = ~cells.isin(["nan", "na", ""])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: column {name!r} row {row + 2} holds "
                            f"{frame[name].iloc[row]!r}, which is not a number; use a number "
                            f"or leave the cell empty for a missing value")
        values[name] = numeric.to_numpy(dtype=float)
    t = values.pop(time_column)
    return ObservedData(t, values, time_column, str(path))
