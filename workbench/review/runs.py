"""Read a run folder for review, and record decisions in its ``review.json``.

A run folder under review is untrusted data: it may come from a hostile search, a
colleague's laptop or an archive. So everything here is read through the gate in
mechanistic/untrusted.py and the shapes in agent/runfiles.py: only regular files inside
the run, reached without following a link (a ``candidates/X -> /etc`` or ``fit.json ->
/etc/passwd`` is refused, never read), bounded in size, a FIFO refused before it is
opened, every JSON file checked against its shape. Nothing from the run is executed or
unpickled. A file that breaks a rule does not break the page: its message is collected
in ``problems`` (of the run or of the candidate) and shown, and the rest still loads,
as does a folder that is half written (a run still going).

``review.json`` (this package's file)::

    {"candidates": {ID: {"decision": "approved" | "rejected", "note": str, "time": iso}}}
"""

from __future__ import annotations

import csv
import io
import json
import math
import stat
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.runfiles import (
    CANDIDATE_ID,
    CHECKS,
    DECISIONS,
    DISTILL,
    FIT,
    INTERVENTIONS,
    MODEL_LIMIT,
    NODE_FILE,
    REVIEW,
    SOURCE_LIMIT,
    TASK,
    TREE,
    read_run_json,
    read_run_text,
    task_defaults,
)
from mechanistic.errors import UntrustedDataError
from mechanistic.files import write_atomic
from mechanistic.shapes import Shape
from mechanistic.untrusted import Entry, MiB, list_inside, read_inside, safe_child

__all__ = [
    "DECISIONS",
    "CandidateView",
    "RunView",
    "approved_candidates",
    "find_runs",
    "has_candidate",
    "load_run",
    "read_file",
    "read_reviews",
    "record_decision",
]

NOTE_LIMIT = 10_000
DATA_LIMIT = 16 * MiB  # the data summary reads the CSV itself
MAX_COLUMNS = 200  # columns summarised on the page
MAX_CANDIDATES = 2_000  # a search evaluates about a dozen by default
READ_BUDGET = 32 * MiB  # bytes read from the candidate folders of one run, in all
MAX_FILES = 200  # sgnn/ files listed


@dataclass
class CandidateView:
    """One candidate's files, as read; the renderer decides what to show. ``images`` are
    paths relative to the run (read when shown); ``problems`` say which files could not
    be used and why."""

    id: str
    folder: Path
    node: dict[str, Any]
    source: str | None
    model_json: str | None
    checks: list[dict[str, Any]]
    fit: dict[str, Any] | None
    images: list[str]
    distill: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def structure(self) -> str:
        return str(self.node.get("structure") or "unlabelled")

    @property
    def parent(self) -> str | None:
        parent = self.node.get("parent")
        return str(parent) if parent else None


@dataclass
class RunView:
    """A run folder: task, tree rows (best first), candidates, extras and decisions.
    ``sgnn_files`` are (path relative to the run, size) pairs; counterfactuals carry the
    relative path of their CSV and images."""

    root: Path
    task: dict[str, Any]
    tree: dict[str, Any]
    nodes: list[dict[str, Any]]
    candidates: dict[str, CandidateView]
    data_summary: dict[str, Any]
    counterfactuals: list[dict[str, Any]] = field(default_factory=list)
    sgnn_files: list[tuple[str, int]] = field(default_factory=list)
    reviews: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # Characters of code a page may still colour (see candidate.highlight_python).
    highlight_budget: list[int] = field(default_factory=lambda: [300_000])

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def unread(self) -> int:
        """How many files of the run could not be used (each is named on the page)."""
        return len(self.problems) + sum(len(c.problems) for c in self.candidates.values())


# ------------------------------------------------------------------------- reading
def _json(root: Path, relative: str, shape: Shape, default: Any,
          problems: list[str]) -> Any:
    """A JSON file of the run against its shape; ``default`` when missing (a run in
    progress) or broken (then the reason joins ``problems``)."""
    try:
        return read_run_json(root, relative, shape)
    except FileNotFoundError:
        return default
    except UntrustedDataError as exc:
        problems.append(str(exc))
        return default


def _text(root: Path, relative: str, max_bytes: int, problems: list[str]) -> str | None:
    try:
        return read_run_text(root, relative, max_bytes)
    except FileNotFoundError:
        return None
    except UntrustedDataError as exc:
        problems.append(str(exc))
        return None


def _entries(root: Path, relative: str, problems: list[str], max_entries: int = 10_000,
             suffix: str = "") -> list[Entry]:
    """A folder's plain entries (folders and regular files) whose names end in ``suffix``;
    links and special files among them are named in ``problems`` and left out."""
    try:
        entries = list_inside(root, relative, f"{root.name}/{relative}", max_entries)
    except UntrustedDataError as exc:
        problems.append(str(exc))
        return []
    entries = [e for e in entries if e.name.endswith(suffix)]
    for e in entries:
        if e.kind in ("link", "other"):
            what = "a symbolic link" if e.kind == "link" else "not a regular file or folder"
            problems.append(f"{root.name}/{relative}/{e.name} is {what}; not shown (review "
                            "reads only plain files inside the run)")
    return [e for e in entries if e.kind in ("dir", "file")]


def read_file(root: Path, relative: str, max_bytes: int) -> tuple[bytes | None, str | None]:
    """A file of the run for a view (a PNG, a CSV, a preview): ``(content, None)``,
    ``(None, None)`` when missing, ``(None, reason)`` when refused."""
    try:
        return read_inside(root, relative, f"{root.name}/{relative}", max_bytes), None
    except FileNotFoundError:
        return None, None
    except UntrustedDataError as exc:
        return None, str(exc)


def _data_summary(root: Path, relative: str, time_column: str | None,
                  problems: list[str]) -> dict[str, Any]:
    """Rows, time span and per-column range and missing count, with the csv module: a
    review page should not wait on pandas for a table of a few hundred rows."""
    empty: dict[str, Any] = {"rows": 0, "columns": [], "more_columns": 0}
    raw, problem = read_file(root, relative, DATA_LIMIT)
    if problem:
        problems.append(f"task.json data: {problem}")
    if raw is None:
        return empty
    try:
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8", "replace"), newline="")))
    except csv.Error as exc:
        problems.append(f"{root.name}/{relative}: not a readable CSV file ({exc})")
        return empty
    if not rows:
        return empty
    header, body = rows[0], rows[1:]
    columns = []
    for i, name in enumerate(header[:MAX_COLUMNS]):
        values: list[float] = []
        missing = 0
        for row in body:
            cell = row[i].strip() if i < len(row) else ""
            try:
                value = float(cell)
            except ValueError:
                missing += 1
                continue
            if math.isnan(value):
                missing += 1
            else:
                values.append(value)
        columns.append({"name": name, "count": len(values), "missing": missing,
                        "min": min(values) if values else None,
                        "max": max(values) if values else None,
                        "time": name == (time_column or header[0])})
    return {"rows": len(body), "columns": columns,
            "more_columns": max(0, len(header) - MAX_COLUMNS)}


_CANDIDATE_FILES = ("node.json", "checks.json", "simulator.py", "model.json", "fit.json",
                    "distill.json")


def _candidate(root: Path, name: str, row: dict[str, Any], budget: list[int]
               ) -> CandidateView:
    """One candidate folder. ``budget`` holds the bytes the review may still read from
    this run: each file is bounded on its own, and the run as a whole too, so a thousand
    candidates with large files cost a bounded time, not an afternoon."""
    rel = f"candidates/{name}"
    problems: list[str] = []
    entries = _entries(root, rel, problems, 1000, suffix=".png")
    images = [f"{rel}/{e.name}" for e in entries if e.kind == "file"]
    try:
        sizes = {e.name: e.size for e in list_inside(root, rel, rel, 1000) if e.kind == "file"}
    except UntrustedDataError:
        sizes = {}
    cost = sum(sizes.get(f, 0) for f in _CANDIDATE_FILES) + sum(
        sizes.get(Path(i).name, 0) for i in images)
    if cost > budget[0]:
        problems.append(f"{root.name}/{rel}: not read; the run's files are more than the "
                        f"review reads in all ({READ_BUDGET // MiB} MiB)")
        return CandidateView(id=name, folder=root / rel, node=dict(row), source=None,
                             model_json=None, checks=[], fit=None, images=[],
                             problems=problems)
    budget[0] -= cost
    node = _json(root, f"{rel}/node.json", NODE_FILE, {}, problems)
    checks = _json(root, f"{rel}/checks.json", CHECKS, None, problems)
    return CandidateView(
        id=name, folder=root / rel, node={**node, **row},
        source=_text(root, f"{rel}/simulator.py", SOURCE_LIMIT, problems),
        model_json=_text(root, f"{rel}/model.json", MODEL_LIMIT, problems),
        checks=checks if checks is not None else node.get("checks") or [],
        fit=_json(root, f"{rel}/fit.json", FIT, None, problems), images=images,
        distill=_json(root, f"{rel}/distill.json", DISTILL, None, problems),
        problems=problems)


def _counterfactuals(root: Path, problems: list[str]) -> list[dict[str, Any]]:
    out = []
    for entry in _entries(root, "counterfactuals", problems, 1000):
        if entry.kind != "dir":
            continue
        rel = f"counterfactuals/{entry.name}"
        meta = _json(root, f"{rel}/interventions.json", INTERVENTIONS, {}, problems)
        out.append({"name": entry.name, "question": meta.get("question") or "",
                    "interventions": meta.get("interventions", []),
                    "csv": f"{rel}/counterfactual.csv",
                    "images": [f"{rel}/{e.name}" for e in _entries(root, rel, problems,
                                                                   suffix=".png")
                               if e.kind == "file"]})
    return out


def _sgnn_files(root: Path, problems: list[str]) -> list[tuple[str, int]]:
    """Plain files under sgnn/ (three levels deep at most), never through a link."""
    found: list[tuple[str, int]] = []
    pending = ["sgnn"]
    while pending and len(found) < MAX_FILES:
        folder = pending.pop(0)
        for entry in _entries(root, folder, problems, 1000):
            rel = f"{folder}/{entry.name}"
            if entry.kind == "file":
                found.append((rel, entry.size))
            elif rel.count("/") < 3:
                pending.append(rel)
    return sorted(found[:MAX_FILES])


def load_run(root: str | Path) -> RunView:
    """Everything under a run folder that review shows. Raises ``FileNotFoundError`` for a
    folder that is not a run (no task.json); any other bad file is a problem shown on the
    page."""
    root = Path(root)
    problems: list[str] = []
    try:
        task = read_run_json(root, "task.json", TASK)
    except FileNotFoundError:
        raise FileNotFoundError(f"{root}: not a run folder (no task.json)") from None
    except UntrustedDataError as exc:
        problems.append(str(exc))
        task = task_defaults()
    tree = _json(root, "tree.json", TREE, {"nodes": []}, problems)
    by_id = {r["id"]: r for r in tree["nodes"]}
    budget = [READ_BUDGET]
    candidates = {e.name: _candidate(root, e.name, by_id.get(e.name, {}), budget)
                  for e in _entries(root, "candidates", problems, MAX_CANDIDATES)
                  if e.kind == "dir"}
    # Tree order first (best first), then candidates a running search has not ranked yet.
    order = [*by_id, *(c for c in candidates if c not in by_id)]
    nodes = [{**(by_id.get(i) or candidates[i].node), "id": i} for i in order]
    reviews: dict[str, dict[str, Any]] = {}
    try:
        reviews = read_reviews(root)
    except UntrustedDataError as exc:
        problems.append(str(exc))
    return RunView(
        root=root, task=task, tree=tree, nodes=nodes, candidates=candidates,
        data_summary=_data_summary(root, task["data"], task["time_column"], problems),
        counterfactuals=_counterfactuals(root, problems),
        sgnn_files=_sgnn_files(root, problems), reviews=reviews, problems=problems)


def _has_plain(root: Path, relative: str, kind: str) -> bool:
    """Whether ``root/relative`` is a plain folder or file, reached without a link."""
    try:
        path = safe_child(root, relative, str(root))
        mode = path.lstat().st_mode
    except (OSError, UntrustedDataError):
        return False
    return stat.S_ISDIR(mode) if kind == "dir" else stat.S_ISREG(mode)


def find_runs(runs_dir: str | Path) -> dict[str, Path]:
    """Run folders directly under ``runs_dir`` (or ``runs_dir`` itself), by folder name.

    The app only ever opens a run through this mapping, so a URL can never name a path
    outside the served folder; an entry that is a symbolic link is not a run here (it
    would lead reads, and the decisions written, out of the folder being served).
    """
    base = Path(runs_dir)
    found: dict[str, Path] = {}
    if _has_plain(base, "task.json", "file"):
        found[base.resolve().name or "run"] = base
    try:
        entries = list_inside(base, ".", str(base), MAX_CANDIDATES)
    except UntrustedDataError:
        entries = []
    for entry in entries:
        if entry.kind == "dir" and _has_plain(base, f"{entry.name}/task.json", "file"):
            found.setdefault(entry.name, base / entry.name)
    return found


def has_candidate(root: Path, candidate_id: str) -> bool:
    """Whether the run has a plain folder ``candidates/ID`` (the id a valid folder name)."""
    try:
        CANDIDATE_ID(candidate_id, root.name, "candidate id")
    except UntrustedDataError:
        return False
    return _has_plain(root, f"candidates/{candidate_id}", "dir")


# ------------------------------------------------------------------------- decisions
_LOCK = threading.Lock()


def read_reviews(root: str | Path) -> dict[str, dict[str, Any]]:
    """The decisions recorded for a run, by candidate id (empty when none yet);
    UntrustedDataError when review.json is there but unusable."""
    try:
        data = read_run_json(root, "review.json", REVIEW)
    except FileNotFoundError:
        return {}
    return data["candidates"]


def approved_candidates(root: str | Path) -> list[str]:
    """Ids a reviewer approved (for the SGNN step, which trains on approved simulators)."""
    return sorted(k for k, v in read_reviews(root).items() if v["decision"] == "approved")


def record_decision(root: str | Path, candidate_id: str, decision: str, note: str,
                    now: datetime | None = None) -> dict[str, Any]:
    """Record approve / reject with a note for one candidate; returns the stored entry.

    Read-modify-write happens under a process-wide lock, so two reviewers clicking at
    once in the threaded server do not drop each other's decisions. A review.json that
    cannot be read (a link, a wrong shape) is refused rather than overwritten: the
    decisions it may hold are not thrown away silently.
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
    if len(note) > NOTE_LIMIT:
        raise ValueError(f"note longer than {NOTE_LIMIT} characters")
    root = Path(root)
    entry = {"decision": decision, "note": note,
             "time": (now or datetime.now(UTC)).isoformat(timespec="seconds")}
    with _LOCK:
        try:
            data = read_run_json(root, "review.json", REVIEW)
        except FileNotFoundError:
            data = {"candidates": {}}
        except UntrustedDataError as exc:
            raise UntrustedDataError(f"{exc}; fix or remove review.json before recording "
                                     "a decision") from None
        data["candidates"][candidate_id] = entry
        target = safe_child(root, "review.json", f"{root.name}/review.json")
        write_atomic(target, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return entry
