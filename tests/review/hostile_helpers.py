"""A small run folder written by hand, in the layout ``mmw model`` writes, for the
hostile-run-folder tests: building it takes milliseconds and runs no sandbox, so each
attack (a link, a FIFO, a wrong JSON type) is applied to a fresh copy of a known-good run.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from decay_models import decay_model_json

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
SECRET = "HOST-SECRET-8d1f2c"  # written outside the run; must never reach a page


def model_json() -> str:
    return decay_model_json()


def _row(node_id: str, status: str, parent: str | None, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "structure": f"decay {node_id}", "status": status,
            "origin": "repair" if parent else "propose", "parent": parent, "note": "",
            "proposer": "llm", "depth": 0, "repairs": 1 if parent else 0, "expanded": False,
            "validation_error": 0.1 if status == "ok" else None, "aic": 12.5 if status == "ok"
            else None, "score": 0.1 if status == "ok" else None, "wall_time": 0.5,
            "error": None if status == "ok" else {"kind": "exception", "type": "RuntimeError",
                                                  "message": "broken", "lineno": 3,
                                                  "traceback": "Traceback ...", "frames": []},
            "failed_checks": [], "roles": {}, **extra}


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value, indent=1))


def make_run(root: Path) -> Path:
    """A finished run: candidate ``good1`` (fitted, with a plot) and ``bad2`` (its failed
    sibling), a trajectory, a counterfactual and an sgnn/ summary."""
    checks = [{"name": "non_negativity", "passed": True, "message": "ok", "severity": "error"}]
    _write(root / "task.json", {"description": "a tracer washes out", "train_until": 20.0,
                                "validate_until": None, "objectives": "", "time_unit": "day",
                                "data": "data.csv", "time_column": "day", "inputs": [],
                                "agent": "llm", "llm": "m", "seed": 0})
    _write(root / "data.csv", "day,x\n" + "".join(f"{t},{100 * 0.8 ** t:.4f}\n"
                                                  for t in range(30)))
    rows = [_row("good1", "ok", None), _row("bad2", "invalid", None)]
    _write(root / "tree.json", {"stop_reason": "done", "best": "good1", "usage": {"nodes": 2},
                                "nodes": rows})
    for row in rows:
        folder = root / "candidates" / row["id"]
        info = {k: row[k] for k in ("id", "structure", "origin", "parent", "note", "roles",
                                    "proposer")}
        _write(folder / "node.json", {**row, "candidate": info, "checks": checks})
        _write(folder / "simulator.py", f"# structure: decay {row['id']}\nx = 1\n")
        _write(folder / "checks.json", checks)
    good = root / "candidates" / "good1"
    _write(good / "model.json", model_json())
    _write(good / "fit.json", {"params": {"k": 0.2, "x0": 100.0, "s": 0.1},
                               "free_params": ["k", "x0", "s"], "aic": 12.5, "n_obs": 21,
                               "converged": True, "message": "fine",
                               "train_residuals": {"x": {"n": 21, "rmse": 0.5, "nrmse": 0.1,
                                                         "bias": 0.0}},
                               "validation_residuals": {}, "t0": 0.0, "solver": {}})
    (good / "fit.png").write_bytes(PNG)
    _write(root / "trajectory.jsonl", '{"kind": "llm_call"}\n{"kind": "decision"}\n')
    cf = root / "counterfactuals" / "dose"
    _write(cf / "interventions.json", {"question": "what if we dose?", "interventions": []})
    _write(cf / "counterfactual.csv", "t,baseline_x,intervened_x\n0,1,1\n1,0.8,1.5\n")
    _write(root / "sgnn" / "metrics.json", {"coverage_90": 0.88})
    return root


def outside(tmp_path: Path) -> Path:
    """A folder beside the run holding secrets: a text file, a PNG, a run-like folder."""
    base = tmp_path / "outside"
    base.mkdir(exist_ok=True)
    (base / "secret.txt").write_text(f"{SECRET}\n")
    (base / "secret.csv").write_text(f"day,{SECRET}\n0,1\n1,2\n")
    (base / "secret.png").write_bytes(PNG + SECRET.encode())
    (base / "secret.json").write_text(json.dumps({"question": SECRET, "kind": SECRET,
                                                  "nodes": [], "stop_reason": SECRET}))
    folder = base / "folder"
    folder.mkdir(exist_ok=True)
    for name in ("simulator.py", "metrics.json", "notes.txt"):
        (folder / name).write_text(f"# {SECRET}\n")
    (folder / "interventions.json").write_text(json.dumps({"question": SECRET}))
    (folder / "node.json").write_text(json.dumps({"id": "x", "structure": SECRET}))
    return base


def passwd_line() -> str | None:
    """The first line of /etc/passwd when there is one (the red team's leak marker)."""
    try:
        line = Path("/etc/passwd").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return line or None


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)
    return path


def within(seconds: float, call: Callable[[], Any], fifos: list[Path] = ()) -> Any:
    """``call()``'s result, failing the test if it takes longer than ``seconds`` (a read
    blocked on a FIFO); the FIFOs are then opened for writing and closed, so a blocked
    reader gets end-of-file and the thread ends instead of outliving the test."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = call()
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for path in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        raise AssertionError(f"still running after {seconds} s (blocked on a FIFO?)")
    if "error" in out:
        raise out["error"]
    return out.get("value")
