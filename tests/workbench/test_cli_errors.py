"""Bad input anywhere: one ``error: ...`` line naming the problem, exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def bad(result, *fragments: str) -> None:
    """Exit 2, a single error line mentioning every fragment, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ----------------------------------------------------------------------------- models
def test_malformed_model_json(invoke, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "mmw.model/1", "name": ')
    bad(invoke("show", path), "broken.json", "not valid JSON")


def test_model_json_with_an_undefined_symbol(invoke, model_json: Path, tmp_path: Path) -> None:
    data = json.loads(model_json.read_text())
    data["rates"][0]["expr"]["args"][1] = {"sym": "zeta"}
    path = tmp_path / "undefined.json"
    path.write_text(json.dumps(data))
    bad(invoke("show", path), "undefined.json", "zeta")


def test_module_with_an_undefined_symbol(invoke, tmp_path: Path) -> None:
    path = tmp_path / "typo.py"
    path.write_text("from mechanistic import Model, Fixed\n"
                    "m = Model('typo')\n"
                    "x = m.state('x')\n"
                    "m.rate(x, -kappa * x)\n")
    bad(invoke("show", path), "typo.py", "line 4", "kappa")


def test_module_without_a_model(invoke, tmp_path: Path) -> None:
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    bad(invoke("show", path), "empty.py")


def test_missing_model_file(invoke, tmp_path: Path) -> None:
    bad(invoke("show", tmp_path / "nope.json"), "nope.json", "no such")


def test_unsupported_model_suffix(invoke, tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text("name: x\n")
    bad(invoke("show", path), "model.yaml", ".json")


# ----------------------------------------------------------------------------- simulate
@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("0:10", "START:STOP:STEP"), ("0:ten:1", "numbers"), ("0:10:0", "STEP must be positive"),
     ("5:1:1", "STOP must be after START"), ("0:inf:1", "finite")],
)
def test_bad_time_spec(invoke, model_json: Path, params_json: Path, spec: str,
                       fragment: str) -> None:
    bad(invoke("simulate", model_json, "--params", params_json, "--t", spec), spec, fragment)


def test_missing_parameters_are_listed(invoke, model_json: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"k": 0.3}))
    bad(invoke("simulate", model_json, "--params", path, "--t", "0:1:1"), "missing", "sigma")


def test_unknown_parameter(invoke, model_json: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"k": 0.3, "sigma": 0.1, "beta": 1}))
    bad(invoke("simulate", model_json, "--params", path, "--t", "0:1:1"), "unknown", "beta")


def test_non_numeric_parameter(invoke, model_json: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"k": "fast", "sigma": 0.1}))
    bad(invoke("simulate", model_json, "--params", path, "--t", "0:1:1"), "'k'", "number")


def test_malformed_params_json(invoke, model_json: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("{k: 0.3}")
    bad(invoke("simulate", model_json, "--params", path, "--t", "0:1:1"), "not valid JSON")


def test_params_not_an_object(invoke, model_json: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("[0.3, 0.1]")
    bad(invoke("simulate", model_json, "--params", path, "--t", "0:1:1"), "JSON object")


def test_missing_params_file(invoke, model_json: Path, tmp_path: Path) -> None:
    bad(invoke("simulate", model_json, "--params", tmp_path / "none.json", "--t", "0:1:1"),
        "none.json")


def test_intervention_on_an_unknown_target(invoke, model_json: Path, params_json: Path,
                                           tmp_path: Path) -> None:
    path = tmp_path / "i.json"
    path.write_text(json.dumps([{"kind": "set", "target": "beta", "value": 1, "start": 0}]))
    bad(invoke("simulate", model_json, "--params", params_json, "--t", "0:1:1",
               "--intervention", path), "beta")


def test_malformed_intervention_json(invoke, model_json: Path, params_json: Path,
                                     tmp_path: Path) -> None:
    path = tmp_path / "i.json"
    path.write_text("[{")
    bad(invoke("simulate", model_json, "--params", params_json, "--t", "0:1:1",
               "--intervention", path), "not valid JSON")


def test_unknown_solver(invoke, model_json: Path, params_json: Path) -> None:
    bad(invoke("simulate", model_json, "--params", params_json, "--t", "0:1:1",
               "--solver", "euler"), "euler", "rk4")


def test_bad_dt(invoke, model_json: Path, params_json: Path) -> None:
    bad(invoke("simulate", model_json, "--params", params_json, "--t", "0:1:1",
               "--dt", "-1"), "--dt")


# ----------------------------------------------------------------------------- data
def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_non_monotonic_time(invoke, model_json: Path, tmp_path: Path) -> None:
    path = _csv(tmp_path, "day,y\n0,10\n2,5\n1,7\n")
    bad(invoke("fit", model_json, path, "--out", tmp_path / "o"), "data.csv",
        "not strictly increasing")


def test_non_numeric_cell(invoke, model_json: Path, tmp_path: Path) -> None:
    path = _csv(tmp_path, "day,y\n0,10\n1,seven\n2,5\n")
    bad(invoke("fit", model_json, path, "--out", tmp_path / "o"), "'y'", "seven")


def test_unknown_column(invoke, model_json: Path, tmp_path: Path) -> None:
    path = _csv(tmp_path, "day,y,z\n0,10,1\n1,7,1\n")
    bad(invoke("fit", model_json, path, "--out", tmp_path / "o"), "'z'", "not observables")


def test_unreadable_csv(invoke, model_json: Path, tmp_path: Path) -> None:
    path = _csv(tmp_path, "")
    bad(invoke("fit", model_json, path, "--out", tmp_path / "o"), "data.csv")


def test_missing_data_file(invoke, model_json: Path, tmp_path: Path) -> None:
    bad(invoke("fit", model_json, tmp_path / "none.csv"), "none.csv", "no such file")
