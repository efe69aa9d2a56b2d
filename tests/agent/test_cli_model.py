"""``mmw model`` end to end: a real OpenAI-protocol server on loopback, driven through
langchain's OpenAI client; then ``mmw predict`` and ``mmw counterfactual`` on the run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from decay_models import DECAY_SOURCE as DECAY
from typer.testing import CliRunner

from agent.openai_stub import serve_openai_stub
from workbench.cli import app


def write_data(path) -> None:
    t = np.arange(0.0, 30.0)
    rng = np.random.default_rng(3)
    y = 100.0 * np.exp(-0.2 * t) * np.exp(rng.normal(0.0, 0.05, t.size))
    pd.DataFrame({"day": t, "x": y}).to_csv(path, index=False)


def test_mmw_model_over_the_openai_protocol(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = tmp_path / "data.csv"
    write_data(data)
    run = tmp_path / "run"
    answers = [f"```python\n{DECAY}```", "no refinement today"]
    with serve_openai_stub(answers, when_exhausted="nothing more") as (url, server):
        result = CliRunner().invoke(app, [
            "model", "--data", str(data), "--describe", "a tracer washes out of a tank",
            "--train-until", "20", "--agent", "llm", "--llm", "test-model", "--base-url", url,
            "--initial", "1", "--max-nodes", "2", "--out", str(run)])
        assert result.exit_code == 0, result.output
        body = server.requests[0]["body"]
        assert body["model"] == "test-model"
        assert [m["role"] for m in body["messages"]][:2] == ["system", "user"]
        served_prompt, served_completion = server.prompt_tokens, server.completion_tokens
    for name in ("task.json", "data.csv", "trajectory.jsonl", "tree.json"):
        assert (run / name).is_file(), name
    tree = json.loads((run / "tree.json").read_text())
    best = tree["best"]
    folder = run / "candidates" / best
    for name in ("simulator.py", "model.json", "checks.json", "fit.json", "fit.png"):
        assert (folder / name).is_file(), name
    events = [json.loads(line) for line in (run / "trajectory.jsonl").read_text().splitlines()]
    calls = [e for e in events if e["kind"] == "llm_call"]
    assert sum(e["prompt_tokens"] for e in calls) == served_prompt > 0
    assert sum(e["completion_tokens"] for e in calls) == served_completion > 0
    assert tree["usage"]["tokens"] == served_prompt + served_completion
    assert any(e["kind"] == "sandbox_run" for e in events)
    fit = json.loads((folder / "fit.json").read_text())
    assert abs(fit["params"]["k"] - 0.2) < 0.02

    forecast = tmp_path / "forecast.csv"
    result = CliRunner().invoke(app, ["predict", str(run), "--until", "40",
                                      "--out", str(forecast), "--draws", "100"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(forecast)
    assert frame["t"].iloc[-1] == 40
    # The forecast at t=35 brackets the true mean 100 exp(-0.2 * 35).
    row = frame[frame["t"] == 35].iloc[0]
    truth = 100.0 * np.exp(-0.2 * 35)
    assert row["x_obs_q0.05"] < truth < row["x_obs_q0.95"]

    intervention = tmp_path / "dose.json"
    intervention.write_text(json.dumps([{"kind": "dose", "state": "x", "amount": 50,
                                         "times": [25]}]))
    out = tmp_path / "cf.csv"
    result = CliRunner().invoke(app, ["counterfactual", str(run), "--intervention",
                                      str(intervention), "--t", "0:40:1", "--out", str(out),
                                      "--draws", "50"])
    assert result.exit_code == 0, result.output
    cf = pd.read_csv(out)
    at = cf[cf["t"] == 30].iloc[0]
    k = fit["params"]["k"]
    # The dose adds 50 exp(-k (30 - 25)) at t=30 on top of the baseline, exactly.
    added = at["intervened_x"] - at["baseline_x"]
    assert abs(added - 50 * np.exp(-k * 5)) < 1e-3 * 50


def test_mmw_model_reports_bad_input_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["model", "--describe", "x", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--data" in result.output
    data = tmp_path / "d.csv"
    write_data(data)
    result = CliRunner().invoke(app, ["model", "--data", str(data), "--out",
                                      str(tmp_path / "r")])
    assert result.exit_code == 2 and "describe" in result.output
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "nothing"), "--until", "3"])
    assert result.exit_code == 2 and "not a run folder" in result.output
