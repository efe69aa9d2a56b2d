"""``mmw fit`` and ``mmw example``: fitted values, the files a reviewer reads, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest


def test_fit_recovers_the_decay_rate_and_writes_its_files(invoke, model_json: Path,
                                                          decay_csv: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "fit"
    result = invoke("fit", model_json, decay_csv, "--train-until", "15", "--out", out,
                    "--starts", "2", "--seed", "0")
    assert result.exit_code == 0, result.output
    params = json.loads((out / "fitted_params.json").read_text())
    assert params["k"] == pytest.approx(0.3, rel=0.05)
    summary = json.loads((out / "fit.json").read_text())
    for key in ("loglik", "aic", "bic", "validation", "params"):
        assert key in summary
    assert summary["train_until"] == 15
    assert summary["validation"]["y"]["n"] == 5
    table = pd.read_csv(out / "table.csv")
    assert list(table.columns) == ["day", "split", "y", "y_fit", "y_residual"]
    assert (table["split"] == "validation").sum() == 5
    assert (out / "fit.png").stat().st_size > 10_000
    assert "validation y: RMSE" in result.output
    assert "AIC" in result.output


def test_fit_module_file_without_split(invoke, model_module: Path, decay_csv: Path,
                                       tmp_path: Path) -> None:
    out = tmp_path / "fit"
    result = invoke("fit", model_module, decay_csv, "--out", out, "--starts", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "fit.json").read_text())["validation"] == {}
    assert "split" not in pd.read_csv(out / "table.csv").columns


def test_fit_train_until_before_the_data(invoke, model_json: Path, decay_csv: Path,
                                         tmp_path: Path) -> None:
    result = invoke("fit", model_json, decay_csv, "--train-until", "-5", "--out", tmp_path)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ")
    assert "train-until" in result.output


def _example_outputs(out: Path) -> None:
    for name in ("fit.png", "table.csv", "fit.json", "fitted_params.json", "simulation.csv",
                 "simulation.png", "model.json"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "table.csv")
    assert {"Year", "Hare", "Hare_fit", "Lynx", "Lynx_fit", "split"} <= set(table.columns)
    assert table.loc[table["split"] == "validation", "Year"].tolist() == list(range(1916, 1936))


def test_example_job_fast(invoke, tmp_path: Path) -> None:
    """The main job end to end with a single short start: files and the split are right."""
    out = tmp_path / "example"
    result = invoke("example", "--out", out, "--starts", "1", "--steps", "20", "--seed", "0")
    assert result.exit_code == 0, result.output
    _example_outputs(out)
    assert f"results in {out}" in result.output


@pytest.mark.slow
def test_example_job_default(invoke, tmp_path: Path) -> None:
    """The main job on its defaults, as the README runs it; the fit must beat the prior guess."""
    out = tmp_path / "example"
    result = invoke("example", "--out", out)
    assert result.exit_code == 0, result.output
    _example_outputs(out)
    summary = json.loads((out / "fit.json").read_text())
    for name in ("Hare", "Lynx"):
        assert summary["validation"][name]["nrmse"] < 1.5
