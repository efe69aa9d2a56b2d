"""``mmw export RUN --petab DIR``: the problem passes petab's own linter, and petab reads
back the run's measurements and the priors' bounds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sbml_cases import lotka_volterra
from typer.testing import CliRunner

from mechanistic.data import load_csv
from mechanistic.solvers import RK4, solver_to_dict
from workbench.cli import app

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data" / "hare_lynx.csv"


def _run_folder(root: Path) -> Path:
    """A finished run in the layout mmw model writes: one fitted Lotka-Volterra candidate
    on the hare-lynx records (fitted values written by hand; the export reads, not fits)."""
    case = lotka_volterra()
    cid = "lv1"
    row = {"id": cid, "structure": "Lotka-Volterra", "status": "ok", "origin": "propose",
           "parent": None, "note": "", "proposer": "library", "depth": 0, "repairs": 0,
           "expanded": False, "validation_error": 0.5, "aic": 100.0, "score": 0.5,
           "wall_time": 1.0, "error": None, "failed_checks": [], "roles": {}}
    folder = root / "candidates" / cid
    folder.mkdir(parents=True)
    (root / "data.csv").write_text(DATA.read_text())
    (root / "task.json").write_text(json.dumps({
        "description": "hare and lynx", "train_until": 1915.0, "validate_until": None,
        "time_unit": "year", "data": "data.csv", "time_column": "Year", "inputs": [],
        "agent": "library", "seed": 0}))
    (root / "tree.json").write_text(json.dumps({"best": cid, "stop_reason": "done",
                                                "nodes": [row]}))
    info = {k: row[k] for k in ("id", "structure", "origin", "parent", "note", "roles",
                                "proposer")}
    (folder / "node.json").write_text(json.dumps({**row, "candidate": info, "checks": []}))
    (folder / "simulator.py").write_text("# Lotka-Volterra\n")
    (folder / "model.json").write_text(case.model.to_json())
    (folder / "fit.json").write_text(json.dumps({
        "params": case.params, "free_params": case.model.free_param_names, "t0": 1845.0,
        "solver": solver_to_dict(RK4(0.25))}))
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("petab")
    run = _run_folder(root / "run")
    out = root / "problem"
    result = CliRunner().invoke(app, ["export", str(run), "--petab", str(out)])
    assert result.exit_code == 0, result.output
    assert "PEtab:" in result.output and "182 measurements" in result.output
    return out


def test_petab_linter_accepts_the_problem(exported):
    import petab.v1 as petab

    problem = petab.Problem.from_yaml(str(exported / "problem.yaml"))
    assert petab.lint_problem(problem) is False  # False: no errors found


def test_petab_reads_back_the_measurements_and_the_bounds(exported):
    import petab.v1 as petab

    problem = petab.Problem.from_yaml(str(exported / "problem.yaml"))
    data = load_csv(DATA)
    m = problem.measurement_df
    for name in ("Hare", "Lynx"):
        rows = m[m["observableId"] == f"obs_{name}"].sort_values("time")
        assert np.allclose(rows["time"].to_numpy() + 1845.0, data.t)
        assert np.array_equal(rows["measurement"].to_numpy(), data.values[name])
        assert set(rows.loc[rows["time"] + 1845 <= 1915, "datasetId"]) == {"train"}
        assert set(rows.loc[rows["time"] + 1845 > 1915, "datasetId"]) == {"validation"}
    params = problem.parameter_df
    case = lotka_volterra()
    for name, p in case.model.params_.items():
        row = params.loc[name]
        assert (row["lowerBound"], row["upperBound"]) == (p.prior.low, p.prior.high)
        assert row["parameterScale"] == "log10" and row["estimate"] == 1
        assert row["nominalValue"] == case.params[name]
    obs = problem.observable_df
    assert set(obs["observableTransformation"]) == {"log"}  # log-normal noise
    assert obs.loc["obs_Hare", "noiseFormula"] == "s"


def test_the_petab_model_simulates_the_run_candidate(exported):
    """libRoadRunner on PEtab's SBML, in time since t0, matches mmw from 1845."""
    from sbml_cases import relative_error, simulate_mmw, simulate_roadrunner

    case = lotka_volterra()
    sbml = (exported / "model.xml").read_text()
    t = np.linspace(0.0, 90.0, 91)
    theirs = simulate_roadrunner(sbml, ["H", "L"], t)
    ours = simulate_mmw(case.model, case.params, t)
    assert max(relative_error(ours[n], theirs[n]) for n in ("H", "L")) < 1e-6
    assert math.isfinite(float(theirs["H"][-1]))


def test_petab_needs_a_run_folder(tmp_path):
    model = tmp_path / "m.json"
    model.write_text(lotka_volterra().model.to_json())
    result = CliRunner().invoke(app, ["export", str(model), "--petab", str(tmp_path / "p")])
    assert result.exit_code == 2 and "need a run folder" in result.output


def test_each_noise_kind_writes_its_own_petab_form(tmp_path):
    """The noise formula comes from the kind itself (Noise.petab): Gaussian noise is its
    sd parameter (the export once read a field Gaussian lacks, and failed), a count kind
    is normal with its variance and a note, and a kind without a PEtab form is one
    ModelError naming it."""
    import pandas as pd

    from mechanistic import Gaussian, LogUniform, Model, Poisson
    from mechanistic.data import ObservedData
    from mechanistic.errors import ModelError
    from mechanistic.formats.petab_out import write_petab

    class Unwritable(Gaussian):
        kind = "unwritable"

        def petab(self, f, formula):
            return None

    data = ObservedData(np.arange(5.0), {"x": 100 * np.exp(-0.2 * np.arange(5.0))})
    forms = {}
    for label, noise in (("gaussian", lambda m: Gaussian(m.param("sd", LogUniform(0.1, 9)))),
                         ("poisson", lambda m: Poisson()),
                         ("none", lambda m: Unwritable(m.param("sd", LogUniform(0.1, 9))))):
        m = Model("decay")
        x = m.state("x")
        k = m.param("k", LogUniform(0.01, 2.0))
        m.flow(x, None, k * x)
        m.init(x=100.0)
        m.observe("x", x, noise=noise(m))
        params = {p: m.params_[p].prior.typical for p in m.param_names}
        try:
            result = write_petab(tmp_path / label, m, data, params=params,
                                 free=list(m.free_param_names))
        except ModelError as exc:
            forms[label] = str(exc)
            continue
        table = pd.read_csv(result.files["observable"], sep="\t")
        forms[label] = (table["noiseFormula"][0], table["observableTransformation"][0],
                        [n for n in result.notes if n.startswith("x:")])
    assert forms["gaussian"] == ("sd", "lin", [])
    assert forms["poisson"][0].startswith("sqrt(") and forms["poisson"][1] == "lin"
    assert forms["poisson"][2] == ["x: Poisson noise written as normal with variance f "
                                   "(PEtab v1 has no count distributions)"]
    assert "noise 'unwritable'" in forms["none"] and "no PEtab form" in forms["none"]
