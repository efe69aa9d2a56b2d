"""Blocks simulated by Ray workers equal the local corpus's, and train the same network."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sgnn.corpus import Batch, Corpus, CorpusConfig
from sgnn.examples import seir, sir
from sgnn.sharded import CorpusSpec, ShardedConfig, ShardedSource, training_plan
from sgnn.train import TrainConfig, network_config, train

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray  # a dev dependency: missing ray fails here rather than skipping

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


def _corpus(seed: int = 3) -> Corpus:
    return Corpus([sir(), seir()], CorpusConfig(n_context=14, min_context=10, horizon=7,
                                                seed=seed), weights=[2.0, 1.0])


def _same(a: Batch, b: Batch) -> bool:
    return all(torch.equal(torch.nan_to_num(getattr(a, k)), torch.nan_to_num(getattr(b, k)))
               for k in ("context", "mask", "target", "target_mask", "structure", "theta",
                         "context_len", "delay", "clean"))


def test_spec_round_trips_and_config_is_validated() -> None:
    corpus = _corpus()
    rebuilt = CorpusSpec.from_corpus(corpus).build()
    assert _same(rebuilt.batch_at(1, 16), corpus.batch_at(1, 16))
    with pytest.raises(ValueError, match="workers"):
        ShardedConfig(workers=0)
    with pytest.raises(ValueError, match="prefetch"):
        ShardedConfig(prefetch=0)


def test_sharded_blocks_equal_local_blocks_and_survive_a_killed_worker(ray_cluster) -> None:
    corpus = _corpus()
    plan = [(i, 48) for i in range(8)]
    with ShardedSource(corpus, plan[:5], ShardedConfig(workers=2, prefetch=3)) as source:
        source.extend(plan[5:])  # blocks planned later join the same stream
        for index, size in plan[:3]:
            assert _same(source.batch_at(index, size), corpus.batch_at(index, size))
        lost = source.worker_pids()[1]
        os.kill(lost, signal.SIGKILL)  # odd blocks' worker is lost
        for index, size in plan[3:]:
            assert _same(source.batch_at(index, size), corpus.batch_at(index, size))
        assert source.worker_pids()[1] != lost  # Ray restarted it
        # Out of plan (a resumed run, another size): answered, and still the same block.
        assert _same(source.batch_at(2, 20), corpus.batch_at(2, 20))
        assert _same(source.batch_at(5, 48), corpus.batch_at(5, 48))


def test_more_workers_than_cluster_cpus_is_a_clear_error(ray_cluster) -> None:
    with pytest.raises(ValueError, match="need 3 CPUs; the cluster has 2"):
        ShardedSource(_corpus(), [(0, 8)], ShardedConfig(workers=3))


def test_training_from_the_sharded_source_matches_local_training(ray_cluster,
                                                                 tmp_path) -> None:
    corpus = _corpus(seed=0)
    cfg = network_config(corpus, d_model=16, n_heads=2, n_layers=1)
    tc = TrainConfig(simulations=192, epochs=2, batch_size=64, block=64, held_out=32)
    here = train(corpus, tmp_path / "local", tc, cfg)
    with ShardedSource(corpus, training_plan(tc), ShardedConfig(workers=2)) as source:
        there = train(corpus, tmp_path / "ray", tc, cfg, source=source)
        assert source.blocks_served == 6
    assert [h["train_loss"] for h in here.history] == [h["train_loss"] for h in there.history]
    assert here.best_val_loss == there.best_val_loss
    wa = load_file(tmp_path / "local" / "weights.safetensors")
    wb = load_file(tmp_path / "ray" / "weights.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_cli_trains_the_same_network_with_executor_ray(ray_cluster, tmp_path) -> None:
    import json

    from test_cli_sgnn import _invoke, _run_folder

    losses = []
    for name, extra in (("local", ()), ("ray", ("--executor", "ray", "--workers", 2))):
        run = _run_folder(tmp_path / name)
        result = _invoke("sgnn", "train", run, "--simulations", 256, "--epochs", 1, *extra)
        assert result.exit_code == 0, result.output
        losses.append(json.loads((run / "sgnn" / "train.json").read_text())["history"])
    assert losses[0] == losses[1]
    bad = _invoke("sgnn", "train", tmp_path / "local", "--address", "auto")
    assert bad.exit_code != 0 and "--address is for --executor ray" in bad.output
