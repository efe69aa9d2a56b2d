"""Fixture runs for the review tests, made by the real ``mmw model`` over a loopback
OpenAI stub (as tests/agent/test_cli_model.py does): the folders have exactly the layout
the agent writes, including a candidate whose name, model name, code and error message
carry script and HTML injection, and a repair of it (so there is a diff to show).

Building a run fits models, so it happens once per session; tests that write
``review.json`` work on a copy.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from decay_models import DECAY_SOURCE as DECAY
from review_helpers import IMG, SCRIPT

# Runs, declares a model, then fails: the error message carries the injection too.
EVIL_BROKEN = f"""\
# structure: evil {SCRIPT} {IMG}
from mechanistic import LogNormalNoise, LogUniform, Model

m = Model("evil {IMG}", time_unit="day")
x = m.state("x")
k = m.param("k", LogUniform(0.01, 2.0), doc="loss {SCRIPT}")
x0 = m.param("x0", LogUniform(1.0, 1000.0))
s = m.param("s", LogUniform(0.01, 1.0))
m.flow(x, None, k * x, name="loss")
m.init(x=x0)
m.observe("x", x, noise=LogNormalNoise(s))
raise RuntimeError("broken {SCRIPT} {IMG}")
"""

EVIL_FIXED = EVIL_BROKEN.replace(f'raise RuntimeError("broken {SCRIPT} {IMG}")\n',
                                 f'# fixed: no more raising {IMG}\n')


def _answer(body: dict[str, Any]) -> str:
    """Propose both modules; repair the broken one; decline anything else."""
    prompt = "\n".join(str(m.get("content", "")) for m in body["messages"])
    if "raise RuntimeError" in prompt:
        return f"```python\n{EVIL_FIXED}```"
    if "first-order decay" not in prompt and "evil" not in prompt:
        return f"```python\n{DECAY}```\n\n```python\n{EVIL_BROKEN}```"
    return "no refinement today"


def _write_data(path: Path) -> None:
    t = np.arange(0.0, 30.0)
    rng = np.random.default_rng(3)
    y = 100.0 * np.exp(-0.2 * t) * np.exp(rng.normal(0.0, 0.05, t.size))
    pd.DataFrame({"day": t, "x": y}).to_csv(path, index=False)


def _add_extras(run: Path) -> None:
    """A counterfactual and an SGNN folder, in the formats those steps write."""
    cf = run / "counterfactuals" / "dose-at-25"
    cf.mkdir(parents=True)
    (cf / "interventions.json").write_text(json.dumps({
        "question": f"what if we dose at day 25? {IMG}",
        "interventions": [{"kind": "dose", "state": "x", "amount": 50, "times": [25]}]}))
    t = np.arange(0.0, 40.0)
    base = 100.0 * np.exp(-0.2 * t)
    dosed = base + np.where(t >= 25, 50.0 * np.exp(-0.2 * (t - 25)), 0.0)
    frame = {"t": t}
    for side, y in (("baseline", base), ("intervened", dosed)):
        frame[f"{side}_x"] = y
        frame[f"{side}_x_q0.05"], frame[f"{side}_x_q0.95"] = 0.8 * y, 1.2 * y
    pd.DataFrame(frame).to_csv(cf / "counterfactual.csv", index=False)
    sgnn = run / "sgnn"
    sgnn.mkdir()
    (sgnn / "metrics.json").write_text(json.dumps({"coverage_90": 0.88, "note": SCRIPT}))


@pytest.fixture(scope="session")
def built_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder (do not modify: copy it with ``run_copy``)."""
    from typer.testing import CliRunner

    import agent.loop
    from agent.loop import SearchConfig
    from agent.openai_stub import serve_openai_stub
    from mechanistic.fit import FitConfig
    from workbench.cli import app

    base = tmp_path_factory.mktemp("review-run")
    data = base / "data.csv"
    _write_data(data)
    run = base / "runs" / "decay-run"
    # Review does not care how good the fits are: one short start per model keeps the
    # session fixture to a few seconds.
    quick = functools.partial(SearchConfig, fit=FitConfig(
        starts=1, adam_steps=25, lbfgs_steps=5, polish_starts=1, neural_steps=10))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "test-key")
        mp.setattr(agent.loop, "SearchConfig", quick)
        with serve_openai_stub([_answer] * 12, when_exhausted="nothing more") as (url, _):
            result = CliRunner().invoke(app, [
                "model", "--data", str(data), "--describe",
                f"a tracer washes out of a tank {SCRIPT}", "--train-until", "20",
                "--agent", "llm", "--llm", "test-model", "--base-url", url,
                "--initial", "2", "--max-nodes", "3", "--out", str(run)])
    assert result.exit_code == 0, result.output
    _add_extras(run)
    return run


@pytest.fixture
def run_copy(built_run: Path, tmp_path: Path) -> Path:
    """A private copy of the fixture run, inside a runs folder of its own."""
    target = tmp_path / "runs" / built_run.name
    shutil.copytree(built_run, target)
    return target


@pytest.fixture
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$MMW_ARTIFACTS/review`` when set (CI keeps them), else a
    temporary folder."""
    root = os.environ.get("MMW_ARTIFACTS")
    path = Path(root) / "review" if root else tmp_path_factory.mktemp("review-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
