"""``mmw sgnn``: a run folder end to end, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mechanistic.serialize import model_to_json
from sgnn.examples import seir, sir


def _invoke(*args: object) -> object:
    from workbench.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _run_folder(root: Path, n: int = 28) -> Path:
    """A minimal finished run: task, data, a ranked tree, two fitted candidates."""
    root.mkdir()
    t = np.arange(n, dtype=float)
    cases = np.round(5 * np.exp(0.12 * t))
    (root / "data.csv").write_text("t,cases\n" + "".join(f"{a:g},{b:g}\n"
                                                         for a, b in zip(t, cases, strict=True)))
    (root / "task.json").write_text(json.dumps({"description": "toy outbreak",
                                                "train_until": float(n - 7), "data": "data.csv",
                                                "time_column": "t"}))
    nodes = []
    for i, (cid, model) in enumerate((("c-sir", sir()), ("c-seir", seir()))):
        folder = root / "candidates" / cid
        folder.mkdir(parents=True)
        (folder / "model.json").write_text(model_to_json(model))
        params = {p: model.params_[p].prior.typical for p in model.free_param_names}
        (folder / "fit.json").write_text(json.dumps({"params": params}))
        nodes.append({"id": cid, "status": "ok", "score": 1.0 + i})
    (root / "tree.json").write_text(json.dumps({"best": "c-sir", "nodes": nodes}))
    return root


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run = _run_folder(tmp_path_factory.mktemp("cli") / "run")
    result = _invoke("sgnn", "train", run, "--simulations", 256, "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert "notice: no review.json" in result.output
    return run


def test_train_predict_attribute_write_under_run_sgnn(trained_run: Path) -> None:
    for name in ("weights.safetensors", "config.json", "index.npz", "diagnostics.json",
                 "models/0.json"):
        assert (trained_run / "sgnn" / name).is_file(), name
    result = _invoke("sgnn", "predict", trained_run, "--data", trained_run / "data.csv")
    assert result.exit_code == 0, result.output
    pred = json.loads((trained_run / "sgnn" / "prediction.json").read_text())
    assert set(pred["structures"]) == {"c-sir", "c-seir"}
    out = trained_run / "elsewhere.json"
    assert _invoke("sgnn", "predict", trained_run, "--data", trained_run / "data.csv",
                   "--out", out).exit_code == 0 and out.is_file()
    result = _invoke("sgnn", "attribute", trained_run, "--data", trained_run / "data.csv",
                     "--k", 5)
    assert result.exit_code == 0, result.output
    assert len(json.loads((trained_run / "sgnn" / "attribution.json").read_text())
               ["neighbours"]) == 5


def test_counterfactual_writes_bands_from_an_intervention_file(trained_run: Path) -> None:
    spec = trained_run / "halve.json"
    spec.write_text(json.dumps([{"kind": "scale", "target": "beta", "factor": 0.5,
                                 "start": 25}]))
    result = _invoke("sgnn", "counterfactual", trained_run, "--data", trained_run / "data.csv",
                     "--intervention", spec, "--draws", 20)
    assert result.exit_code == 0, result.output
    assert "effect median" in result.output
    got = json.loads((trained_run / "sgnn" / "counterfactual.json").read_text())
    assert got["n_draws"] == 20 and got["interventions"][0]["factor"] == 0.5
    assert (trained_run / "sgnn" / "counterfactual.csv").is_file()
    spec.write_text(json.dumps([{"kind": "scale", "target": "nope", "factor": 0.5}]))
    _one_line_error(_invoke("sgnn", "counterfactual", trained_run, "--data",
                            trained_run / "data.csv", "--intervention", spec), "nope")


def test_review_restricts_to_approved(tmp_path: Path) -> None:
    from workbench.commands_sgnn import select_candidates

    run = _run_folder(tmp_path / "run")
    (run / "review.json").write_text(json.dumps(
        {"candidates": {"c-seir": {"decision": "approved"}, "c-sir": {"decision": "rejected"}}}))
    nodes, notice = select_candidates(run, top_k=3)
    assert [n["id"] for n in nodes] == ["c-seir"] and notice is None


def _one_line_error(result: object, needle: str) -> None:
    assert result.exit_code != 0
    text = result.output.strip()
    assert needle in text, text
    assert "Traceback" not in text and len(text.splitlines()) <= 3, text


def test_bad_input_gives_one_line_errors(tmp_path: Path, trained_run: Path) -> None:
    _one_line_error(_invoke("sgnn", "train", tmp_path), "not a finished run folder")
    _one_line_error(_invoke("sgnn", "predict", tmp_path, "--data", trained_run / "data.csv"),
                    "no trained SGNN")
    bad = tmp_path / "bad.csv"
    bad.write_text("t,deaths\n" + "".join(f"{i},1\n" for i in range(20)))
    _one_line_error(_invoke("sgnn", "predict", trained_run, "--data", bad), "deaths")
    short = tmp_path / "short.csv"
    short.write_text("t,cases\n0,1\n1,2\n")
    _one_line_error(_invoke("sgnn", "predict", trained_run, "--data", short), "at least")
    _one_line_error(_invoke("sgnn", "predict", trained_run, "--data", tmp_path / "nope.csv"),
                    "no such file")
