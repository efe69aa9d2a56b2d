"""Diagnostics: calibration report shape, and the batched ML fits find the truth."""

from __future__ import annotations

import numpy as np
import torch

from mechanistic.observation import ObservationModel
from mechanistic.simulate import RK4, compile_model
from sgnn.corpus import Corpus, CorpusConfig
from sgnn.diagnostics import batched_mle, calibration, compare_with_mle
from sgnn.examples import seir, sir
from sgnn.train import TrainConfig, load_checkpoint, network_config, train


def test_batched_mle_recovers_growth_and_prefers_the_true_structure() -> None:
    model = sir()
    truth = {"beta": 0.6, "gamma": 0.2, "rho": 0.5, "phi": 50.0}
    times = np.arange(40.0)
    sim = compile_model(model).simulate({k: torch.tensor([v]) for k, v in truth.items()},
                                        times, solver=RK4(0.5), t0=0.0)
    y = ObservationModel(model).sample(sim.observables.repeat(3, 1, 1),
                                       {k: torch.tensor([v] * 3) for k, v in truth.items()},
                                       np.random.default_rng(0))
    fit = batched_mle(model, times, y, starts=4, steps=200)
    assert fit.agreeing is not None and ((fit.agreeing >= 1) & (fit.agreeing <= 4)).all()
    screened = batched_mle(model, times, y, starts=2, steps=5, screen=6, screen_steps=5)
    assert screened.params.shape == fit.params.shape and np.isfinite(screened.aic).all()
    assert ((screened.agreeing >= 1) & (screened.agreeing <= 2)).all()
    growth = fit.params[:, 0] - fit.params[:, 1]   # beta - gamma is what early data pin down
    assert np.all(np.abs(growth - 0.4) < 0.05), fit.params
    other = batched_mle(seir(), times, y, starts=4, steps=200)
    assert np.isfinite(fit.aic).all() and (fit.aic < other.aic + 10).all()


def test_calibration_and_comparison_reports(tmp_path) -> None:
    corpus = Corpus([sir(), seir()], CorpusConfig(n_context=21, min_context=21, horizon=7))
    train(corpus, tmp_path, TrainConfig(simulations=512, epochs=1, batch_size=128,
                                        held_out=64), network_config(corpus, d_model=16,
                                                                     n_heads=2, n_layers=1))
    ck = load_checkpoint(tmp_path)
    report = calibration(ck, n=200)
    for key in ("forecast_coverage_50", "forecast_coverage_90", "param_coverage_90"):
        assert 0.0 <= report[key] <= 1.0
    assert set(report["param_rmse_unconstrained"]) <= {"SIR", "SEIR"}
    cmp = compare_with_mle(ck, n=6, starts=2, steps=20, screen=5, screen_steps=4)
    assert 0 <= cmp["sgnn_error"] <= 1 and 0 <= cmp["aic_error"] <= 1
    assert sum(map(sum, cmp["aic_confusion"])) == 6
    assert all(0 <= v <= 1 for v in cmp["mle_starts_agree_fraction"].values())
