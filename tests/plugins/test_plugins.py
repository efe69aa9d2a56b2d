"""A part registered from outside the package is used through the CLI and the bench runner.

The plugin module lives in this folder, not in an mmw package, and is named only in
``MMW_PLUGINS``: ``mmw model --agent toy`` must search with its proposer, ``mmw bench run
--agents persistence`` must score its agent in a spawned job process, and ``mmw check``
must run a module in its sandbox backend when ``--backend toy`` or ``MMW_SANDBOX=toy``
names it, and ``mmw simulate --solver euler`` must integrate with its solver. A second
plugin, ``toy_sgnn_head``, adds an SGNN head that ``mmw sgnn train --head peak`` trains and
calibrates and ``mmw sgnn predict`` reads. The first plugin's ``laplace`` noise kind is
the likelihood ``mmw fit`` maximises and the distribution ``mmw show`` prints for a model
JSON that names it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
MMW = (sys.executable, "-c", "from workbench.cli import app; app()")


def _env(plugins: str = "toy_mmw_plugin") -> dict[str, str]:
    # the plugins, and tests/ for the decay module they share with the tests
    path = os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "MMW_PLUGINS": plugins, "PYTHONPATH": path}


def _mmw(*args: object, timeout: float = 300,
         plugins: str = "toy_mmw_plugin") -> subprocess.CompletedProcess:
    return subprocess.run([*MMW, *map(str, args)],
                          capture_output=True, text=True, env=_env(plugins), timeout=timeout)


def test_a_plugin_proposer_searches_through_mmw_model(tmp_path):
    t = np.arange(0.0, 30.0)
    y = 100.0 * np.exp(-0.2 * t) * np.exp(np.random.default_rng(1).normal(0, 0.05, t.size))
    data = tmp_path / "decay.csv"
    data.write_text("t,x\n" + "".join(f"{a},{b}\n" for a, b in zip(t, y, strict=True)))
    run = tmp_path / "run"
    result = _mmw("model", "--describe", "a substance decays", "--data", data, "--agent", "toy",
                  "--out", run, "--max-nodes", 1, "--train-until", 20)
    assert result.returncode == 0, result.stderr[-2000:]
    tree = json.loads((run / "tree.json").read_text())
    best = next(n for n in tree["nodes"] if n["id"] == tree["best"])
    assert best["structure"] == "toy first-order decay"
    fit = json.loads((run / "candidates" / tree["best"] / "fit.json").read_text())
    assert abs(fit["params"]["k"] - 0.2) < 0.03  # the truth is 0.2


def test_a_plugin_agent_is_scored_by_the_bench_runner(tmp_path):
    out = tmp_path / "bench"
    result = _mmw("bench", "run", "--agents", "persistence", "--tasks", "epi-seir-town-partial",
                  "--seeds", 1, "--out", out, "--workers", 1)
    assert result.returncode == 0, result.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in (out / "results").glob("*.json")]
    assert len(results) == 1 and results[0]["status"] == "ok", results
    assert results[0]["agent"] == "persistence"
    assert results[0]["metrics"]  # scored like any other agent


def test_a_plugin_sandbox_backend_runs_modules_through_mmw_check(tmp_path):
    from decay_models import DECAY_SOURCE  # not the plugin: importing it here would
    # register its parts in this test process too, for every later test
    module = tmp_path / "decay.py"
    module.write_text(DECAY_SOURCE)
    by_env = subprocess.run([*MMW, "check", module], capture_output=True, text=True,
                            env={**_env(), "MMW_SANDBOX": "toy"}, timeout=120)
    assert by_env.returncode == 0, by_env.stderr[-2000:]
    assert "toy" in by_env.stdout + by_env.stderr and "MMW_SANDBOX=toy" in (
        by_env.stdout + by_env.stderr)
    by_flag = _mmw("check", module, "--backend", "toy", "--json")
    assert by_flag.returncode == 0, by_flag.stderr[-2000:]
    report = json.loads(by_flag.stdout)
    assert report["ok"] and report["sandbox"].startswith("toy")
    unknown = _mmw("check", module, "--backend", "nope")
    assert unknown.returncode == 2 and "toy" in unknown.stderr  # the choices name it


def test_a_plugin_solver_simulates_through_mmw_simulate(tmp_path):
    """Explicit Euler on x' = -k x: x_n = x0 (1 - k h)^n exactly, against RK4's exp(-k t)."""
    from mechanistic import LogUniform, Model

    m = Model("decay")
    x = m.state("x")
    k = m.param("k", LogUniform(0.01, 2.0))
    m.flow(x, None, k * x)
    m.init(x=1.0)
    m.observe("y", x)
    model = tmp_path / "decay.json"
    model.write_text(m.to_json())
    params = tmp_path / "params.json"
    params.write_text('{"k": 0.5}')
    frames = {}
    for solver in ("euler", "rk4"):
        out = tmp_path / f"{solver}.csv"
        result = _mmw("simulate", model, "--params", params, "--t", "0:4:1", "--solver", solver,
                      "--dt", 0.1, "--out", out)
        assert result.returncode == 0, result.stderr[-2000:]
        frames[solver] = np.loadtxt(out, delimiter=",", skiprows=1)
    t = frames["euler"][:, 0]
    assert np.allclose(frames["euler"][:, 1], (1 - 0.5 * 0.1) ** (t / 0.1), rtol=1e-9)
    assert np.allclose(frames["rk4"][:, 1], np.exp(-0.5 * t), rtol=1e-6)
    unknown = _mmw("simulate", model, "--params", params, "--t", "0:4:1", "--solver", "nope")
    assert unknown.returncode == 2 and "euler" in unknown.stderr


def test_a_plugin_noise_kind_is_fitted_and_shown_through_mmw_fit_and_show(tmp_path):
    """x = 100 exp(-0.2 t) with Laplace(0, 2) errors: ``mmw fit`` recovers k and b under
    the plugin's density (its log-likelihood is the Laplace one at the fitted values, far
    from the normal one with the same spread), and ``mmw show`` names the distribution.
    The model JSON is written here by hand: importing the plugin in this process would
    register its parts for every later test."""
    from mechanistic import Gaussian, LogUniform, Model

    m = Model("decay")
    x = m.state("x")
    k = m.param("k", LogUniform(0.01, 2.0))
    x0 = m.param("x0", LogUniform(1.0, 1000.0))
    b = m.param("b", LogUniform(0.1, 20.0))
    m.flow(x, None, k * x)
    m.init(x=x0)
    m.observe("x", x, noise=Gaussian(b))
    model = json.loads(m.to_json())
    noise = model["observables"][0]["noise"]
    model["observables"][0]["noise"] = {"kind": "laplace", "b": noise["sigma"]}
    path = tmp_path / "decay.json"
    path.write_text(json.dumps(model))
    t = np.arange(0.0, 40.0)
    y = 100.0 * np.exp(-0.2 * t) + np.random.default_rng(3).laplace(0.0, 2.0, t.size)
    data = tmp_path / "decay.csv"
    data.write_text("t,x\n" + "".join(f"{a},{v}\n" for a, v in zip(t, y, strict=True)))
    result = _mmw("fit", path, data, "--out", tmp_path / "fit", "--starts", 4)
    assert result.returncode == 0, result.stderr[-2000:]
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    p = fit["params"]
    assert abs(p["k"] - 0.2) < 0.01 and 1.0 < p["b"] < 3.5, p
    f = p["x0"] * np.exp(-p["k"] * t)
    laplace = float(np.sum(-np.abs(y - f) / p["b"] - np.log(2 * p["b"])))
    sd = p["b"] * np.sqrt(2.0)
    normal = float(np.sum(-0.5 * ((y - f) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)))
    assert abs(fit["loglik"] - laplace) < 0.1 < abs(fit["loglik"] - normal), (
        fit["loglik"], laplace, normal)
    shown = _mmw("show", path)
    assert shown.returncode == 0 and "Laplace" in shown.stdout, shown.stdout + shown.stderr
    refused = _mmw("show", path, plugins="")
    assert refused.returncode == 2 and "unknown kind 'laplace'" in refused.stderr, (
        refused.stdout + refused.stderr)


def _sgnn_run_folder(root: Path, n: int = 28) -> Path:
    """A finished run with two fitted epidemic candidates (as tests/sgnn builds)."""
    from mechanistic.serialize import model_to_json
    from sgnn.examples import seir, sir

    t = np.arange(n, dtype=float)
    (root / "candidates").mkdir(parents=True)
    (root / "data.csv").write_text("t,cases\n" + "".join(
        f"{a:g},{b:g}\n" for a, b in zip(t, np.round(5 * np.exp(0.12 * t)), strict=True)))
    (root / "task.json").write_text(json.dumps({"description": "toy outbreak", "data":
                                                "data.csv", "train_until": float(n - 7),
                                                "time_column": "t"}))
    nodes = []
    for i, (cid, model) in enumerate((("c-sir", sir()), ("c-seir", seir()))):
        (root / "candidates" / cid).mkdir()
        (root / "candidates" / cid / "model.json").write_text(model_to_json(model))
        params = {p: model.params_[p].prior.typical for p in model.free_param_names}
        (root / "candidates" / cid / "fit.json").write_text(json.dumps({"params": params}))
        nodes.append({"id": cid, "status": "ok", "score": 1.0 + i})
    (root / "tree.json").write_text(json.dumps({"best": "c-sir", "nodes": nodes}))
    return root


def test_a_plugin_sgnn_head_trains_and_predicts_through_mmw_sgnn(tmp_path):
    """The head's module, targets, loss, metric, calibration entry and decoded output each
    reach their file: weights, held-out history, config, diagnostics, prediction; the
    built-in heads are unchanged."""
    from safetensors.numpy import load_file

    run = _sgnn_run_folder(tmp_path / "run")
    result = _mmw("sgnn", "train", run, "--simulations", 256, "--epochs", 2, "--head", "peak",
                  plugins="toy_sgnn_head")
    assert result.returncode == 0, result.stderr[-2000:]
    folder = run / "sgnn"
    config = json.loads((folder / "config.json").read_text())
    assert config["sgnn"]["heads"] == {"forecast": 1.0, "params": 1.0, "structure": 1.0,
                                       "peak": 0.5}
    weights = load_file(folder / "weights.safetensors")
    assert weights["peak_head.weight"].shape == (1, config["sgnn"]["d_model"])
    assert "structure_head.weight" in weights and "param_head.linear.weight" in weights
    history = json.loads((folder / "train.json").read_text())["history"]
    last = history[-1]
    assert len(history) == 2 and {"val_total", "val_forecast", "val_params", "val_structure",
                                  "val_accuracy", "val_peak", "val_peak_abs_error"} <= set(last)
    assert np.isfinite(last["val_peak"]) and last["val_peak_abs_error"] >= 0
    total = (last["val_forecast"] + last["val_params"] + last["val_structure"]
             + 0.5 * last["val_peak"])
    assert last["val_total"] == pytest.approx(total, rel=1e-5)  # every head, weighted
    diagnostics = json.loads((folder / "diagnostics.json").read_text())
    assert diagnostics["peak_rmse_slog"] >= 0          # the head's own calibration entry
    assert {"forecast_coverage_90", "param_coverage_90", "structure_accuracy"} <= set(
        diagnostics)
    predicted = _mmw("sgnn", "predict", run, "--data", run / "data.csv",
                     plugins="toy_sgnn_head")
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert "peak: {" in predicted.stdout
    prediction = json.loads((folder / "prediction.json").read_text())
    assert prediction["heads"]["peak"]["observable"] == "cases"
    assert prediction["heads"]["peak"]["peak"] > 0
    assert set(prediction["structures"]) == {"c-sir", "c-seir"} and prediction["forecast"]
    # Without the plugin the head's name is one clear error, from training and reading.
    for args in (("train", run, "--head", "peak"), ("predict", run, "--data",
                                                      run / "data.csv")):
        refused = _mmw("sgnn", *args, plugins="")
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0 and "unknown SGNN head 'peak'" in said, said
        assert "Traceback" not in said


def test_a_missing_plugin_is_one_clear_error(tmp_path):
    env = {**_env(), "MMW_PLUGINS": "no_such_mmw_plugin"}
    result = subprocess.run([*MMW, "bench", "list"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert "no_such_mmw_plugin" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["os;rm", "a..b"])
def test_a_plugin_name_must_be_a_module_name(value, monkeypatch):
    from mechanistic.plugins import PluginError, load_plugins

    monkeypatch.setenv("MMW_PLUGINS", value)
    with pytest.raises(PluginError, match="not a module name"):
        load_plugins()
