"""Read a run folder for review, and record decisions in its ``review.json``.

Everything here is read as JSON, CSV or text and handed to the renderers as plain data;
nothing from the run is executed or unpickled. A folder that is half written (a run still
going) or has missing pieces still loads: a reviewer should see what exists, with the
gaps named, rather than a stack trace.

``review.json`` (this package's file)::

    {"candidates": {ID: {"decision": "approved" | "rejected", "note": str, "time": iso}}}
"""

from __future__ import annotations

import csv
import json
import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mechanistic.files import write_atomic

__all__ = [
    "DECISIONS",
    "CandidateView",
    "RunView",
    "approved_candidates",
    "find_runs",
    "load_run",
    "read_reviews",
    "record_decision",
]

DECISIONS = ("approved", "rejected")
NOTE_LIMIT = 10_000


def _json(path: Path, default: Any = None) -> Any:
    """A JSON file, or ``default`` when it is missing or unreadable (a run in progress)."""
    if path.is_symlink():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def _text(path: Path) -> str | None:
    if path.is_symlink():
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _plain_file(path: Path) -> bool:
    """A regular file, not a link: review shows what the run wrote, never what a link in
    it points to elsewhere on the machine."""
    return path.is_file() and not path.is_symlink()


@dataclass
class CandidateView:
    """One candidate's files, as read; the renderer decides what to show."""

    id: str
    folder: Path
    node: dict[str, Any]
    source: str | None
    model_json: str | None
    checks: list[dict[str, Any]]
    fit: dict[str, Any] | None
    images: list[Path]

    @property
    def structure(self) -> str:
        return str(self.node.get("structure") or "unlabelled")

    @property
    def parent(self) -> str | None:
        parent = self.node.get("parent")
        return str(parent) if parent else None


@dataclass
class RunView:
    """A run folder: task, tree rows (best first), candidates, extras and decisions."""

    root: Path
    task: dict[str, Any]
    tree: dict[str, Any]
    nodes: list[dict[str, Any]]
    candidates: dict[str, CandidateView]
    data_summary: dict[str, Any]
    counterfactuals: list[dict[str, Any]] = field(default_factory=list)
    sgnn_files: list[Path] = field(default_factory=list)
    reviews: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.root.name


def _data_summary(path: Path, time_column: str | None) -> dict[str, Any]:
    """Rows, time span and per-column range and missing count, with the csv module: a
    review page should not wait on pandas for a table of a few hundred rows."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError:
        return {"rows": 0, "columns": []}
    if not rows:
        return {"rows": 0, "columns": []}
    header, body = rows[0], rows[1:]
    columns = []
    for i, name in enumerate(header):
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
    return {"rows": len(body), "columns": columns}


def _candidate(folder: Path, row: dict[str, Any]) -> CandidateView:
    node = _json(folder / "node.json", {}) or {}
    merged = {**node, **row}
    images = sorted(p for p in folder.glob("*.png") if _plain_file(p))
    return CandidateView(
        id=folder.name, folder=folder, node=merged, source=_text(folder / "simulator.py"),
        model_json=_text(folder / "model.json"),
        checks=_json(folder / "checks.json", None) or node.get("checks") or [],
        fit=_json(folder / "fit.json"), images=images)


def _counterfactuals(root: Path) -> list[dict[str, Any]]:
    out = []
    for folder in sorted((root / "counterfactuals").glob("*")):
        if not folder.is_dir():
            continue
        meta = _json(folder / "interventions.json", {}) or {}
        out.append({"name": folder.name, "question": meta.get("question", ""),
                    "interventions": meta.get("interventions", []),
                    "csv": folder / "counterfactual.csv",
                    "images": sorted(p for p in folder.glob("*.png") if _plain_file(p))})
    return out


def load_run(root: str | Path) -> RunView:
    """Everything under a run folder that review shows. Raises ``FileNotFoundError`` for a
    folder that is not a run (no task.json)."""
    root = Path(root)
    task = _json(root / "task.json")
    if not isinstance(task, dict):
        raise FileNotFoundError(f"{root}: not a run folder (no readable task.json)")
    tree = _json(root / "tree.json", {}) or {}
    rows = [r for r in tree.get("nodes", []) if isinstance(r, dict) and r.get("id")]
    by_id = {str(r["id"]): r for r in rows}
    candidates: dict[str, CandidateView] = {}
    folders = sorted(p for p in (root / "candidates").glob("*") if p.is_dir())
    for folder in folders:
        candidates[folder.name] = _candidate(folder, by_id.get(folder.name, {}))
    # Tree order first (best first), then candidates a running search has not ranked yet.
    order = [*by_id, *(c for c in candidates if c not in by_id)]
    nodes = [{**(by_id.get(i) or candidates[i].node), "id": i} for i in order]
    sgnn = root / "sgnn"
    return RunView(
        root=root, task=task, tree=tree, nodes=nodes, candidates=candidates,
        data_summary=_data_summary(root / str(task.get("data", "data.csv")),
                                   task.get("time_column")),
        counterfactuals=_counterfactuals(root),
        sgnn_files=sorted(p for p in sgnn.rglob("*") if _plain_file(p)) if sgnn.is_dir()
        else [],
        reviews=read_reviews(root))


def find_runs(runs_dir: str | Path) -> dict[str, Path]:
    """Run folders directly under ``runs_dir`` (or ``runs_dir`` itself), by folder name.

    The app only ever opens a run through this mapping, so a URL can never name a path
    outside the served folder.
    """
    base = Path(runs_dir)
    found: dict[str, Path] = {}
    if (base / "task.json").is_file():
        found[base.resolve().name or "run"] = base
    if base.is_dir():
        for child in sorted(base.iterdir()):
            if child.is_dir() and (child / "task.json").is_file():
                found.setdefault(child.name, child)
    return found


# ------------------------------------------------------------------------- decisions
_LOCK = threading.Lock()


def read_reviews(root: str | Path) -> dict[str, dict[str, Any]]:
    """The decisions recorded for a run, by candidate id (empty when none yet)."""
    data = _json(Path(root) / "review.json", {}) or {}
    candidates = data.get("candidates", {}) if isinstance(data, dict) else {}
    return {str(k): v for k, v in candidates.items() if isinstance(v, dict)}


def approved_candidates(root: str | Path) -> list[str]:
    """Ids a reviewer approved (for the SGNN step, which trains on approved simulators)."""
    return sorted(k for k, v in read_reviews(root).items() if v.get("decision") == "approved")



def record_decision(root: str | Path, candidate_id: str, decision: str, note: str,
                    now: datetime | None = None) -> dict[str, Any]:
    """Record approve / reject with a note for one candidate; returns the stored entry.

    Read-modify-write happens under a process-wide lock, so two reviewers clicking at
    once in the threaded server do not drop each other's decisions.
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
    if len(note) > NOTE_LIMIT:
        raise ValueError(f"note longer than {NOTE_LIMIT} characters")
    root = Path(root)
    entry = {"decision": decision, "note": note,
             "time": (now or datetime.now(UTC)).isoformat(timespec="seconds")}
    with _LOCK:
        data = _json(root / "review.json", {}) or {}
        if not isinstance(data, dict):
            data = {}
        candidates = data.get("candidates")
        if not isinstance(candidates, dict):
            candidates = {}
        candidates[candidate_id] = entry
        data["candidates"] = candidates
        write_atomic(root / "review.json", json.dumps(data, indent=2, sort_keys=True) + "\n")
    return entry
