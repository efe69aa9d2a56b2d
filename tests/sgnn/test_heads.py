"""The head seam: a registry that refuses bad parts, configs old and new, and a network
built from any set of heads (the plugin test in tests/plugins trains one end to end)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mechanistic.data import ObservedData
from sgnn.corpus import Corpus, CorpusConfig
from sgnn.examples import sir
from sgnn.heads import DEFAULT_HEADS, HEADS, Head, head_names, make_head, register_head
from sgnn.network import SGNN, SGNNConfig
from sgnn.predict import predict
from sgnn.train import TrainConfig, load_checkpoint, network_config, train

SHAPE = dict(n_context=14, horizon=7, n_observables=1, n_structures=1, n_params=4,
             d_model=16, n_heads=2, n_layers=1)


class _Level(Head):
    """The mean reported value of the context, on the slog scale: a target of its own."""

    name = "level"
    default_weight = 2.0
    arrays = ("level",)

    def build(self, config):
        return nn.Linear(config.d_model, 1)

    def forward(self, module, embedding, centre, config):
        return module(embedding)[:, 0]

    def targets(self, draw):
        return {"level": np.log1p(draw.clean[:, :draw.n_context, 0].mean(axis=1))}

    def loss(self, output, batch, net):
        return (output - batch.targets["level"]).pow(2).mean()


@pytest.fixture
def level(monkeypatch):
    monkeypatch.setitem(HEADS, "level", _Level)
    return _Level


def test_the_registry_refuses_what_is_not_a_head() -> None:
    assert list(DEFAULT_HEADS) == head_names()[:3]
    with pytest.raises(ValueError, match="already registered"):
        register_head(HEADS["forecast"])
    with pytest.raises(ValueError, match="Head subclass"):
        register_head(nn.Linear)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="head name"):
        register_head(type("Bad", (Head,), {"name": "Bad-Name"}))
    with pytest.raises(ValueError, match=r"unknown SGNN head 'nope'.*forecast"):
        make_head("nope")


def test_config_reads_old_checkpoints_and_checks_heads(level) -> None:
    old = {**SHAPE, "weight_forecast": 2.0, "weight_params": 0.0, "weight_structure": 1.0}
    assert SGNNConfig.from_dict(old).heads == {"forecast": 2.0, "params": 0.0,
                                               "structure": 1.0}
    assert SGNNConfig(**SHAPE).heads == {"forecast": 1.0, "params": 1.0, "structure": 1.0}
    named = SGNNConfig(**SHAPE, heads=("forecast", "level"))
    assert named.heads == {"forecast": 1.0, "level": 2.0}
    assert SGNNConfig.from_dict(named.to_dict()) == named
    with pytest.raises(ValueError, match="loss weight"):
        SGNNConfig(**SHAPE, heads={"forecast": -1.0})
    with pytest.raises(ValueError, match="at least one head"):
        SGNNConfig(**SHAPE, heads={})
    clash = type("Clash", (Head,), {"name": "clash", "output": "logits"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(HEADS, "clash", clash)
        with pytest.raises(ValueError, match="clashes"):
            SGNNConfig(**SHAPE, heads=("structure", "clash"))


def test_a_network_of_any_heads_sums_their_weighted_losses(level) -> None:
    corpus = Corpus([sir()], CorpusConfig(n_context=14, min_context=14, horizon=7, seed=0),
                    heads=("forecast", "level"))
    batch = corpus.batch(8)
    assert set(batch.targets) == {"target", "target_mask", "level"}
    assert batch.targets["level"].dtype == torch.float32 and batch.level.shape == (8,)
    torch.manual_seed(0)
    net = SGNN(network_config(corpus, d_model=16, n_heads=2, n_layers=1))
    out = net(batch.context, batch.mask)
    assert set(out) == {"forecast", "level", "embedding"} and out["level"].shape == (8,)
    losses = net.loss(out, batch)
    assert list(losses) == ["total", "forecast", "level"]
    assert torch.allclose(losses["total"], losses["forecast"] + 2.0 * losses["level"])
    assert "level_head.weight" in net.state_dict()


def test_heads_must_give_what_they_declare(level, monkeypatch, tmp_path) -> None:
    taken = type("Taken", (Head,), {"name": "taken", "arrays": ("theta",)})
    monkeypatch.setitem(HEADS, "taken", taken)
    with pytest.raises(ValueError, match="'theta' is taken"):
        Corpus([sir()], heads=("forecast", "taken"))
    liar = type("Liar", (_Level,), {"name": "liar", "targets": lambda self, draw: {}})
    monkeypatch.setitem(HEADS, "liar", liar)
    corpus = Corpus([sir()], CorpusConfig(n_context=14, min_context=14, horizon=7),
                    heads=("liar",))
    with pytest.raises(ValueError, match=r"targets\(\) gave"):
        corpus.batch(4)
    plain = Corpus([sir()], CorpusConfig(n_context=14, min_context=14, horizon=7))
    wants_level = network_config(plain, heads=("forecast", "level"), d_model=16, n_heads=2,
                                 n_layers=1)
    with pytest.raises(ValueError, match="does not draw"):
        train(plain, tmp_path, TrainConfig(simulations=64, epochs=1, batch_size=64,
                                           held_out=8), wants_level)


def test_a_forecast_only_network_trains_and_predicts(tmp_path) -> None:
    corpus = Corpus([sir()], CorpusConfig(n_context=14, min_context=14, horizon=7, seed=0),
                    heads=("forecast",))
    cfg = network_config(corpus, d_model=16, n_heads=2, n_layers=1)
    result = train(corpus, tmp_path, TrainConfig(simulations=64, epochs=1, batch_size=64,
                                                 held_out=16), cfg)
    assert set(result.history[0]) == {"epoch", "train_loss", "val_total", "val_forecast"}
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint.corpus.head_names == ("forecast",)
    t = np.arange(14.0)
    prediction = predict(checkpoint, ObservedData(t, {"cases": 5 * np.exp(0.1 * t)}))
    assert prediction.structures == {} and prediction.params == {}
    assert prediction.forecast["cases"].shape == (7, 5) and prediction.heads == {}
