"""The adequacy verdict: the best candidate against persistence and a straight-line trend on
the validation window, computed by hand here; and a run on data nothing explains says so,
in the terminal, in tree.json and at the top of the review page."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from agent.core import Task
from agent.openai_stub import serve_openai_stub
from agent.verdict import Verdict, judge
from mechanistic.data import ObservedData
from workbench.cli import app

DECAY = """\
from mechanistic import Gaussian, LogUniform, Model

m = Model("decay", time_unit="day")
x = m.state("x")
k = m.param("k", LogUniform(0.01, 2.0))
x0 = m.param("x0", LogUniform(0.1, 100.0))
s = m.param("s", LogUniform(0.01, 10.0))
m.flow(x, None, k * x, name="loss")
m.init(x=x0)
m.observe("y", x, noise=Gaussian(s))
"""


def _node(rmse: float) -> SimpleNamespace:
    return SimpleNamespace(id="n1", candidate=SimpleNamespace(structure="test"),
                           fit={"validation_residuals": {"y": {"rmse": rmse}}})


def test_baselines_by_hand():
    """y = t on t = 0..9; train to 5, validate 6..7. Persistence predicts 5: errors 1, 2,
    MSE 2.5; the trend through the last 4 training points is exact: MSE 0. The spread is
    the std of y over the rows the agent saw (0..7)."""
    t = np.arange(10.0)
    task = Task("a quantity that grows steadily", ObservedData(t, {"y": t.copy()}), 5.0, 7.0)
    scale = float(np.std(t[:8]))
    good = judge(task, _node(0.0))
    assert good.baselines["persistence"] == pytest_approx(math.sqrt(2.5) / scale)
    assert good.baselines["trend"] == pytest_approx(0.0)
    noisy = t + np.where(np.arange(10) % 2 == 0, 0.5, -0.5)
    task = Task("a quantity that grows", ObservedData(t, {"y": noisy}), 5.0, 7.0)
    better = judge(task, _node(0.01))
    assert better.adequate is True and better.best_error < min(better.baselines.values())
    worse = judge(task, _node(10.0))
    assert worse.adequate is False and "persistence" in worse.message
    assert "not adequate" in worse.line() and worse.advice
    assert Verdict.from_dict(worse.to_dict()) == worse
    assert Verdict.from_dict(["not", "a", "verdict"]) is None


def test_no_validation_window_is_not_judged():
    t = np.arange(10.0)
    task = Task("a quantity", ObservedData(t, {"y": t.copy()}), 9.0)
    assert judge(task, _node(0.1)).adequate is None
    assert judge(task, None).adequate is False


def pytest_approx(x: float):  # a local alias keeps the arithmetic above readable
    import pytest

    return pytest.approx(x, rel=1e-9, abs=1e-12)


def test_a_run_no_candidate_explains_says_not_adequate(tmp_path, monkeypatch):
    """A decay model on an oscillation: the search finds a 'best', the verdict refuses it."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    t = np.arange(0.0, 60.0)
    rng = np.random.default_rng(0)
    y = 10 + 5 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.3, t.size)
    data = tmp_path / "data.csv"
    pd.DataFrame({"day": t, "y": y}).to_csv(data, index=False)
    run = tmp_path / "run"
    with serve_openai_stub([f"```python\n{DECAY}```"], when_exhausted="nothing more") as (url, _):
        result = CliRunner().invoke(app, [
            "model", "--data", str(data), "--describe", "a level that goes up and down",
            "--train-until", "40", "--validate-until", "50", "--agent", "llm", "--llm", "m",
            "--base-url", url, "--initial", "1", "--max-nodes", "1", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "verdict: not adequate" in result.output
    assert "no adequate structure was found" in result.output
    tree = json.loads((run / "tree.json").read_text())
    assert tree["verdict"]["adequate"] is False
    report = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["review", str(run), "--html", str(report)])
    assert result.exit_code == 0, result.output
    html = report.read_text()
    assert "Verdict: not adequate" in html
    assert html.index('id="verdict"') < html.index('id="task"')
    result = CliRunner().invoke(app, ["predict", str(run), "--until", "70"])
    assert result.exit_code == 0, result.output
    assert "warning: verdict: not adequate" in result.output
