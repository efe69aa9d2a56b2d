"""Known inputs: schedules from data columns, proposed inputs, and a run that uses one.

The truth here is analytic: a tank with a known inflow ``u(t)`` and first-order outflow,
``dx/dt = u - k x``, whose solution on each constant piece of ``u`` is
``x(t) = u/k + (x(a) - u/k) exp(-k (t - a))``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from agent.core import Task
from agent.openai_stub import serve_openai_stub
from agent.store import RunStore
from mechanistic import Fixed, Gaussian, Model
from mechanistic.data import ObservedData
from mechanistic.errors import DataError
from mechanistic.inputs import InputSeries, detect_inputs, parse_inputs_option, split_inputs
from mechanistic.simulate import RK4, compile_model
from workbench.cli import app

TANK = """\
from mechanistic import LogNormalNoise, LogUniform, Model

m = Model("tank with a pump", time_unit="day")
x = m.state("x")
pump = m.control("pump", default=0.0, doc="inflow set by the pump")
k = m.param("k", LogUniform(0.01, 2.0), doc="outflow rate")
x0 = m.param("x0", LogUniform(0.1, 100.0))
s = m.param("s", LogUniform(0.01, 1.0))
m.flow(None, x, pump, name="inflow")
m.flow(x, None, k * x, name="outflow")
m.init(x=x0)
m.observe("level", x, noise=LogNormalNoise(s))
"""

K, X0 = 0.3, 2.0


def pump_levels(t: np.ndarray) -> np.ndarray:
    return np.where(t < 10, 3.0, np.where(t < 25, 6.0, 1.5))


def tank_exact(t: np.ndarray, u_of_t, k: float = K, x0: float = X0) -> np.ndarray:
    """Piecewise-analytic solution, stepping over the pieces of a piecewise-constant u."""
    out, x, a = np.empty_like(t), x0, 0.0
    for i, ti in enumerate(t):
        while a < ti:
            b = min(ti, math.floor(a) + 1.0)  # pieces change only at integer days here
            u = float(u_of_t(np.array([a + 1e-9]))[0])
            x = u / k + (x - u / k) * math.exp(-k * (b - a))
            a = b
        out[i] = x
    return out


def test_previous_schedule_holds_each_level_and_compresses_runs():
    t = np.arange(0.0, 8.0)
    s = InputSeries("u", t, [1, 1, 1, 4, 4, 2, 2, 2]).schedule()
    assert s.times == (-math.inf, 3.0, 5.0) and s.values == (1.0, 4.0, 2.0)
    series = InputSeries("u", t, [1, 1, 1, 4, 4, 2, 2, 2])
    assert list(series.value_at([0.5, 3.0, 4.99, 7.5, 100.0])) == [1, 4, 4, 2, 2]


def test_linear_schedule_integrates_a_ramp_exactly():
    """Midpoint values of a linear input integrate it exactly (midpoint rule), so
    x' = u with u = 2 t gives x = t^2 at every sampling time."""
    t = np.arange(0.0, 6.0)
    series = InputSeries("u", t, 2 * t, interpolation="linear")
    m = Model("integrator")
    x = m.state("x")
    u = m.control("u")
    m.rate(x, u)
    m.init(x=0)
    m.observe("x_obs", x, noise=Gaussian(m.param("s", Fixed(1.0))))
    sim = compile_model(m).simulate({"s": torch.tensor([1.0])}, t, solver=RK4(dt=0.05),
                                    controls={"u": series.schedule()}, t0=0.0)
    np.testing.assert_allclose(sim.state("x")[0].numpy(), t ** 2, rtol=1e-9, atol=1e-9)


def test_detect_inputs_finds_set_points_not_measurements():
    t = np.arange(0.0, 40.0)
    rng = np.random.default_rng(0)
    data = ObservedData(t, {"level": 5 + rng.normal(0, 1, t.size), "pump": pump_levels(t),
                            "temperature": 30 + 0.01 * rng.normal(0, 1, t.size)})
    found = detect_inputs(data, "a tank; the temperature is set by a thermostat")
    assert set(found) == {"pump", "temperature"}
    assert "piecewise constant" in found["pump"] and "named" in found["temperature"]
    assert detect_inputs(data, "a tank") == {"pump": found["pump"]}


def test_bad_inputs_are_one_clear_error():
    t = np.arange(0.0, 5.0)
    data = ObservedData(t, {"level": t + 1, "pump": [1, 1, np.nan, 2, 2]})
    with pytest.raises(DataError, match="does not have"):
        split_inputs(data, {"flow": "previous"})
    with pytest.raises(DataError, match="missing value at row 4"):
        split_inputs(data, {"pump": "previous"})
    with pytest.raises(DataError, match="every column is an input"):
        split_inputs(ObservedData(t, {"pump": t}), {"pump": "previous"})
    with pytest.raises(DataError, match="interpolation"):
        parse_inputs_option("pump:cubic")
    assert parse_inputs_option("none") == {}
    assert parse_inputs_option("a, b:linear") == {"a": "previous", "b": "linear"}


def test_run_folder_carries_inputs(tmp_path):
    t = np.arange(0.0, 10.0)
    data, inputs = split_inputs(ObservedData(t, {"level": t + 1, "pump": pump_levels(t)}),
                                {"pump": "linear"})
    store = RunStore(tmp_path / "run")
    store.write_task(Task("a tank", data, 6.0, inputs=inputs), {"agent": "library"})
    task, _ = store.read_task()
    assert task.data.columns == ["level"] and task.input_names == ["pump"]
    assert task.inputs[0].interpolation == "linear"
    np.testing.assert_array_equal(task.inputs[0].values, pump_levels(t))


def write_tank(path, seed: int = 4) -> None:
    t = np.arange(0.0, 41.0)
    rng = np.random.default_rng(seed)
    level = tank_exact(t, pump_levels) * np.exp(rng.normal(0.0, 0.03, t.size))
    pd.DataFrame({"day": t, "level": level, "pump": pump_levels(t)}).to_csv(path, index=False)


def test_a_search_uses_a_proposed_input_and_answers_a_change_of_it(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = tmp_path / "tank.csv"
    write_tank(data)
    run = tmp_path / "run"
    with serve_openai_stub([f"```python\n{TANK}```"], when_exhausted="nothing more") as (url, _):
        result = CliRunner().invoke(app, [
            "model", "--data", str(data), "--describe", "a tank filled by a pump",
            "--train-until", "25", "--validate-until", "32", "--agent", "llm", "--llm", "m",
            "--base-url", url, "--initial", "1", "--max-nodes", "2", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "treating column 'pump' as a known input" in result.output
    assert "verdict: adequate" in result.output
    meta = json.loads((run / "task.json").read_text())
    assert meta["inputs"] == [{"name": "pump", "interpolation": "previous", "doc": ""}]
    tree = json.loads((run / "tree.json").read_text())
    assert tree["verdict"]["adequate"] is True
    fit = json.loads((run / "candidates" / tree["best"] / "fit.json").read_text())
    assert fit["params"]["k"] == pytest.approx(K, rel=0.1)
    assert "pump" not in fit["train_residuals"]  # an input is never fitted as an observable

    # What if the pump had run at 8 from day 30? Exact answer at the fitted values.
    cf = tmp_path / "pump.json"
    cf.write_text(json.dumps([{"kind": "set", "target": "pump", "value": 8.0, "start": 30}]))
    out = tmp_path / "cf.csv"
    result = CliRunner().invoke(app, ["counterfactual", str(run), "--intervention", str(cf),
                                      "--t", "0:40:1", "--out", str(out), "--draws", "5"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    p = fit["params"]

    def changed(tt):
        return np.where(tt >= 30, 8.0, pump_levels(tt))

    t = np.arange(0.0, 41.0)
    expect = tank_exact(t, changed, p["k"], p["x0"])
    np.testing.assert_allclose(frame["intervened_level"].to_numpy(), expect, rtol=0.02)
    assert not np.allclose(frame["baseline_level"].to_numpy()[31:], expect[31:], rtol=0.1)


@pytest.mark.parametrize("inputs", [5, "pump", [{"name": ["pump"]}],
                                    [{"name": "pump", "interpolation": "cubic"}],
                                    [{"name": "pump", "doc": {"x": 1}}],
                                    [{"name": "nosuch"}], [{"name": "pump"}] * 65])
def test_a_hostile_task_json_inputs_entry_is_one_clear_error(tmp_path, inputs):
    """task.json is untrusted: a malformed 'inputs' entry ends `mmw predict` with one
    error line (exit 2), never a traceback."""
    t = np.arange(0.0, 10.0)
    data, series = split_inputs(ObservedData(t, {"level": t + 1, "pump": pump_levels(t)}),
                                {"pump": "previous"})
    run = tmp_path / "run"
    RunStore(run).write_task(Task("a tank", data, 6.0, inputs=series), {"agent": "library"})
    meta = json.loads((run / "task.json").read_text())
    meta["inputs"] = inputs
    (run / "task.json").write_text(json.dumps(meta))
    (run / "tree.json").write_text(json.dumps({"best": None, "nodes": []}))
    result = CliRunner().invoke(app, ["predict", str(run), "--until", "12"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert "input" in result.output.lower(), result.output  # the inputs entry, not the tree
