"""SGNN counterfactuals: posterior draws simulated with and without an intervention."""

from __future__ import annotations

import numpy as np
import pytest

from mechanistic.data import ObservedData
from mechanistic.errors import ModelError
from mechanistic.interventions import interventions_from_json
from sgnn.corpus import Corpus, CorpusConfig
from sgnn.counterfactual import counterfactual, sample_quantile_function
from sgnn.examples import seir, sir
from sgnn.train import TrainConfig, load_checkpoint, network_config, train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sgnn_cf")
    corpus = Corpus([sir(), seir()], CorpusConfig(n_context=21, min_context=10, horizon=7))
    train(corpus, folder, TrainConfig(simulations=512, epochs=1, batch_size=128, held_out=64),
          network_config(corpus, d_model=16, n_heads=2, n_layers=1))
    return load_checkpoint(folder)


def _data(n: int = 21, start: float = 10.0) -> ObservedData:
    return ObservedData(start + np.arange(n, dtype=float),
                        {"cases": np.round(5 * np.exp(0.1 * np.arange(n)))})


def test_quantile_function_draws_have_the_given_quantiles() -> None:
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    values = np.array([[-2.0, -0.5, 0.0, 1.0, 4.0]])
    x = sample_quantile_function(levels, values, np.random.default_rng(0), 200_000)[:, 0]
    np.testing.assert_allclose(np.quantile(x, levels), values[0], atol=0.03)
    assert x.min() < -2.0 and x.max() > 4.0                  # tails beyond the outer ones


def test_stopping_transmission_lowers_cases_only_after_it_starts(checkpoint) -> None:
    items = interventions_from_json([{"kind": "set", "target": "beta", "value": 0.0,
                                      "start": 31}])
    cf = counterfactual(checkpoint, _data(), items, draws=64, seed=1)
    assert cf.t[0] == 10.0 and cf.t[-1] == 37.0 and cf.n_draws == 64
    before, after = cf.t < 31, cf.t >= 33
    np.testing.assert_allclose(cf.effect["cases"][before], 0.0, atol=1e-9)
    assert (cf.effect["cases"][after][:, -1] <= 1e-9).all()   # even the 95% quantile
    assert (cf.intervened["cases"][after] <= cf.baseline["cases"][after] + 1e-9).all()
    assert sum(cf.structures.values()) == 64
    again = counterfactual(checkpoint, _data(), items, draws=64, seed=1)
    np.testing.assert_array_equal(again.baseline["cases"], cf.baseline["cases"])
    table = cf.frame()
    assert {"t", "baseline_cases_q0.5", "intervened_cases_q0.95", "effect_cases_q0.05"} <= set(
        table.columns) and len(table) == len(cf.t)


def test_structures_without_the_target_are_left_out_with_a_note(checkpoint) -> None:
    items = interventions_from_json([{"kind": "scale", "target": "sigma", "factor": 0.5,
                                      "start": 25}])
    cf = counterfactual(checkpoint, _data(), items, draws=16)
    assert cf.structures == {"SEIR": 16}
    assert any("'SIR' left out" in n for n in cf.notes)
    bad = interventions_from_json([{"kind": "set", "target": "nope", "value": 1.0}])
    with pytest.raises(ModelError, match="no structure"):
        counterfactual(checkpoint, _data(), bad)
    with pytest.raises(ValueError, match="draws"):
        counterfactual(checkpoint, _data(), items, draws=0)


def test_a_longer_series_starts_at_the_context_window(checkpoint) -> None:
    cf = counterfactual(checkpoint, _data(n=40, start=0.0), [], draws=8, horizon=3)
    assert cf.t[0] == 40 - 21 and cf.t[-1] == 39 + 3
    assert any("last 21" in n for n in cf.notes)


def test_each_draw_finds_the_clock_shift_the_data_came_from(checkpoint) -> None:
    """Data made by a known draw, seen 2 steps after seeding, on a clock starting at 100:
    the draw's simulation lands back on the data exactly."""
    import torch

    from mechanistic.simulate import RK4, compile_model
    from sgnn.counterfactual import _simulate_structure
    from sgnn.predict import prepare

    corpus = checkpoint.corpus
    truth = {"beta": 0.9, "gamma": 0.2, "rho": 0.5, "phi": 50.0}
    u = np.array([[float(tr.inverse(np.array([truth[n]]))[0]) for n, tr in
                   zip(corpus.param_names[0], corpus.transforms[0], strict=True)]])
    sim = compile_model(corpus.models[0], dtype=torch.float64).simulate(
        {k: torch.tensor([v]) for k, v in truth.items()}, np.arange(40.0), solver=RK4(0.5))
    cases = sim.observables[0, 2:2 + 21, 0].numpy()
    data = ObservedData(100.0 + np.arange(21), {"cases": cases})
    context, mask, last, _ = prepare(checkpoint, data)
    t_out = 100.0 + np.arange(21 + 5)
    base, what = _simulate_structure(checkpoint, 0, u, context, mask, last, t_out, [])
    np.testing.assert_allclose(base[0, :21, 0], cases, rtol=1e-3)
    np.testing.assert_allclose(base[0, 21:, 0], sim.observables[0, 23:28, 0].numpy(), rtol=1e-3)
    np.testing.assert_allclose(what, base)
