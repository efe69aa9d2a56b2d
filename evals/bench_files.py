"""The shapes of a bench folder's files, and how ``mmw bench report`` reads them.

A bench folder (``bench.json``, ``results/*.json``, ``results.json``) is mailed, archived
and re-aggregated on other machines, and its results hold what agents produced; so the
report reads it as untrusted data, the same way review reads a run folder: regular files
inside the folder only (no link followed, a FIFO refused before it is opened, sizes
bounded), JSON through :func:`mechanistic.untrusted.parse_json`, then the shapes below. A
result file that breaks them is left out of the report with its reason (the report names
it), never a traceback halfway through an aggregation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mechanistic.errors import UntrustedDataError
from mechanistic.shapes import (
    REQUIRED,
    anything,
    array,
    choice,
    flag,
    integer,
    nullable,
    number,
    record,
    table,
    text,
)
from mechanistic.untrusted import list_inside, read_json_inside

__all__ = ["MANIFEST", "RESULT", "SUMMARY", "read_bench_json", "read_manifest",
           "read_results_checked"]

STATUSES = ("ok", "invalid", "error", "timeout")
_NUM = nullable(number())
_NAME = text(1000)
_CURVES = nullable(table(nullable(array(_NUM, 1_000_000)), 1000))

SERIES = record({
    "t": (array(_NUM, 1_000_000), []), "observed": (_CURVES, {}), "truth": (_CURVES, {}),
    "forecast": (_CURVES, {}),
    "windows": (nullable(record({"train_until": (_NUM, None),
                                 "validate_until": (_NUM, None)}, "a windows object")), {}),
    "counterfactuals": (nullable(array(nullable(record({
        "question": (nullable(text()), ""), "from": (_NUM, None), "truth": (_CURVES, {}),
        "agent": (_CURVES, {}), "answered": (flag(), True),
    }, "a counterfactual object")), 1000)), []),
}, "a series object")

RESULT = record({
    "key": (text(500), REQUIRED), "task": (_NAME, REQUIRED), "agent": (_NAME, REQUIRED),
    "seed": (integer(), REQUIRED), "status": (choice(*STATUSES), REQUIRED),
    "reason": (anything(), ""), "wall_s": (_NUM, None), "domain": (nullable(_NAME), None),
    "metrics": (nullable(table(anything(), 1000)), {}), "series": (nullable(SERIES), None),
}, "a result object")

_TASK_INFO = record({k: (nullable(text()), None) for k in (
    "domain", "difficulty", "variant", "time_unit", "description")} | {
    k: (nullable(array(_NAME, 1000)), []) for k in ("tags", "observed", "hidden")},
    "a task object")

MANIFEST = record({
    "agents": (array(_NAME, 1000), []), "seeds": (array(integer(), 10_000), []),
    "budget": (record({"fit": (nullable(table(anything(), 100)), {})}, "a budget object"),
               {}),
    "tasks": (table(_TASK_INFO, 10_000), {}),
}, "a manifest object")

_STAT = nullable(record({k: (number(), REQUIRED) for k in ("mean", "lo", "hi")} |
                        {"n": (integer(0), REQUIRED)}, "a metric summary"))
_AGENT_SUMMARY = record({
    "jobs": (integer(0), 0), "status": (table(integer(0), 100), {}),
    "metrics": (table(_STAT, 1000), {}),
}, "an agent summary")
_BY_AGENT = table(_AGENT_SUMMARY, 1000)
SUMMARY = record({
    "manifest": (MANIFEST, {}),
    "scores": (record({"overall": (_BY_AGENT, {}), "by_domain": (table(_BY_AGENT), {}),
                       "by_task": (table(_BY_AGENT), {})}, "a scores object"), REQUIRED),
    "timing": (nullable(record({"overall": (nullable(_BY_AGENT), None)}, "a timing object")),
               {}),
}, "a summary object")


def read_bench_json(folder: Path, relative: str, shape: Any) -> Any:
    """``folder/relative`` as untrusted JSON against ``shape`` (FileNotFoundError if absent)."""
    label = f"{folder.name}/{relative}"
    return shape(read_json_inside(folder, relative, label), label)


def read_manifest(folder: Path) -> dict[str, Any]:
    """bench.json, or an empty manifest when there is none."""
    try:
        return read_bench_json(folder, "bench.json", MANIFEST)
    except FileNotFoundError:
        return MANIFEST({}, "bench.json")


def read_results_checked(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every usable ``results/*.json`` (sorted by name), and why each other one was left
    out: a link, a special file, bad JSON or a result of the wrong shape."""
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    try:
        entries = list_inside(folder, "results", f"{folder.name}/results", 100_000)
    except UntrustedDataError as exc:
        return [], [str(exc)]
    for entry in entries:
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        if entry.kind != "file":
            skipped.append(f"{folder.name}/results/{entry.name} is not a regular file "
                           f"({entry.kind}); left out")
            continue
        try:
            results.append(read_bench_json(folder, f"results/{entry.name}", RESULT))
        except (UntrustedDataError, FileNotFoundError) as exc:
            skipped.append(str(exc))
    return results, skipped
