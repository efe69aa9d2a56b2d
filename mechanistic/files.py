"""Atomic file writes shared by every stage that leaves files for people or resumed runs.

A run folder (agent), a benchmark folder (evals) and their reports are read while they
are being written (a resumed run, a review app, a second terminal), so a file is written
to a temporary name in the same folder and renamed over the target: a reader sees the
old file or the whole new one, never half of one, and the content is on disk before the
rename (a review decision acknowledged to the reviewer is not lost by a crash). Lives
here, in the package everything may import, so no stage has to pull in another stage (or
torch) for it.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_data", "write_atomic", "write_bytes_atomic"]


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder; mode 0644 like
    any file a person writes (``mkstemp`` alone would leave it owner-only)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomic`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # a crash right after the rename keeps the content
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def json_data(value: Any) -> Any:
    """Plain JSON data, the one rule every writer uses: numpy scalars and arrays to Python,
    non-finite floats to null (NaN is not JSON, and every reader here refuses it), tuples
    and sets to lists, objects with ``to_dict`` through it, anything else as its text."""
    if isinstance(value, Mapping):
        return {str(k): json_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_data(v) for v in value]
    if isinstance(value, set | frozenset):
        return [json_data(v) for v in sorted(value, key=str)]
    if isinstance(value, np.ndarray):
        return json_data(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "to_dict"):
        return json_data(value.to_dict())
    return str(value)
