"""Pinball loss by hand, a tiny SGNN that learns, and a checkpoint that round-trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sgnn.corpus import Corpus, CorpusConfig
from sgnn.examples import seir, sir
from sgnn.network import SGNN, SGNNConfig, pinball_loss, slog
from sgnn.train import (
    TrainConfig,
    epoch_blocks,
    evaluate,
    load_checkpoint,
    network_config,
    train,
)


def test_pinball_loss_matches_hand_computation() -> None:
    pred = torch.tensor([[1.0, 2.0], [3.0, 0.0]])       # two targets, quantiles 0.1 / 0.9
    target = torch.tensor([1.5, 1.0])
    q = torch.tensor([0.1, 0.9])
    # target 1.5: q0.1 pred 1 -> 0.1*0.5=0.05; q0.9 pred 2 -> (0.9-1)*(-0.5)=0.05
    # target 1.0: q0.1 pred 3 -> (0.1-1)*(-2)=1.8; q0.9 pred 0 -> 0.9*1=0.9
    assert pinball_loss(pred, target, q).item() == pytest.approx((0.05 + 0.05 + 1.8 + 0.9) / 4)
    mask = torch.tensor([1.0, 0.0])
    assert pinball_loss(pred, target, q, mask).item() == pytest.approx(0.05)


def test_quantile_heads_are_monotone_and_config_is_validated() -> None:
    cfg = SGNNConfig(n_context=20, horizon=5, n_observables=1, n_structures=2, n_params=3,
                     d_model=16, n_heads=2, n_layers=1)
    net = SGNN(cfg)
    out = net(torch.rand(4, 20, 1) * 100, torch.ones(4, 20, 1))
    assert out["forecast"].shape == (4, 5, 1, 5) and out["params"].shape == (4, 3, 5)
    assert (out["forecast"].diff(dim=-1) >= 0).all() and (out["params"].diff(dim=-1) >= 0).all()
    with pytest.raises(ValueError, match="divisible"):
        SGNNConfig(n_context=20, horizon=5, n_observables=1, n_structures=2, n_params=3,
                   d_model=15, n_heads=2)
    with pytest.raises(ValueError, match="quantiles"):
        SGNNConfig(n_context=20, horizon=5, n_observables=1, n_structures=2, n_params=3,
                   quantiles=(0.9, 0.1))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple:
    """A tiny SGNN on SIR vs SEIR: ~400 steps, a few seconds on one core."""
    folder = tmp_path_factory.mktemp("sgnn")
    corpus = Corpus([sir(), seir()], CorpusConfig(n_context=28, min_context=14, horizon=7,
                                                  seed=0))
    net_cfg = network_config(corpus, d_model=32, n_layers=1)
    result = train(corpus, folder, TrainConfig(simulations=8192, epochs=3, batch_size=64,
                                               held_out=500, seed=0), net_cfg)
    return folder, corpus, result


def test_tiny_sgnn_beats_chance_and_is_roughly_calibrated(trained) -> None:
    folder, corpus, result = trained
    ck = load_checkpoint(folder)
    held = corpus.batch(1000, rng=np.random.default_rng(12345))
    metrics = evaluate(ck.network, held)
    assert metrics["accuracy"] > 0.6, metrics            # chance is 0.5
    with torch.no_grad():
        out = ck.network(held.context, held.mask)
    lo, hi = ck.network.config.interval(0.9)
    z = slog(held.target)
    inside = (z >= out["forecast"][..., lo]) & (z <= out["forecast"][..., hi])
    coverage = (inside.float() * held.target_mask).sum() / held.target_mask.sum()
    assert 0.85 <= coverage.item() <= 0.95, coverage    # the calibration band
    assert result.epochs_run >= 1 and result.samples_per_second > 0


def test_checkpoint_round_trip_gives_identical_predictions(trained) -> None:
    folder, corpus, _ = trained
    a, b = load_checkpoint(folder), load_checkpoint(folder)
    batch = corpus.batch(16, rng=np.random.default_rng(1))
    with torch.no_grad():
        oa, ob = a.network(batch.context, batch.mask), b.network(batch.context, batch.mask)
    for key in ("forecast", "params", "logits"):
        assert torch.equal(oa[key], ob[key])
    state = load_file(folder / "weights.safetensors")
    assert set(state) == set(a.network.state_dict())
    assert a.corpus.names == ["SIR", "SEIR"]


def test_resume_continues_where_it_stopped(tmp_path) -> None:
    corpus = Corpus([sir()], CorpusConfig(n_context=14, min_context=14, horizon=7, seed=0))
    cfg = network_config(corpus, d_model=16, n_heads=2, n_layers=1)
    first = train(corpus, tmp_path, TrainConfig(simulations=256, epochs=1, batch_size=64,
                                                held_out=64), cfg)
    assert first.epochs_run == 1
    again = train(corpus, tmp_path, TrainConfig(simulations=256, epochs=2, batch_size=64,
                                                held_out=64), cfg, resume=True)
    assert again.epochs_run == 2 and len(again.history) == 2


def test_load_checkpoint_without_training_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="no trained SGNN"):
        load_checkpoint(tmp_path)


class _ElsewhereSource:
    """Blocks made by a separate corpus instance, out of order and ahead of time: what a
    pool of workers would hand the trainer. It must train the very same network."""

    def __init__(self, config: TrainConfig, epochs: int) -> None:
        twin = Corpus([sir()], CorpusConfig(n_context=14, min_context=14, horizon=7, seed=0))
        plan = [b for e in range(epochs) for b in epoch_blocks(config, e)]
        self.blocks = {i: twin.batch_at(i, n) for i, n in reversed(plan)}

    def batch_at(self, index: int, size: int):
        assert len(self.blocks[index]) == size
        return self.blocks[index]


def test_training_from_another_source_of_the_same_blocks_is_identical(tmp_path) -> None:
    corpus = Corpus([sir()], CorpusConfig(n_context=14, min_context=14, horizon=7, seed=0))
    cfg = network_config(corpus, d_model=16, n_heads=2, n_layers=1)
    tc = TrainConfig(simulations=192, epochs=2, batch_size=64, block=128, held_out=32)
    assert epoch_blocks(tc, 1) == [(2, 128), (3, 64)]
    here = train(corpus, tmp_path / "a", tc, cfg)
    there = train(corpus, tmp_path / "b", tc, cfg, source=_ElsewhereSource(tc, 2))
    assert here.best_val_loss == there.best_val_loss
    wa = load_file(tmp_path / "a" / "weights.safetensors")
    wb = load_file(tmp_path / "b" / "weights.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


class _Stop(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_network(tmp_path) -> None:
    """The resume point (safetensors + JSON, no pickle) holds everything training needs:
    weights, Adam moments, scheduler and counters, so stopping after epoch 1 and resuming
    trains exactly the network an uninterrupted run trains."""
    corpus = Corpus([sir()], CorpusConfig(n_context=14, min_context=14, horizon=7, seed=0))
    cfg = network_config(corpus, d_model=16, n_heads=2, n_layers=1)
    tc = TrainConfig(simulations=128, epochs=2, batch_size=64, held_out=32)
    train(corpus, tmp_path / "straight", tc, cfg)

    def stop_in_epoch_two(message: str) -> None:
        if message.startswith("epoch 2"):
            raise _Stop

    with pytest.raises(_Stop):
        train(corpus, tmp_path / "resumed", tc, cfg, log=stop_in_epoch_two)
    train(corpus, tmp_path / "resumed", tc, cfg, resume=True)
    wa = load_file(tmp_path / "straight" / "last.safetensors")
    wb = load_file(tmp_path / "resumed" / "last.safetensors")
    assert set(wa) == set(wb) and any(k.startswith("opt.") for k in wa)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
