"""The one gate for data that crosses into the host: sandbox results, model JSON, run folders.

Everything a generated module, an LLM answer, a run folder or a user file hands the host
is parsed here, against explicit limits, before any other code touches it. JSON is read
with duplicate keys refused, non-finite and oversized numbers refused, and its depth,
length and member counts bounded (the walk is iterative, so a deeply nested value is an
error, not a ``RecursionError``). Files of a run folder are read only if they are regular
files inside the folder, reached without following a symlink, and no larger than a limit;
a FIFO, a device or a link pointing at ``/etc/passwd`` is refused before it is opened.

A violation is an :class:`~mechanistic.errors.UntrustedDataError`: one message naming what
was read, what is wrong with it and the limit, which callers turn into a failed node or a
clear command-line error. Nothing here evaluates, imports or unpickles anything.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mechanistic.errors import UntrustedDataError

__all__ = ["JSON_LIMITS", "Entry", "JsonLimits", "UntrustedDataError", "check_tree",
           "file_inside", "list_inside", "parse_form", "parse_json", "read_inside",
           "read_json_inside", "read_regular_file", "safe_child"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class JsonLimits:
    """Bounds on one JSON document. The defaults hold any model, fit or tree mmw writes
    with a wide margin (the largest run-folder file seen is under 2 MiB, depth under 30)."""

    max_bytes: int = 32 * MiB
    max_depth: int = 100
    max_nodes: int = 2_000_000  # values of any kind, in all
    max_members: int = 500_000  # items of one array or object
    max_string: int = 16 * MiB  # characters of one string (a model's source, a traceback)
    max_int_digits: int = 40  # |int| < 10**40; beyond that it is not a count or a step
    max_float: float = 1e300  # finite and below this in magnitude

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_depth", "max_nodes", "max_members", "max_string",
                     "max_int_digits"):
            if getattr(self, name) < 1:
                raise ValueError(f"JsonLimits.{name} must be at least 1")


JSON_LIMITS = JsonLimits()

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxdict, _SHORT.maxlist = 3, 60, 60, 4, 4


def shown(value: Any, limit: int = 120) -> str:
    """``repr(value)`` for an error message, bounded in length and depth: the value may be
    a 10**5-character string or nested thousands deep, where plain repr would recurse."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _refuse_duplicates(what: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise UntrustedDataError(f"{what}: the key {key!r} appears twice in one object; "
                                         "a document must say each thing once")
            out[key] = value
        return out

    return hook


def _decoder(what: str, limits: JsonLimits) -> json.JSONDecoder:
    """A decoder that refuses duplicate keys, huge integers and non-finite numbers."""
    def parse_int(literal: str) -> int:
        digits = len(literal.lstrip("-"))
        if digits > limits.max_int_digits:
            raise UntrustedDataError(f"{what}: an integer of {digits} digits is beyond the "
                                     f"limit of {limits.max_int_digits}")
        return int(literal)

    def parse_float(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value) or abs(value) > limits.max_float:
            raise UntrustedDataError(f"{what}: the number {literal[:40]} is out of range "
                                     f"(finite and at most {limits.max_float:g} in magnitude)")
        return value

    def parse_constant(name: str) -> float:
        raise UntrustedDataError(f"{what}: {name} is not a number JSON allows; "
                                 "write null for a missing value")

    return json.JSONDecoder(object_pairs_hook=_refuse_duplicates(what), parse_int=parse_int,
                            parse_float=parse_float, parse_constant=parse_constant)


def _decode(text: str | bytes, what: str, limits: JsonLimits, start: int | None) -> Any:
    size = len(text)
    if size > limits.max_bytes:
        raise UntrustedDataError(f"{what}: {size} bytes is more than the limit of "
                                 f"{limits.max_bytes}")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    decoder = _decoder(what, limits)
    try:
        if start is None:
            data, end = decoder.decode(text), len(text)
        else:
            data, end = decoder.raw_decode(text, start)
    except RecursionError:
        raise UntrustedDataError(f"{what}: nested deeper than the limit of "
                                 f"{limits.max_depth}") from None
    except UntrustedDataError:
        raise
    except ValueError as exc:
        raise UntrustedDataError(f"{what}: not valid JSON ({exc})") from None
    check_tree(data, what, limits)
    return data, end


def parse_json(text: str | bytes, what: str, limits: JsonLimits = JSON_LIMITS) -> Any:
    """``text`` as JSON, or UntrustedDataError naming ``what`` and the limit broken."""
    return _decode(text, what, limits, None)[0]


def parse_json_at(text: str, start: int, what: str,
                  limits: JsonLimits = JSON_LIMITS) -> tuple[Any, int]:
    """The JSON value that begins at ``text[start]`` and where it ends (for JSON inside
    prose, such as an LLM's answer), under the same rules as :func:`parse_json`."""
    return _decode(text, what, limits, start)


def check_tree(data: Any, what: str, limits: JsonLimits = JSON_LIMITS) -> None:
    """Depth, node count, member counts and string lengths of a parsed value (iterative)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise UntrustedDataError(f"{what}: more than {limits.max_nodes} values in all")
        if depth > limits.max_depth:
            raise UntrustedDataError(f"{what}: nested deeper than the limit of "
                                     f"{limits.max_depth}")
        if isinstance(value, str):
            if len(value) > limits.max_string:
                raise UntrustedDataError(f"{what}: a string of {len(value)} characters is "
                                         f"longer than the limit of {limits.max_string}")
        elif isinstance(value, dict | list):
            if len(value) > limits.max_members:
                raise UntrustedDataError(f"{what}: {len(value)} members in one "
                                         f"{'object' if isinstance(value, dict) else 'array'}"
                                         f" is more than the limit of {limits.max_members}")
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
            if isinstance(value, dict):
                for key in value:
                    if len(key) > limits.max_string:
                        raise UntrustedDataError(f"{what}: a key is longer than the limit")
        elif isinstance(value, float) and (not math.isfinite(value)
                                           or abs(value) > limits.max_float):
            raise UntrustedDataError(f"{what}: the number {value!r} is out of range")
        elif isinstance(value, int) and not isinstance(value, bool) and value != 0 and \
                math.log10(abs(value)) >= limits.max_int_digits:
            raise UntrustedDataError(f"{what}: an integer beyond 10**{limits.max_int_digits}")


def safe_child(root: str | Path, relative: str | Path, what: str) -> Path:
    """``root/relative`` if it stays inside ``root`` with no symlink on the way, else an error.

    ``relative`` may come from a file (a task.json's ``data``): an absolute path, ``..``
    or a link out of the folder is refused, so a run folder can only name its own files.
    """
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise UntrustedDataError(f"{what}: {str(relative)!r} must be a path inside the folder "
                                 f"{root} (relative, without '..')")
    base = Path(root)
    current = base
    for part in rel.parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return base / rel  # missing: the caller says so in its own words
        except OSError as exc:
            raise UntrustedDataError(f"{what}: cannot inspect {current} ({exc.strerror})") \
                from None
        if stat.S_ISLNK(info.st_mode):
            raise UntrustedDataError(f"{what}: {current} is a symbolic link; a run folder's "
                                     "files are read only if they are inside it")
    return base / rel


def read_inside(root: str | Path, relative: str | Path, what: str,
                max_bytes: int = 32 * MiB) -> bytes:
    """The bytes of a regular file inside ``root`` (see :func:`safe_child`), at most max_bytes.

    FileNotFoundError if it does not exist (callers treat that as "not written yet");
    UntrustedDataError for a link, a non-regular file (FIFO, device, socket) or one too big.
    """
    path = file_inside(root, relative, what, max_bytes)
    return _read_open(path, what, max_bytes, getattr(os, "O_NOFOLLOW", 0))


def read_regular_file(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path`` a user named (a CSV, a params or model file).

    Unlike :func:`read_inside` a link is followed (the user chose the path), but what it
    reaches must be a regular file no larger than ``max_bytes``: a FIFO, a device or a
    directory is refused from ``os.stat`` before it is opened, and the file is opened
    non-blocking, so a pipe swapped in after the check cannot hang the command.
    FileNotFoundError for a missing file; UntrustedDataError for the rest.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UntrustedDataError(f"{what}: cannot inspect {path} ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise UntrustedDataError(f"{what}: {path} is a directory; give the path of a file")
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedDataError(f"{what}: {path} is not a regular file (a FIFO, socket or "
                                 "device); save the content to a plain file and give that")
    if info.st_size > max_bytes:
        raise UntrustedDataError(f"{what}: {path} is {info.st_size} bytes, more than the "
                                 f"limit of {max_bytes}")
    return _read_open(path, what, max_bytes, 0)


def _read_open(path: Path, what: str, max_bytes: int, extra_flags: int) -> bytes:
    """Open non-blocking, check again on the open descriptor, read at most max_bytes + 1."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | extra_flags
    try:
        fd = os.open(path, flags)
    except OSError as exc:  # swapped for a link or FIFO after the check: refuse, do not hang
        raise UntrustedDataError(f"{what}: cannot open {path} ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise UntrustedDataError(f"{what}: {path} is not a regular file")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UntrustedDataError(f"{what}: {path} is more than the limit of {max_bytes} bytes")
    return data


def read_json_inside(root: str | Path, relative: str | Path, what: str | None = None,
                     limits: JsonLimits = JSON_LIMITS) -> Any:
    """A JSON file of a run folder, read by :func:`read_inside` and :func:`parse_json`."""
    label = what or f"{Path(root).name}/{relative}"
    return parse_json(read_inside(root, relative, label, limits.max_bytes), label, limits)


def file_inside(root: str | Path, relative: str | Path, what: str,
                max_bytes: int = 32 * MiB) -> Path:
    """The path of a regular file inside ``root``, checked as :func:`read_inside` checks it,
    for a reader that must open it by name (pandas through ``load_csv``, which opens it
    non-blocking and refuses a FIFO itself). FileNotFoundError if it is missing."""
    path = safe_child(root, relative, what)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: {path} does not exist") from None
    except OSError as exc:
        raise UntrustedDataError(f"{what}: cannot inspect {path} ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedDataError(f"{what}: {path} is not a regular file; only plain files "
                                 "are read from a run folder")
    if info.st_size > max_bytes:
        raise UntrustedDataError(f"{what}: {path} is {info.st_size} bytes, more than the "
                                 f"limit of {max_bytes}")
    return path


@dataclass(frozen=True)
class Entry:
    """One entry of a folder, as :func:`list_inside` saw it without following links."""

    name: str
    kind: str  # "dir", "file", "link" or "other" (FIFO, socket, device)
    size: int


def list_inside(root: str | Path, relative: str | Path, what: str,
                max_entries: int = 10_000) -> list[Entry]:
    """The entries of the folder ``root/relative`` (reached by :func:`safe_child`), sorted
    by name, each classified by ``lstat``: a link is reported as a link, never followed,
    so a caller that keeps ``dir`` and ``file`` entries only ever opens what is inside.

    ``[]`` when the folder does not exist; UntrustedDataError when it is not a folder or
    holds more than ``max_entries`` entries (a listing is not a way to stall a page).
    """
    folder = safe_child(root, relative, what) if str(relative) not in ("", ".") else Path(root)
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UntrustedDataError(f"{what}: cannot inspect {folder} ({exc.strerror})") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UntrustedDataError(f"{what}: {folder} is not a folder")
    out: list[Entry] = []
    try:
        with os.scandir(folder) as it:
            for item in it:
                if len(out) >= max_entries:
                    raise UntrustedDataError(f"{what}: {folder} holds more than "
                                             f"{max_entries} entries")
                mode = item.stat(follow_symlinks=False)
                kind = ("link" if stat.S_ISLNK(mode.st_mode) else
                        "dir" if stat.S_ISDIR(mode.st_mode) else
                        "file" if stat.S_ISREG(mode.st_mode) else "other")
                out.append(Entry(item.name, kind, mode.st_size if kind == "file" else 0))
    except OSError as exc:
        raise UntrustedDataError(f"{what}: cannot list {folder} ({exc.strerror})") from None
    return sorted(out, key=lambda e: e.name)


def parse_form(body: bytes | str, what: str, *, max_bytes: int = 64 * 1024,
               max_fields: int = 16, max_value: int = 20_000) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body or a query string, as one value per
    name: strict UTF-8, at most ``max_fields`` fields of at most ``max_value`` characters,
    and a name given twice refused (which of two decisions was meant is not a guess)."""
    from urllib.parse import parse_qsl

    if len(body) > max_bytes:
        raise UntrustedDataError(f"{what}: {len(body)} bytes is more than the limit of "
                                 f"{max_bytes}")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                          encoding="utf-8", errors="strict", max_num_fields=max_fields)
    except UnicodeDecodeError:
        raise UntrustedDataError(f"{what}: not UTF-8") from None
    except ValueError as exc:  # max_num_fields exceeded
        raise UntrustedDataError(f"{what}: more than {max_fields} fields ({exc})") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise UntrustedDataError(f"{what}: the field {name[:40]!r} is given twice")
        if len(value) > max_value:
            raise UntrustedDataError(f"{what}: the field {name[:40]!r} is longer than "
                                     f"{max_value} characters")
        out[name] = value
    return out
