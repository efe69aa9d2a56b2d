"""Typed readers for untrusted JSON: the schema half of the gate in mechanistic/untrusted.

:func:`~mechanistic.untrusted.parse_json` bounds a document (size, depth, counts, number
magnitude, duplicate keys); a *shape* then says what the document must hold: which keys,
of which type, with which default when absent. Readers that declare a shape, rather than
test ``isinstance`` wherever a value is used, fail in one place with one message that
names the file and the path inside it (``tree.json: nodes[2].validation_error must be a
number or null, not the string '0.5'``), and hand every later line of code values of the
type it expects: a node that is a list, ``params`` that is a number or a count written
as a string never reaches a renderer or a resumed search.

A shape returns plain Python data (dicts, lists, str, float, int, bool, None): records
keep keys they do not declare (a newer writer's additions pass through untouched), and
fill declared keys that are absent with their default (copied, so no two documents share
a list).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mechanistic.errors import UntrustedDataError

__all__ = ["OPTIONAL", "REQUIRED", "Shape", "anything", "array", "choice", "either", "flag",
           "integer", "nullable", "number", "record", "table", "text"]

REQUIRED: Any = object()  # a record field without a default: absent is an error
OPTIONAL: Any = object()  # a record field that stays absent when absent (no default)


@dataclass(frozen=True)
class Shape:
    """A reader: ``shape(value, what)`` is the checked value or an UntrustedDataError.

    ``expected`` is how the message names what was wanted ("a number or null").
    """

    expected: str
    check: Callable[[Any, str, str], Any]

    def __call__(self, value: Any, what: str, path: str = "") -> Any:
        return self.check(value, what, path)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"[:60]
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return f"an array of {len(value)} item(s)"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Mismatch(UntrustedDataError):
    """A value of the wrong kind at ``path``: ``nullable`` and ``either`` restate it with
    everything they accept there, while an error deeper inside passes through as it is."""

    def __init__(self, what: str, path: str, expected: str, value: Any) -> None:
        super().__init__(f"{what}: {path or 'the document'} must be {expected}, "
                         f"not {_kind(value)}")
        self.path = path


def _fail(what: str, path: str, expected: str, value: Any) -> UntrustedDataError:
    return _Mismatch(what, path, expected, value)


def text(max_length: int = 1_000_000) -> Shape:
    """A string of at most ``max_length`` characters."""

    def check(value: Any, what: str, path: str) -> str:
        if not isinstance(value, str):
            raise _fail(what, path, "a string", value)
        if len(value) > max_length:
            raise UntrustedDataError(f"{what}: {path or 'the document'} is longer than "
                                     f"{max_length} characters")
        return value

    return Shape("a string", check)


def number(lo: float = -math.inf, hi: float = math.inf) -> Shape:
    """A finite JSON number (integer or not; a boolean is not a number) in [lo, hi], as
    a float."""
    expected = "a number" + (f" in [{lo:g}, {hi:g}]" if (lo, hi) != (-math.inf, math.inf)
                             else "")

    def check(value: Any, what: str, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(what, path, expected, value)
        out = float(value)
        if not (math.isfinite(out) and lo <= out <= hi):
            raise _fail(what, path, expected, value)
        return out

    return Shape(expected, check)


def integer(lo: int | None = None, hi: int | None = None) -> Shape:
    """A JSON integer (not a float, not a boolean) within the bounds given."""
    expected = "an integer" + (f" from {lo}" if lo is not None else "") + \
        (f" to {hi}" if hi is not None else "")

    def check(value: Any, what: str, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or \
                (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _fail(what, path, expected, value)
        return value

    return Shape(expected, check)


def flag() -> Shape:
    """``true`` or ``false``."""

    def check(value: Any, what: str, path: str) -> bool:
        if not isinstance(value, bool):
            raise _fail(what, path, "true or false", value)
        return value

    return Shape("true or false", check)


def choice(*options: str) -> Shape:
    """One of the strings given."""
    expected = "one of " + ", ".join(repr(o) for o in options)

    def check(value: Any, what: str, path: str) -> str:
        if not isinstance(value, str) or value not in options:
            raise _fail(what, path, expected, value)
        return value

    return Shape(expected, check)


def anything() -> Shape:
    """Any value (already bounded by parse_json); for parts another reader checks."""
    return Shape("any value", lambda value, what, path: value)


def nullable(shape: Shape) -> Shape:
    """``shape`` or null (None)."""

    expected = f"{shape.expected} or null"

    def check(value: Any, what: str, path: str) -> Any:
        if value is None:
            return None
        try:
            return shape(value, what, path)
        except _Mismatch as exc:
            if exc.path != path:
                raise
            raise _fail(what, path, expected, value) from None

    return Shape(expected, check)


def either(*shapes: Shape) -> Shape:
    """The first of ``shapes`` that accepts the value (e.g. an error as text or object)."""
    expected = " or ".join(s.expected for s in shapes)

    def check(value: Any, what: str, path: str) -> Any:
        deeper: UntrustedDataError | None = None
        for shape in shapes:
            try:
                return shape(value, what, path)
            except _Mismatch as exc:
                if exc.path != path:
                    deeper = deeper or exc
            except UntrustedDataError as exc:
                deeper = deeper or exc
        raise deeper or _fail(what, path, expected, value)

    return Shape(expected, check)


def array(item: Shape, max_items: int = 100_000) -> Shape:
    """A list of at most ``max_items`` values, each read by ``item``."""
    expected = f"an array of {item.expected}"

    def check(value: Any, what: str, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _fail(what, path, expected, value)
        if len(value) > max_items:
            raise UntrustedDataError(f"{what}: {path or 'the document'} has {len(value)} "
                                     f"items, more than the limit of {max_items}")
        return [item(v, what, f"{path}[{i}]") for i, v in enumerate(value)]

    return Shape(expected, check)


def table(value_shape: Shape, max_items: int = 100_000) -> Shape:
    """An object used as a mapping (any keys), each value read by ``value_shape``."""
    expected = f"an object of {value_shape.expected}"

    def check(value: Any, what: str, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(what, path, expected, value)
        if len(value) > max_items:
            raise UntrustedDataError(f"{what}: {path or 'the document'} has {len(value)} "
                                     f"entries, more than the limit of {max_items}")
        return {k: value_shape(v, what, f"{path}[{k[:40]!r}]") for k, v in value.items()}

    return Shape(expected, check)


def record(fields: Mapping[str, tuple[Shape, Any]], name: str = "an object") -> Shape:
    """An object with the keys of ``fields``: ``{key: (shape, default)}``; a key that is
    absent takes its default (``REQUIRED``: absent is an error; ``OPTIONAL``: it stays
    absent), a key that is present must have the shape. Keys not declared are kept as
    they are."""

    def check(value: Any, what: str, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(what, path, name, value)
        out = dict(value)
        for key, (shape, default) in fields.items():
            where = f"{path}.{key}" if path else key
            if key not in value:
                if default is REQUIRED:
                    raise UntrustedDataError(f"{what}: {where} is missing")
                if default is not OPTIONAL:
                    out[key] = copy.copy(default)
            else:
                out[key] = shape(value[key], what, where)
        return out

    return Shape(name, check)
