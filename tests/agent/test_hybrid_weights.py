"""A hybrid candidate's network weights leave and re-enter the run folder as data.

The weights are a safetensors file: tensors and a bounded header, nothing unpickled. The
fitted hybrid rebuilt from the folder must simulate exactly what the fit produced, and a
weights file that is a pickle, of the wrong shapes, or a link out of the run is refused
with one clear error.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from agent.core import Candidate, Task
from agent.evaluate import evaluate_candidate
from agent.fitted import load_fitted
from agent.store import WEIGHTS_FILE, RunStore
from mechanistic.data import ObservedData
from mechanistic.errors import UntrustedDataError
from mechanistic.fit import FitConfig
from sandbox.auto import open_sandbox

HYBRID = """\
# structure: decay with a learned loss
from mechanistic import LogNormalNoise, LogUniform, Model, exp

m = Model("hybrid decay")
x = m.state("x")
k = m.param("k", LogUniform(0.01, 2.0))
s = m.param("s", LogUniform(0.01, 1.0))
m.flow(x, None, k * x * exp(m.neural("g", inputs=[x / 100], hidden=(4,))), name="loss")
m.init(x=100.0)
m.observe("x", x, noise=LogNormalNoise(s))
"""


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    t = np.arange(0.0, 20.0)
    rng = np.random.default_rng(3)
    y = 100.0 * np.exp(-0.2 * t) * np.exp(rng.normal(0.0, 0.05, t.size))
    task = Task("decay", ObservedData(t, {"x": y}), train_until=15.0)
    box = open_sandbox()
    try:
        node = evaluate_candidate(task, Candidate("c1", HYBRID, "decay with a learned loss"),
                                  sandbox=box, fit_config=FitConfig(
                                      starts=1, adam_steps=20, lbfgs_steps=5, polish_starts=1,
                                      neural_steps=20))
    finally:
        box.close()
    assert node.ok and node.fit_result is not None and node.fit_result.neural_state
    root = tmp_path_factory.mktemp("hybrid") / "run"
    store = RunStore(root)
    store.write_task(task, {})
    store.save_node(node)
    store.save_tree([node], {})
    return root, node


def test_the_rebuilt_hybrid_has_the_fitted_weights_and_forecasts(run_folder):
    root, node = run_folder
    fitted = load_fitted(root)
    loaded = fitted.compiled.neural.state_dict()
    assert set(loaded) == set(node.fit_result.neural_state)
    for name, value in node.fit_result.neural_state.items():
        assert torch.equal(loaded[name], value), name
    t = np.linspace(0.0, 20.0, 21)
    theirs = node.fit_result.simulate(t).observable("x").reshape(-1)
    bands = fitted.bands(t, [], draws=20, seed=0)
    best = torch.as_tensor(np.asarray(bands.best["x"]), dtype=theirs.dtype).reshape(-1)
    assert torch.allclose(best, theirs, rtol=1e-5)  # the best-fit line is the fit itself


@pytest.mark.hostile
@pytest.mark.parametrize("attack", ["pickle", "shapes", "garbage", "link", "missing"])
def test_a_bad_weights_file_is_one_clear_error(run_folder, tmp_path, attack):
    root, _ = run_folder
    copy = tmp_path / "run"
    shutil.copytree(root, copy)
    weights = copy / "candidates" / "c1" / WEIGHTS_FILE
    weights.unlink()
    if attack == "pickle":
        torch.save({"g.0.weight": torch.zeros(4, 1)}, weights)
    elif attack == "shapes":
        from safetensors.torch import save_file

        save_file({"nonsense": torch.zeros(3)}, str(weights))
    elif attack == "garbage":
        weights.write_bytes(b"\xff" * 64)
    elif attack == "link":
        weights.symlink_to("/etc/passwd")
    with pytest.raises((UntrustedDataError, ValueError)) as info:
        load_fitted(copy)
    assert WEIGHTS_FILE in str(info.value)
