"""A part registered from outside the package is used through the CLI and the bench runner.

The plugin module lives in this folder, not in an mmw package, and is named only in
``MMW_PLUGINS``: ``mmw model --agent toy`` must search with its proposer, ``mmw bench run
--agents persistence`` must score its agent in a spawned job process, and ``mmw check``
must run a module in its sandbox backend when ``--backend toy`` or ``MMW_SANDBOX=toy``
names it, and ``mmw simulate --solver euler`` must integrate with its solver.
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


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "MMW_PLUGINS": "toy_mmw_plugin", "PYTHONPATH": path}


def _mmw(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*MMW, *map(str, args)],
                          capture_output=True, text=True, env=_env(), timeout=timeout)


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
