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

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic", "write_bytes_atomic"]


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
