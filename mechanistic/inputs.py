"""Known inputs: data columns that are operating conditions, not observations.

A column that holds a dose rate, a feed or dilution rate, a treatment switch or a
temperature is *known*: the experimenter set it. Fitting it as a noisy observable would be
wrong twice over (its "noise" is zero, and the model cannot explain what a person chose).
An :class:`InputSeries` carries such a column; every candidate that declares a control of
the same name is simulated with the observed schedule, and a what-if question about the
input becomes a change of that control.

The simulator's controls are piecewise constant between events, so a schedule is built
from the samples: ``previous`` holds each sample until the next (a set point, a switch);
``linear`` interpolates between samples, approximated by the value at the midpoint of each
of ``LINEAR_SUBSTEPS`` sub-intervals per sampling interval.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from mechanistic.data import ObservedData
from mechanistic.errors import DataError
from mechanistic.interventions import ControlSchedule

__all__ = ["INTERPOLATIONS", "InputSeries", "detect_inputs", "inputs_from_meta",
           "parse_inputs_option", "split_inputs"]

INTERPOLATIONS = ("previous", "linear")
MAX_INPUTS = 64
LINEAR_SUBSTEPS = 4

# Words near a column's name in a description that mark it as set by the experimenter.
_SET_WORDS = re.compile(
    r"\b(set|sets|setting|controlled|control|chosen|applied|switched|switch|pump|pumped|"
    r"fed|feed|feeding|infused|infusion rate|dose rate|dosing rate|input|inputs|regime|"
    r"schedule|scheduled|operating|operated|manipulated|adjusted|imposed|held at|known)\b")


@dataclass(frozen=True)
class InputSeries:
    """One known input: its samples on the data's clock and how to read between them."""

    name: str
    times: np.ndarray
    values: np.ndarray
    interpolation: str = "previous"
    doc: str = ""

    def __post_init__(self) -> None:
        t = np.asarray(self.times, dtype=float).copy()
        v = np.asarray(self.values, dtype=float).copy()
        if self.interpolation not in INTERPOLATIONS:
            raise DataError(f"input {self.name!r}: interpolation must be one of "
                            f"{', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if t.shape != v.shape or t.ndim != 1 or t.size == 0:
            raise DataError(f"input {self.name!r}: needs as many values as times (>= 1)")
        missing = np.flatnonzero(~np.isfinite(v))
        if missing.size:
            raise DataError(
                f"input column {self.name!r} has a missing value at row {int(missing[0]) + 2} "
                f"(t={t[missing[0]]:g}); a known input needs a value at every row: fill it "
                f"in, or leave {self.name!r} out of --inputs to fit it as an observable")
        if t.size > 1 and not (np.diff(t) > 0).all():
            raise DataError(f"input {self.name!r}: times must be strictly increasing")
        t.setflags(write=False)
        v.setflags(write=False)
        object.__setattr__(self, "times", t)
        object.__setattr__(self, "values", v)

    def value_at(self, t: float | np.ndarray) -> np.ndarray:
        """The input's value at ``t`` under its interpolation (held constant outside)."""
        tt = np.asarray(t, dtype=float)
        if self.interpolation == "linear":
            return np.interp(tt, self.times, self.values)
        idx = np.clip(np.searchsorted(self.times, tt, side="right") - 1, 0, self.times.size - 1)
        return self.values[idx]

    def schedule(self) -> ControlSchedule:
        """The control schedule the simulator reads (see the module docstring)."""
        return self._schedule

    @cached_property
    def _schedule(self) -> ControlSchedule:
        t, v = self.times, self.values
        if self.interpolation == "previous" or t.size == 1:
            keep = np.concatenate([[True], v[1:] != v[:-1]])  # only where the level changes
            times = [-math.inf, *t[keep][1:].tolist()]
            return ControlSchedule(tuple(times), tuple(v[keep].tolist()))
        times, values = [-math.inf], [float(v[0])]
        for a, b in itertools.pairwise(t):
            edges = np.linspace(a, b, LINEAR_SUBSTEPS + 1)
            mids = 0.5 * (edges[:-1] + edges[1:])
            for edge, level in zip(edges[:-1], np.interp(mids, t, v), strict=True):
                if edge > times[-1]:
                    times.append(float(edge))
                    values.append(float(level))
        times.append(float(t[-1]))
        values.append(float(v[-1]))
        return ControlSchedule(tuple(times), tuple(values))

    def to_dict(self) -> dict[str, Any]:
        """What a run folder records (the values themselves stay in its data.csv)."""
        return {"name": self.name, "interpolation": self.interpolation, "doc": self.doc}

    def describe(self) -> str:
        lo, hi = float(self.values.min()), float(self.values.max())
        levels = np.unique(self.values).size
        return (f"{self.name}: known input ({self.interpolation}), {levels} level(s) between "
                f"{lo:.4g} and {hi:.4g}")


def parse_inputs_option(text: str | None) -> dict[str, str] | None:
    """``--inputs feed,temp:linear`` -> ``{"feed": "previous", "temp": "linear"}``.

    ``None`` (flag not given) means: let the agent propose inputs; ``none`` or an empty
    string means: no inputs, fit every column as an observable.
    """
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        name, _, kind = part.strip().partition(":")
        name, kind = name.strip(), (kind.strip() or "previous")
        if not name:
            raise DataError(f"--inputs {text!r}: an empty column name; write COL[,COL] or "
                            f"COL:linear")
        if kind not in INTERPOLATIONS:
            raise DataError(f"--inputs {text!r}: {name!r} has interpolation {kind!r}; use "
                            f"{' or '.join(INTERPOLATIONS)} (COL:linear)")
        out[name] = kind
    return out


def split_inputs(data: ObservedData, inputs: Mapping[str, str],
                 docs: Mapping[str, str] | None = None
                 ) -> tuple[ObservedData, tuple[InputSeries, ...]]:
    """Observed columns and known inputs, from one table; a bad input column is one error."""
    for name in inputs:
        if name not in data.values:
            raise DataError(f"{data.source or 'data'}: --inputs names column {name!r}, which "
                            f"the data does not have; columns: {data.columns}")
    series = tuple(InputSeries(name, data.t, data.values[name], kind, (docs or {}).get(name, ""))
                   for name, kind in inputs.items())
    rest = {c: data.values[c] for c in data.columns if c not in inputs}
    if not rest:
        raise DataError(f"{data.source or 'data'}: every column is an input; at least one "
                        f"column must be an observation to fit")
    return ObservedData(data.t, rest, data.time_name, data.source), series


def detect_inputs(data: ObservedData, description: str) -> dict[str, str]:
    """Columns that look like known inputs, each with the reason, for the agent to propose.

    A column qualifies when it has no gaps and either (a) is piecewise constant (at most one
    row in ten changes level, and it takes at least two levels), as set points and switches
    are and noisy measurements are not, or (b) the description names it next to a word such
    as *set*, *controlled*, *pump*, *feed* or *input*. The last column is never taken if it
    would leave nothing to fit.
    """
    text = " ".join(description.lower().split())
    out: dict[str, str] = {}
    for name in data.columns:
        v = data.values[name]
        if v.size < 4 or not np.isfinite(v).all():
            continue
        changes = int((v[1:] != v[:-1]).sum())
        levels = np.unique(v).size
        if levels >= 2 and changes <= max(1, (v.size - 1) // 10):
            out[name] = (f"piecewise constant ({levels} levels, {changes} change(s) in "
                         f"{v.size} rows)")
            continue
        spoken = name.lower().replace("_", " ")
        for m in re.finditer(re.escape(spoken), text):
            window = text[max(0, m.start() - 60): m.end() + 60]
            if _SET_WORDS.search(window):
                out[name] = "named in the description as set or controlled"
                break
    if len(out) == len(data.columns):
        out.pop(data.columns[-1])
    return out


def inputs_from_meta(data: ObservedData, meta: Sequence[Mapping[str, Any]]
                     ) -> tuple[ObservedData, tuple[InputSeries, ...]]:
    """Rebuild a run folder's inputs from ``task.json``'s ``inputs`` list and its data."""
    if not isinstance(meta, list) or len(meta) > MAX_INPUTS:
        raise DataError(f"task.json: 'inputs' must be a list of at most {MAX_INPUTS} objects "
                        f"with a column 'name'")
    kinds: dict[str, str] = {}
    docs: dict[str, str] = {}
    for item in meta:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise DataError("task.json: each entry of 'inputs' needs a column 'name'")
        kind, doc = item.get("interpolation", "previous"), item.get("doc", "")
        if kind not in INTERPOLATIONS or not isinstance(doc, str):
            raise DataError(f"task.json: input {item['name']!r} needs 'interpolation' "
                            f"{' or '.join(INTERPOLATIONS)} and a text 'doc'")
        kinds[item["name"]], docs[item["name"]] = kind, doc[:500]
    return split_inputs(data, kinds, docs)
