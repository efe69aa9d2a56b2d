"""The shipped benchmark suite: NIMM-style tasks built from hand-written ground truths.

One module per domain (``epidemiology``, ``oncology``, ``ecology``, ``pharmacology``,
``physiology``, and the systems no library motif covers: ``bioprocess``, ``chemistry``,
``systems_biology``, ``hydrology``) plus ``real`` for measured series; each exposes
``tasks() -> list[BenchTask]``.
The ground truths are written here with the DSL directly, with their own names, values and
structural details, independent of the library agent's motifs, so agents are scored on
systems they were not tuned on. Building is lazy (nothing runs at import) and cached.

A directory of task JSON files (``BenchTask.to_json``) can stand in for or extend the
suite: :func:`load_dir` validates every file and names the one at fault.
"""

from __future__ import annotations

import fnmatch
import importlib
from functools import lru_cache
from pathlib import Path

from evals.task import BenchTask, TaskError, task_from_json
from mechanistic.untrusted import read_inside

__all__ = ["DOMAIN_MODULES", "all_tasks", "load_dir", "select"]

DOMAIN_MODULES = ("epidemiology", "oncology", "ecology", "pharmacology", "physiology",
                  "bioprocess", "chemistry", "systems_biology", "hydrology", "real")


@lru_cache(maxsize=1)
def _builtin() -> tuple[BenchTask, ...]:
    out: list[BenchTask] = []
    for name in DOMAIN_MODULES:
        out.extend(importlib.import_module(f"evals.suite.{name}").tasks())
    return tuple(out)


def load_dir(path: str | Path) -> dict[str, BenchTask]:
    """Every ``*.json`` task in ``path`` (sorted by file name), validated."""
    out: dict[str, BenchTask] = {}
    for file in sorted(Path(path).glob("*.json")):
        # a regular file inside the folder, bounded (a FIFO named x.json must not hang)
        task = task_from_json(read_inside(Path(path), file.name, str(file), 64 * 1024 * 1024),
                              source=str(file))
        if task.name in out:
            raise TaskError(str(file), "name", f"{task.name!r} is already defined")
        out[task.name] = task
    return out


def all_tasks(tasks_dir: str | Path | None = None) -> dict[str, BenchTask]:
    """The suite by name, in a stable order; ``tasks_dir`` loads JSON tasks instead."""
    if tasks_dir is not None:
        return load_dir(tasks_dir)
    out: dict[str, BenchTask] = {}
    for task in _builtin():
        if task.name in out:  # pragma: no cover - guarded by the suite's tests
            raise TaskError(f"evals.suite.{task.domain}", "name",
                            f"{task.name!r} is defined twice")
        out[task.name] = task
    return out


def _matches(task: BenchTask, pattern: str) -> bool:
    keys = (task.name, task.domain, task.variant, *task.tags)
    return any(fnmatch.fnmatchcase(k, pattern) for k in keys)


def select(pattern: str | None, tasks_dir: str | Path | None = None) -> list[BenchTask]:
    """Tasks matching any of the comma-separated fnmatch patterns (over name, domain,
    variant and tags), in suite order; ``None``, ``""`` or ``"*"`` is every task.

    A pattern that matches nothing raises ``ValueError`` naming it: a typo in
    ``--tasks`` should not quietly run a smaller benchmark.
    """
    tasks = list(all_tasks(tasks_dir).values())
    parts = [p.strip() for p in (pattern or "").split(",") if p.strip()]
    if not parts:
        return tasks
    for part in parts:
        if not any(_matches(t, part) for t in tasks):
            raise ValueError(f"no task matches {part!r}; tasks: "
                             f"{', '.join(t.name for t in tasks)}")
    return [t for t in tasks if any(_matches(t, p) for p in parts)]
