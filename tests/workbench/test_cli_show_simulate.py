"""``mmw show`` and ``mmw simulate`` round trips on real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mechanistic import model_from_json


def test_show_prints_equations_parameters_and_checks(invoke, model_json: Path) -> None:
    result = invoke("show", model_json)
    assert result.exit_code == 0, result.output
    assert "dx/dt = -k*x" in result.output
    assert "LogUniform" in result.output
    assert "state_dynamics" in result.output


def test_show_json_is_the_review_dict(invoke, model_json: Path) -> None:
    result = invoke("show", model_json, "--json")
    assert result.exit_code == 0, result.output
    review = json.loads(result.stdout)
    assert review["name"] == "decay"
    assert [p["name"] for p in review["parameters"]] == ["k", "sigma"]
    assert review["summary"]["passed"] is True


def test_show_module_file_gives_the_same_model(invoke, model_json: Path,
                                               model_module: Path) -> None:
    from_json = json.loads(invoke("show", model_json, "--json").stdout)
    from_module = json.loads(invoke("show", model_module, "--json").stdout)
    assert from_module == from_json


def test_simulate_matches_the_analytic_solution(invoke, model_json: Path, params_json: Path,
                                                tmp_path: Path) -> None:
    out = tmp_path / "sim.csv"
    result = invoke("simulate", model_json, "--params", params_json, "--t", "0:10:0.5",
                    "--out", out)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["t", "x", "y"]
    assert np.allclose(frame["t"], np.arange(0, 10.01, 0.5))
    assert np.allclose(frame["x"], 10 * np.exp(-0.3 * frame["t"]), rtol=1e-6)
    assert f"wrote {out}" in result.output


def test_simulate_dopri5_with_a_dose(invoke, model_json: Path, params_json: Path,
                                     tmp_path: Path) -> None:
    doses = tmp_path / "dose.json"
    doses.write_text(json.dumps([{"kind": "dose", "state": "x", "amount": 5, "times": [2]}]))
    out = tmp_path / "sim.csv"
    result = invoke("simulate", model_json, "--params", params_json, "--t", "0:4:1",
                    "--solver", "dopri5", "--intervention", doses, "--out", out)
    assert result.exit_code == 0, result.output
    x = pd.read_csv(out)["x"].to_numpy()
    expected = 10 * np.exp(-0.3 * np.arange(5.0))
    expected[2:] += 5 * np.exp(-0.3 * (np.arange(2, 5) - 2))
    assert np.allclose(x, expected, rtol=1e-5)


def test_simulate_summary_without_out(invoke, model_json: Path, params_json: Path) -> None:
    result = invoke("simulate", model_json, "--params", params_json, "--t", "0:1:0.25")
    assert result.exit_code == 0, result.output
    assert "5 output times" in result.output


def test_model_json_round_trip_through_show(invoke, model_json: Path, tmp_path: Path) -> None:
    review = json.loads(invoke("show", model_json, "--json").stdout)
    model = model_from_json(model_json.read_text())
    again = tmp_path / "again.json"
    again.write_text(model.to_json())
    assert json.loads(invoke("show", again, "--json").stdout) == review
