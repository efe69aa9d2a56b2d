"""The run folder (docs/architecture.md): what a search did, on disk, readable by people and tools.

::

    RUN/task.json            description, windows, data file, known inputs, proposer, config
    RUN/data.csv             the observations and known inputs as given
    RUN/trajectory.jsonl     every LLM call, sandbox run and decision, appended live
    RUN/tree.json            the search tree: one row per node, best first
    RUN/candidates/ID/       simulator.py, model.json, checks.json, fit.json, node.json,
                             neural.safetensors (hybrids), distill.json (distilled rates)

Files are written atomically (temp file + rename) so a reader, or a resumed run, never
sees half a file. Everything here is JSON, source text or safetensors: nothing is
unpickled. Files are
read back as untrusted data (agent/runfiles.py): regular files inside the run, no link
followed, each JSON file checked against its shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.core import Candidate, Task, TrajectoryLog
from agent.evaluate import Node
from agent.runfiles import (
    CANDIDATE_ID,
    FIT,
    MODEL_LIMIT,
    NODE_FILE,
    SOURCE_LIMIT,
    TASK,
    TREE,
    read_run_json,
    read_run_text,
)
from mechanistic.data import ObservedData, load_csv
from mechanistic.errors import UntrustedDataError
from mechanistic.files import json_data, write_atomic, write_bytes_atomic
from mechanistic.inputs import inputs_from_meta
from mechanistic.shapes import Shape
from mechanistic.untrusted import file_inside, list_inside
from sandbox.runner import ModuleError

__all__ = ["WEIGHTS_FILE", "RunStore"]

WEIGHTS_FILE = "neural.safetensors"  # a hybrid candidate's network weights


def _dump(value: Any) -> str:
    """JSON a reader of the run accepts: non-finite numbers as null (NaN is not JSON, and
    the run-folder reader refuses it), anything else unknown as its text."""
    return json.dumps(json_data(value), indent=2, allow_nan=False) + "\n"


class RunStore:
    """Reads and writes one run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.trajectory = TrajectoryLog(self.root / "trajectory.jsonl")

    # ------------------------------------------------------------------ task
    def write_task(self, task: Task, meta: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        frame = task.data.to_frame()
        for series in task.inputs:  # the data as given: observations and known inputs
            frame[series.name] = series.values  # type: ignore[index]
        write_atomic(self.root / "data.csv", frame.to_csv(index=False))  # type: ignore[attr-defined]
        write_atomic(self.root / "task.json", _dump({
            "description": task.description, "train_until": task.train_until,
            "validate_until": task.validate_until, "objectives": task.objectives,
            "time_unit": task.time_unit, "data": "data.csv", "time_column": task.data.time_name,
            "source": task.data.source, "inputs": [i.to_dict() for i in task.inputs], **meta,
        }))

    def read_task(self) -> tuple[Task, dict[str, Any]]:
        """The task and its meta, read as untrusted data (agent/runfiles.py): the data
        file it names must be a regular file inside the run, reached without a link."""
        try:
            meta = read_run_json(self.root, "task.json", TASK)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.root}: not a run folder (no task.json)") from None
        path = file_inside(self.root, meta["data"], f"{self.root.name}/task.json: data")
        data: ObservedData = load_csv(path, time_column=meta["time_column"])
        data, inputs = inputs_from_meta(data, meta["inputs"] or [])
        task = Task(meta["description"], data, meta["train_until"], meta["validate_until"],
                    meta["objectives"] or "", meta["time_unit"], inputs=inputs)
        return task, meta

    # ----------------------------------------------------------------- nodes
    def candidate_dir(self, node_id: str) -> Path:
        return self.root / "candidates" / node_id

    def save_node(self, node: Node) -> None:
        folder = self.candidate_dir(node.id)
        write_atomic(folder / "simulator.py", node.candidate.source)
        if node.model_json is not None:
            write_atomic(folder / "model.json", node.model_json)
        write_atomic(folder / "checks.json", _dump(node.checks))
        if node.fit is not None:
            write_atomic(folder / "fit.json", _dump(node.fit))
        if node.fit_result is not None and node.fit_result.neural_state:
            from safetensors.torch import save

            # tensors and a JSON header: reading it back unpickles and executes nothing
            write_bytes_atomic(folder / WEIGHTS_FILE, save(
                {k: v.detach().cpu().contiguous() for k, v in
                 node.fit_result.neural_state.items()}))
        if node.candidate.details:  # e.g. a distilled rate: learned vs closed form
            write_atomic(folder / "distill.json", _dump(dict(node.candidate.details)))
        write_atomic(folder / "node.json", _dump({
            **node.to_dict(), "candidate": {k: v for k, v in node.candidate.to_dict().items()
                                            if k not in ("source", "details")},
            "checks": node.checks,
        }))

    def save_tree(self, nodes: list[Node], meta: dict[str, Any]) -> None:
        ranked = sorted(nodes, key=lambda n: (n.score, n.id))
        write_atomic(self.root / "tree.json", _dump({
            **meta, "best": ranked[0].id if ranked and ranked[0].ok else None,
            "nodes": [n.to_dict() for n in ranked],
        }))

    def candidate_json(self, node_id: str, name: str, shape: Shape) -> Any:
        """``candidates/ID/NAME`` checked against ``shape`` (FileNotFoundError if absent)."""
        return read_run_json(self.root, self._candidate_file(node_id, name), shape)

    def candidate_text(self, node_id: str, name: str, max_bytes: int = MODEL_LIMIT) -> str:
        """``candidates/ID/NAME`` as text, bounded (FileNotFoundError if absent)."""
        return read_run_text(self.root, self._candidate_file(node_id, name), max_bytes)

    def _candidate_file(self, node_id: str, name: str) -> str:
        return f"candidates/{CANDIDATE_ID(node_id, self.root.name, 'candidate id')}/{name}"

    def load_nodes(self) -> list[Node]:
        """Finished nodes of an interrupted run, for ``--resume``: every file read as
        untrusted data, so a bad one is one UntrustedDataError naming it."""
        out = []
        for entry in list_inside(self.root, "candidates", f"{self.root.name}/candidates"):
            if entry.kind in ("link", "other"):
                raise UntrustedDataError(f"{self.root.name}/candidates/{entry.name} is not a "
                                         "plain folder (a link or a special file); remove it "
                                         "to resume")
            if entry.kind != "dir":
                continue
            try:
                meta = self.candidate_json(entry.name, "node.json", NODE_FILE)
            except FileNotFoundError:
                continue  # not finished when the run stopped
            info = meta["candidate"]
            if info["id"] != entry.name or meta["id"] != entry.name:
                raise UntrustedDataError(f"{self.root.name}/candidates/{entry.name}/node.json "
                                         f"describes candidate {info['id']!r}, not the folder's")
            try:
                source = self.candidate_text(entry.name, "simulator.py", SOURCE_LIMIT)
            except FileNotFoundError:
                raise UntrustedDataError(f"{self.root.name}/candidates/{entry.name}: node.json "
                                         "without simulator.py") from None
            candidate = Candidate(
                id=info["id"], source=source, structure=info["structure"],
                origin=info["origin"], parent=info["parent"], note=info["note"] or "",
                roles=info["roles"], proposer=info["proposer"] or "")
            error = None if meta["error"] is None else ModuleError.from_dict(
                meta["error"], f"{self.root.name}/candidates/{entry.name}/node.json: error")
            out.append(Node(
                candidate, meta["status"], depth=meta["depth"], repairs=meta["repairs"],
                model_json=self._optional(self.candidate_text, entry.name, "model.json"),
                error=error, checks=meta["checks"],
                fit=self._optional(self.candidate_json, entry.name, "fit.json", FIT),
                validation_error=meta["validation_error"], aic=meta["aic"],
                wall_time=meta["wall_time"], expanded=meta["expanded"],
            ))
        return out

    @staticmethod
    def _optional(read: Any, *args: Any) -> Any:
        try:
            return read(*args)
        except FileNotFoundError:
            return None

    def read_tree(self) -> dict[str, Any]:
        """tree.json, checked against its shape (agent/runfiles.py)."""
        try:
            return read_run_json(self.root, "tree.json", TREE)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.root}: the run has no tree.json yet") from None
