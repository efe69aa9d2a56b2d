"""The run folder (DESIGN.md): what a search did, on disk, readable by people and tools.

::

    RUN/task.json            description, windows, data file, known inputs, proposer, config
    RUN/data.csv             the observations and known inputs as given
    RUN/trajectory.jsonl     every LLM call, sandbox run and decision, appended live
    RUN/tree.json            the search tree: one row per node, best first
    RUN/candidates/ID/       simulator.py, model.json, checks.json, fit.json, node.json

Files are written atomically (temp file + rename) so a reader, or a resumed run, never
sees half a file. Everything here is JSON or source text: nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.core import Candidate, Task, TrajectoryLog
from agent.evaluate import Node
from mechanistic.data import ObservedData, load_csv
from mechanistic.files import write_atomic
from mechanistic.inputs import inputs_from_meta

__all__ = ["RunStore"]



def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, default=str) + "\n"


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
        path = self.root / "task.json"
        if not path.is_file():
            raise FileNotFoundError(f"{self.root}: not a run folder (no task.json)")
        meta = json.loads(path.read_text())
        data: ObservedData = load_csv(self.root / meta.get("data", "data.csv"),
                                      time_column=meta.get("time_column"))
        data, inputs = inputs_from_meta(data, meta.get("inputs") or [])
        task = Task(meta["description"], data, float(meta["train_until"]),
                    meta.get("validate_until"), meta.get("objectives", ""),
                    meta.get("time_unit", "time"), inputs=inputs)
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
            import torch

            # A plain state dict of tensors, read back with weights_only=True.
            torch.save({k: v.detach().cpu() for k, v in node.fit_result.neural_state.items()},
                       folder / "neural.pt")
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

    def load_nodes(self) -> list[Node]:
        """Finished nodes of an interrupted run, for ``--resume``."""
        out = []
        for folder in sorted((self.root / "candidates").glob("*")):
            meta_path = folder / "node.json"
            if not meta_path.is_file():
                continue
            meta = json.loads(meta_path.read_text())
            info = meta["candidate"]
            candidate = Candidate(
                id=info["id"], source=(folder / "simulator.py").read_text(),
                structure=info["structure"], origin=info.get("origin", "propose"),
                parent=info.get("parent"), note=info.get("note", ""),
                roles=info.get("roles", {}), proposer=info.get("proposer", ""))
            fit_path = folder / "fit.json"
            model_path = folder / "model.json"
            out.append(Node(
                candidate, meta["status"], depth=meta.get("depth", 0),
                repairs=meta.get("repairs", 0),
                model_json=model_path.read_text() if model_path.is_file() else None,
                error=meta.get("error"), checks=meta.get("checks", []),
                fit=json.loads(fit_path.read_text()) if fit_path.is_file() else None,
                validation_error=meta.get("validation_error"), aic=meta.get("aic"),
                wall_time=meta.get("wall_time", 0.0), expanded=meta.get("expanded", False),
            ))
        return out

    def read_tree(self) -> dict[str, Any]:
        path = self.root / "tree.json"
        if not path.is_file():
            raise FileNotFoundError(f"{self.root}: the run has no tree.json yet")
        return json.loads(path.read_text())
