"""A fitted candidate, rebuilt from a run folder: forecasts and counterfactuals.

A run folder holds each candidate's model JSON, its fit (parameters, t0, solver) and, for
hybrid models, the networks' weights (``neural.safetensors``: tensors and a bounded
header, so loading executes and unpickles nothing). Every file is read as untrusted data
(:mod:`agent.runfiles`). From these the fitted simulator is rebuilt without rerunning the
candidate's code or the fit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.core import Candidate, Proposer, Task
from agent.runfiles import CANDIDATE_ID, FIT, MODEL_LIMIT, NODE_FILE, read_run_json, read_run_text
from agent.store import WEIGHTS_FILE, RunStore
from mechanistic.errors import UntrustedDataError
from mechanistic.files import write_atomic
from mechanistic.interventions import (
    Intervention,
    interventions_to_json,
    validate_interventions,
)
from mechanistic.model import Model
from mechanistic.serialize import model_from_json
from mechanistic.simulate import CompiledModel, compile_model
from mechanistic.uncertainty import Bands, laplace_draws, predictive_bands
from mechanistic.untrusted import read_inside

__all__ = ["Counterfactual", "FittedCandidate", "answer_counterfactual", "load_fitted"]


@dataclass
class FittedCandidate:
    """One candidate of a run with its fit, ready to simulate."""

    task: Task
    candidate: Candidate
    model: Model
    fit: dict[str, Any]
    compiled: CompiledModel

    def bands(self, t_eval: Sequence[float] | np.ndarray, interventions: Sequence[Intervention]
              = (), draws: int = 200, seed: int = 0) -> Bands:
        """Predictive bands from Laplace draws around the fit (see mechanistic.uncertainty),
        with the task's known inputs on their observed schedules."""
        controls = self.controls
        params = laplace_draws(self.model, self.task.data, self.fit, n=draws, seed=seed,
                               compiled=self.compiled, controls=controls)
        return predictive_bands(self.compiled, params, t_eval, t0=float(self.fit["t0"]),
                                solver=self.fit["solver"], interventions=interventions,
                                controls=controls, seed=seed)

    @property
    def controls(self) -> dict[str, Any]:
        return self.task.controls_for(self.model.control_names)


def load_fitted(run: str | Path, candidate_id: str | None = None) -> FittedCandidate:
    """The best valid candidate of a run (or the one named) with its fit."""
    store = RunStore(run)
    task, _ = store.read_task()
    tree = store.read_tree()
    node_id = candidate_id or tree.get("best")
    if node_id is None:
        raise ValueError(f"{run}: the run has no valid fitted candidate to use")
    folder = f"candidates/{CANDIDATE_ID(node_id, 'the candidate', 'id')}"
    try:
        fit = read_run_json(store.root, f"{folder}/fit.json", FIT)
        model = model_from_json(read_run_text(store.root, f"{folder}/model.json", MODEL_LIMIT))
    except FileNotFoundError:
        known = [n["id"] for n in tree.get("nodes", []) if n.get("status") == "ok"]
        raise ValueError(f"{run}: candidate {node_id!r} has no fit; fitted candidates: "
                         f"{known}") from None
    if fit["t0"] is None or not fit["solver"]:
        raise UntrustedDataError(f"{folder}/fit.json has no start time or solver; it was not "
                                 "written by a fit (refit with `mmw model`)")
    compiled = compile_model(model)
    if model.neural_:
        try:
            compiled.neural.load_state_dict(_weights(store.root, folder))
        except RuntimeError as exc:  # names or shapes that are not this network's
            raise UntrustedDataError(f"{folder}/{WEIGHTS_FILE} does not fit the model's "
                                     f"networks: {str(exc)[:200]}") from None
    info = read_run_json(store.root, f"{folder}/node.json", NODE_FILE)["candidate"]
    candidate = Candidate(info["id"], read_run_text(store.root, f"{folder}/simulator.py"),
                          info["structure"], info["origin"], info["parent"], info["note"] or "",
                          info["roles"], info["proposer"] or "")
    return FittedCandidate(task, candidate, model, fit, compiled)


def _weights(root: Path, folder: str) -> dict[str, torch.Tensor]:
    """A hybrid's network weights: a safetensors file (tensors and a bounded JSON header,
    nothing executed or unpickled), checked against the network before use."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        raw = read_inside(root, f"{folder}/{WEIGHTS_FILE}", f"{folder}/{WEIGHTS_FILE}",
                          64 * 1024 * 1024)
    except FileNotFoundError:
        raise ValueError(f"{root}: {folder} is a hybrid model but has no {WEIGHTS_FILE}; "
                         "refit it with `mmw model`") from None
    try:
        return load(raw)
    except (SafetensorError, ValueError) as exc:
        raise UntrustedDataError(f"{folder}/{WEIGHTS_FILE}: not a readable weights file "
                                 f"({str(exc)[:200]})") from None


@dataclass(frozen=True)
class Counterfactual:
    """A what-if answer: the interventions used and the bands with and without them."""

    question: str
    interventions: list[Intervention]
    baseline: Bands
    intervened: Bands

    def frame(self) -> Any:
        base = self.baseline.frame().add_prefix("baseline_").rename(columns={"baseline_t": "t"})
        what = self.intervened.frame().add_prefix("intervened_").drop(columns=["intervened_t"])
        return base.join(what)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "interventions.json", json.dumps(
            {"question": self.question,
             "interventions": interventions_to_json(self.interventions)}, indent=2) + "\n")
        write_atomic(folder / "counterfactual.csv", self.frame().to_csv(index=False))


def answer_counterfactual(
    fitted: FittedCandidate,
    proposer: Proposer | None,
    *,
    question: str = "",
    interventions: Sequence[Intervention] | None = None,
    t_eval: Sequence[float] | np.ndarray,
    draws: int = 200,
    seed: int = 0,
) -> Counterfactual:
    """Translate ``question`` (unless ``interventions`` are given) and simulate both worlds
    from the same parameter draws, so the difference is the intervention's effect."""
    if interventions is None:
        if proposer is None or not question.strip():
            raise ValueError("give a question (--what) or an intervention file (--intervention)")
        items = proposer.intervention(fitted.task, fitted.candidate,
                                      fitted.model.to_json(), question)
    else:
        items = list(interventions)
    validate_interventions(fitted.model, items)
    baseline = fitted.bands(t_eval, (), draws=draws, seed=seed)
    intervened = fitted.bands(t_eval, items, draws=draws, seed=seed)
    return Counterfactual(question or "intervention file", list(items), baseline, intervened)


def slug(text: str) -> str:
    """A folder name for a question."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "counterfactual"
