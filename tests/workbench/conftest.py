"""Small models and data written to real files, for driving ``mmw`` through typer's runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mechanistic import Gaussian, LogUniform, Model

DECAY_MODULE = '''\
from mechanistic import Gaussian, LogUniform, Model

decay = Model("decay", time_unit="day")
x = decay.state("x")
k = decay.param("k", LogUniform(0.01, 10.0), doc="decay rate")
sigma = decay.param("sigma", LogUniform(0.01, 1.0), doc="measurement noise")
decay.rate(x, -k * x)
decay.init(x=10)
decay.observe("y", x, noise=Gaussian(sigma))
'''


def decay_model() -> Model:
    """dx/dt = -k x, x(0) = 10, y ~ Normal(x, sigma): x(t) = 10 exp(-k t) exactly."""
    m = Model("decay", time_unit="day")
    x = m.state("x")
    k = m.param("k", LogUniform(0.01, 10.0), doc="decay rate")
    sigma = m.param("sigma", LogUniform(0.01, 1.0), doc="measurement noise")
    m.rate(x, -k * x)
    m.init(x=10)
    m.observe("y", x, noise=Gaussian(sigma))
    return m


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner) -> Callable[..., object]:
    """Run ``mmw ARGS`` (paths stringified) and return typer's Result."""
    from workbench.cli import app

    def run(*args: object) -> object:
        return runner.invoke(app, [str(a) for a in args])

    return run


@pytest.fixture
def model_json(tmp_path: Path) -> Path:
    path = tmp_path / "decay.json"
    path.write_text(decay_model().to_json())
    return path


@pytest.fixture
def model_module(tmp_path: Path) -> Path:
    path = tmp_path / "decay.py"
    path.write_text(DECAY_MODULE)
    return path


@pytest.fixture
def params_json(tmp_path: Path) -> Path:
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"k": 0.3, "sigma": 0.1}))
    return path


@pytest.fixture
def decay_csv(tmp_path: Path) -> Path:
    """Noisy observations of x(t) = 10 exp(-0.3 t) on days 0..20."""
    rng = np.random.default_rng(1)
    t = np.arange(0, 21, 1.0)
    y = 10 * np.exp(-0.3 * t) + rng.normal(0, 0.1, t.size)
    path = tmp_path / "decay.csv"
    lines = ["day,y", *(f"{a:g},{b:.6f}" for a, b in zip(t, y, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path
