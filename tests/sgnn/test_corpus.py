"""The corpus is reproducible under a seed and its artifacts do what they claim."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgnn.corpus import BatchSource, CachedCorpus, Corpus, CorpusConfig
from sgnn.examples import seir, sir


def _corpus(**kw) -> Corpus:
    return Corpus([sir(), seir()], CorpusConfig(**kw))


def test_same_seed_same_batch_and_different_seed_differs() -> None:
    a = _corpus(seed=3).batch(64)
    b = _corpus(seed=3).batch(64)
    c = _corpus(seed=4).batch(64)
    assert torch.equal(a.context, b.context) and torch.equal(a.structure, b.structure)
    assert torch.equal(torch.nan_to_num(a.theta), torch.nan_to_num(b.theta))
    assert not torch.equal(a.context, c.context)


def test_mask_rate_matches_missing_rate_and_padding() -> None:
    cfg = dict(missing_rate=0.2, min_context=42, n_context=42, seed=1)
    batch = _corpus(**cfg).batch(400)
    observed = batch.target_mask.mean().item()
    assert abs(observed - 0.8) < 0.03
    # Variable context: left padding is masked out, the rest follows the missing rate.
    short = _corpus(missing_rate=0.0, min_context=10, n_context=42, seed=2).batch(200)
    for row in range(20):
        n = int(short.context_len[row])
        assert short.mask[row, : 42 - n].sum() == 0
        assert short.mask[row, 42 - n:].all()
        assert short.context[row, : 42 - n].abs().sum() == 0


def test_delay_shifts_the_series() -> None:
    cfg = CorpusConfig(max_delay=4, drift_sd=0.0, weekday_sd=0.0, missing_rate=0.0, seed=5)
    corpus = Corpus([sir()], cfg)
    batch = corpus.batch(50, keep_latent=True)
    assert set(batch.delay.tolist()) > {0}
    for b in range(50):
        d = int(batch.delay[b])
        want = batch.latent[b, cfg.max_delay - d: cfg.max_delay - d + cfg.length]
        assert torch.allclose(batch.clean[b], want)


def test_theta_lives_in_the_own_structure_slice() -> None:
    corpus = _corpus(seed=0)
    batch = corpus.batch(100)
    for b in range(100):
        k = int(batch.structure[b])
        lo, hi = corpus.offsets[k], corpus.offsets[k + 1]
        assert torch.isfinite(batch.theta[b, lo:hi]).all()
        assert torch.isnan(batch.theta[b, :lo]).all() and torch.isnan(batch.theta[b, hi:]).all()


def test_narrowing_pulls_draws_towards_the_fit() -> None:
    fit = {"beta": 0.5, "gamma": 0.2, "rho": 0.5, "phi": 20.0}
    wide = Corpus([sir()], CorpusConfig(seed=0), fits=[fit])
    narrow = Corpus([sir()], CorpusConfig(seed=0, narrow=0.1), fits=[fit])
    rng = np.random.default_rng(0)
    w = wide.natural(0, wide.draw_params(0, 500, rng))["beta"]
    rng = np.random.default_rng(0)
    n = narrow.natural(0, narrow.draw_params(0, 500, rng))["beta"]
    assert np.abs(np.log(n / 0.5)).mean() < 0.2 * np.abs(np.log(w / 0.5)).mean()


def test_cached_corpus_round_trip(tmp_path) -> None:
    corpus = _corpus(seed=0)
    path = corpus.save(tmp_path / "corpus.npz", 300, batch_size=128)
    cached = CachedCorpus(path, seed=1)
    assert len(cached) == 300
    batch = cached.batch(32)
    assert batch.context.shape == (32, 42, 1)


@pytest.mark.parametrize("bad", [dict(min_context=50), dict(missing_rate=1.0),
                                 dict(narrow=0.0), dict(horizon=0)])
def test_config_rejects_bad_values(bad) -> None:
    with pytest.raises(ValueError, match="CorpusConfig"):
        CorpusConfig(**bad)


def test_batch_at_is_a_pure_function_of_seed_and_index() -> None:
    """The seam parallel producers rely on: any order, any instance, same block."""
    a, b = _corpus(seed=3), _corpus(seed=3)
    b.batch(17)                                   # consuming another stream changes nothing
    late = [b.batch_at(i, 32) for i in (2, 0, 1)]
    early = [a.batch_at(i, 32) for i in (0, 1, 2)]
    for x, y in zip(early, [late[1], late[2], late[0]], strict=True):
        assert torch.equal(x.context, y.context) and torch.equal(x.mask, y.mask)
        assert torch.equal(torch.nan_to_num(x.theta), torch.nan_to_num(y.theta))
    assert not torch.equal(early[0].context, early[1].context)
    assert not torch.equal(early[0].context, _corpus(seed=4).batch_at(0, 32).context)
    with pytest.raises(ValueError, match="block index"):
        a.batch_at(-1, 4)


def test_cached_corpus_batch_at_is_pure(tmp_path) -> None:
    path = _corpus(seed=0).save(tmp_path / "c.npz", 100, batch_size=64)
    one, two = CachedCorpus(path, seed=5), CachedCorpus(path, seed=5)
    two.batch(10)
    assert torch.equal(one.batch_at(3, 16).context, two.batch_at(3, 16).context)
    assert isinstance(one, BatchSource) and isinstance(_corpus(), BatchSource)
