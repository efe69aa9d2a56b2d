"""Interventions and control schedules, as data.

A counterfactual is the fitted model simulated under an intervention, so interventions
are plain JSON a person can read and an LLM can write, validated against the model's
own names before any simulation runs. Windows are half-open, ``[start, end)``.

JSON forms (a list of these, or ``{"interventions": [...]}``)::

    {"kind": "set",      "target": "beta", "value": 0.1,  "start": 70, "end": 120}
    {"kind": "scale",    "target": "contact_reduction", "factor": 0.5, "start": 70}
    {"kind": "dose",     "state": "gut", "amount": 100, "times": [0, 12, 24]}
    {"kind": "transfer", "source": "S", "target": "R", "rate": 0.01, "start": 70}
    {"kind": "transfer", "source": "L", "target": null, "rate": 0.2, "start": 1920}
    {"kind": "infusion", "target": "central", "rate": 150, "start": 20, "end": 22}

``set``/``scale`` act on a parameter or a control; ``transfer`` moves ``rate`` x source
per unit time from one state to another (for example vaccination); ``infusion`` adds a
constant ``rate`` (amount per unit time) to a state during its window, the continuous
counterpart of a dose.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mechanistic.errors import ModelError
from mechanistic.model import Model
from mechanistic.untrusted import JsonLimits, parse_json, read_regular_file, shown

__all__ = [
    "ControlSchedule",
    "Dose",
    "Infusion",
    "Intervention",
    "Scale",
    "SetValue",
    "Transfer",
    "interventions_from_json",
    "interventions_to_json",
    "load_interventions",
    "validate_interventions",
]


# Interventions come from files, LLM answers and task JSON: bounded so that one answer
# cannot make a simulation step onto millions of breakpoints or echo megabytes in an error.
MAX_INTERVENTIONS = 1_000
MAX_DOSE_TIMES = 10_000
MAX_NAME = 200
MAX_FILE_BYTES = 4 * 1024 * 1024
_FILE_LIMITS = JsonLimits(max_bytes=MAX_FILE_BYTES, max_depth=20)


def _num(value: Any, what: str, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"{what} must be a number, got {shown(value)}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond a float's range (10**400)
        digits = int(value.bit_length() * math.log10(2)) + 1
        raise ModelError(f"{what} must be a finite number, got an integer of about {digits} "
                         f"digits") from None
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ModelError(f"{what} must be finite, got {value!r}")
    return value


def _window(kind: str, start: Any, end: Any) -> tuple[float, float]:
    lo = _num(start, f"{kind} intervention 'start'")
    hi = math.inf if end is None else _num(end, f"{kind} intervention 'end'", allow_inf=True)
    if not lo < hi:
        raise ModelError(f"{kind} intervention needs start < end, got start={lo}, end={hi}")
    return lo, hi


class Intervention:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, **asdict(self)}  # type: ignore[call-overload]
        if out.get("end") == math.inf:
            out["end"] = None
        if "times" in out:
            out["times"] = list(out["times"])
        return out

    def breakpoints(self) -> list[float]:
        """Times at which the dynamics change: the integrator steps onto these exactly."""
        return [self.start, self.end]

    def active(self, t: float) -> bool:
        return bool(self.start <= t < self.end)


@dataclass(frozen=True)
class SetValue(Intervention):
    """Hold a parameter or control at ``value`` during the window."""

    target: str
    value: float
    start: float = 0.0
    end: float = math.inf
    kind: ClassVar[str] = "set"

    def __post_init__(self) -> None:
        _num(self.value, "set intervention 'value'")
        _window(self.kind, self.start, self.end)

    def apply(self, base: Any) -> Any:
        return base * 0.0 + self.value


@dataclass(frozen=True)
class Scale(Intervention):
    """Multiply a parameter or control by ``factor`` during the window."""

    target: str
    factor: float
    start: float = 0.0
    end: float = math.inf
    kind: ClassVar[str] = "scale"

    def __post_init__(self) -> None:
        _num(self.factor, "scale intervention 'factor'")
        _window(self.kind, self.start, self.end)

    def apply(self, base: Any) -> Any:
        return base * self.factor


@dataclass(frozen=True)
class Dose(Intervention):
    """Add ``amount`` to a state at each of ``times`` (a bolus, an impulse)."""

    state: str
    amount: float
    times: tuple[float, ...] = field(default=(0.0,))
    kind: ClassVar[str] = "dose"

    def __post_init__(self) -> None:
        _num(self.amount, "dose intervention 'amount'")
        times = tuple(_num(t, "dose intervention time") for t in self.times)
        if not times:
            raise ModelError("dose intervention needs at least one time in 'times'")
        object.__setattr__(self, "times", tuple(sorted(times)))

    def breakpoints(self) -> list[float]:
        return list(self.times)

    def active(self, t: float) -> bool:
        return False


@dataclass(frozen=True)
class Transfer(Intervention):
    """Move ``rate`` x source per unit time from ``source`` to ``target`` in the window;
    ``target=None`` removes it from the system (harvest, culling, dialysis)."""

    source: str
    target: str | None
    rate: float
    start: float = 0.0
    end: float = math.inf
    kind: ClassVar[str] = "transfer"

    def __post_init__(self) -> None:
        if _num(self.rate, "transfer intervention 'rate'") < 0:
            raise ModelError("transfer intervention 'rate' must be >= 0 (a fraction per time)")
        if self.source == self.target:
            raise ModelError("transfer intervention needs different source and target states")
        _window(self.kind, self.start, self.end)


@dataclass(frozen=True)
class Infusion(Intervention):
    """Add ``rate`` (amount per unit time) to the state ``target`` during the window: a
    constant-rate input such as an intravenous drip, which a train of boluses only
    approximates (and a negative rate would be a removal: that is a ``transfer``)."""

    target: str
    rate: float
    start: float = 0.0
    end: float = math.inf
    kind: ClassVar[str] = "infusion"

    def __post_init__(self) -> None:
        if _num(self.rate, "infusion intervention 'rate'") < 0:
            raise ModelError("infusion intervention 'rate' must be >= 0 (amount per time); "
                             "use a transfer to remove")
        _window(self.kind, self.start, self.end)


_KINDS: dict[str, type[Intervention]] = {
    c.kind: c for c in (SetValue, Scale, Dose, Transfer, Infusion)
}
_REQUIRED: dict[str, set[str]] = {
    "set": {"target", "value"},
    "scale": {"target", "factor"},
    "dose": {"state", "amount", "times"},
    "transfer": {"source", "target", "rate"},
    "infusion": {"target", "rate"},
}
_OPTIONAL: dict[str, set[str]] = {
    "set": {"start", "end"}, "scale": {"start", "end"}, "dose": set(),
    "transfer": {"start", "end"}, "infusion": {"start", "end"},
}


def intervention_from_dict(data: Any, index: int = 0) -> Intervention:
    """One intervention from its JSON form, which may come from a file, an LLM's answer or
    a task: every field's type is checked here, before any dataclass is built, so a kind
    that is a list, a time that is text or a number beyond a float is one ModelError
    naming the field and the fix, never a TypeError or OverflowError."""
    where = f"intervention [{index}]"
    if not isinstance(data, Mapping):
        raise ModelError(f"{where} must be an object such as "
                         f'{{"kind": "scale", "target": "beta", "factor": 0.5, "start": 10}}, '
                         f"got {shown(data)}")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ModelError(f"{where}: 'kind' must be one of {sorted(_KINDS)}, got {shown(kind)}")
    fields = sorted(_REQUIRED[kind] | _OPTIONAL[kind])
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ModelError(f"{where} ({kind}): field names must be text, got {shown(odd[0])}; "
                         f"fields are {fields}")
    args = {k: v for k, v in data.items() if k != "kind"}
    missing = _REQUIRED[kind] - set(args)
    extra = set(args) - _REQUIRED[kind] - _OPTIONAL[kind]
    if missing or extra:
        wrong = ([f"missing {sorted(missing)}"] if missing else []) + \
            ([f"unknown [{', '.join(shown(k, 40) for k in sorted(extra)[:5])}]"] if extra else [])
        raise ModelError(f"{where} ({kind}): {', '.join(wrong)}; fields are {fields}")
    if args.get("end", 0) is None:
        args["end"] = math.inf
    if kind == "dose":
        args["times"] = _dose_times(args["times"], f"{where} (dose)")
    for key in ("target", "state", "source"):
        if kind == "transfer" and key == "target" and args.get(key) is None:
            continue  # a removal: to outside the system
        if key in args and (not isinstance(args[key], str) or not args[key]
                            or len(args[key]) > MAX_NAME):
            raise ModelError(f"{where} ({kind}): {key!r} must be a name (text of 1 to "
                             f"{MAX_NAME} characters), got {shown(args[key])}")
    try:
        return _KINDS[kind](**args)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None


def _dose_times(times: Any, where: str) -> tuple[Any, ...]:
    """A dose's ``times``: a list of numbers (or one number), at most MAX_DOSE_TIMES."""
    if isinstance(times, int | float) and not isinstance(times, bool):
        return (times,)
    if not isinstance(times, list | tuple):
        raise ModelError(f"{where}: 'times' must be a list of numbers such as [0, 12, 24], "
                         f"got {shown(times)}")
    if len(times) > MAX_DOSE_TIMES:
        raise ModelError(f"{where}: {len(times)} dose times is more than the limit of "
                         f"{MAX_DOSE_TIMES}; use an infusion for a continuous input")
    return tuple(times)


def interventions_from_json(data: Any) -> list[Intervention]:
    """Parse the JSON form: a list, one intervention object, or {"interventions": [...]}."""
    if isinstance(data, Mapping) and "interventions" in data:
        data = data["interventions"]
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list | tuple):
        raise ModelError(f"interventions must be a JSON list of intervention objects, got "
                         f"{shown(data)}")
    if len(data) > MAX_INTERVENTIONS:
        raise ModelError(f"{len(data)} interventions is more than the limit of "
                         f"{MAX_INTERVENTIONS}")
    return [intervention_from_dict(d, i) for i, d in enumerate(data)]


def interventions_to_json(items: Iterable[Intervention]) -> list[dict[str, Any]]:
    return [i.to_dict() for i in items]


def load_interventions(path: str | Path) -> list[Intervention]:
    """An interventions file: a regular file of at most MAX_FILE_BYTES, parsed as bounded
    JSON (duplicate keys, 400-digit integers, NaN and deep nesting refused)."""
    what = f"interventions file {path}"
    data = parse_json(read_regular_file(path, what, MAX_FILE_BYTES), what, _FILE_LIMITS)
    try:
        return interventions_from_json(data)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None


def validate_interventions(model: Model, items: Sequence[Intervention]) -> None:
    """Check every intervention names things this model declares."""
    targets = set(model.params_) | set(model.controls_)
    for i, item in enumerate(items):
        where = f"intervention [{i}] ({item.kind})"
        if isinstance(item, SetValue | Scale):
            if item.target not in targets:
                raise ModelError(f"{where}: {item.target!r} is not a parameter or control of "
                                 f"{model.name!r}; choose one of {sorted(targets)}")
        elif isinstance(item, Dose):
            if item.state not in model.states_:
                raise ModelError(f"{where}: {item.state!r} is not a state; states: "
                                 f"{model.state_names}")
        elif isinstance(item, Infusion):
            if item.target not in model.states_:
                raise ModelError(f"{where}: {item.target!r} is not a state; states: "
                                 f"{model.state_names}")
        elif isinstance(item, Transfer):
            named = [item.source] if item.target is None else [item.source, item.target]
            for name in named:
                if name not in model.states_:
                    raise ModelError(f"{where}: {name!r} is not a state; states: "
                                     f"{model.state_names}")


@dataclass(frozen=True)
class ControlSchedule:
    """A piecewise-constant control: ``values[i]`` holds on ``[times[i], times[i+1])``.

    Before ``times[0]`` the control has its declared default.
    """

    times: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        times = tuple(_num(t, "control schedule time", allow_inf=True) for t in self.times)
        if any(t == math.inf for t in times):
            raise ModelError("control schedule times must be finite (or -inf for 'always')")
        values = tuple(_num(v, "control schedule value") for v in self.values)
        if len(times) != len(values) or not times:
            raise ModelError("control schedule needs equally many (>= 1) times and values")
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ModelError("control schedule times must be strictly increasing")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", values)

    def value_at(self, t: float, default: float) -> float:
        value = default
        for time, v in zip(self.times, self.values, strict=True):
            if t >= time:
                value = v
        return value

    @classmethod
    def from_json(cls, data: Any, name: str = "control") -> ControlSchedule:
        """``{"times": [...], "values": [...]}``, or a bare number for a constant."""
        if isinstance(data, int | float) and not isinstance(data, bool):
            return cls((-math.inf,), (float(data),))
        shape = (f"control {shown(name)}: schedule must be a number or "
                 f'{{"times": [...], "values": [...]}} with at most {MAX_DOSE_TIMES} of each')
        if not isinstance(data, Mapping) or set(data) != {"times", "values"}:
            raise ModelError(shape)
        times, values = data["times"], data["values"]
        if not (isinstance(times, list | tuple) and isinstance(values, list | tuple)) or \
                max(len(times), len(values)) > MAX_DOSE_TIMES:
            raise ModelError(shape)
        return cls(tuple(times), tuple(values))
