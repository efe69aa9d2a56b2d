"""Observation model: exact log-densities against scipy.stats, missing data, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from mechanistic import (
    DataError,
    Fixed,
    Gaussian,
    LogNormalNoise,
    LogUniform,
    Model,
    NegBinomial,
    Poisson,
    PropAdd,
)
from mechanistic.observation import (
    ObservationModel,
    batched_log_likelihood,
    check_data_support,
    log_likelihood,
    pointwise_log_likelihood,
    sample_observations,
    standardised_residuals,
)
from mechanistic.simulate import compile_model


def _model(noise_factory) -> Model:
    m = Model("obs test")
    x = m.state("x")
    k = m.param("k", LogUniform(0.1, 10))
    s = m.param("s", LogUniform(0.01, 100))
    c = m.constant("c", 2.0)
    m.rate(x, -k * x)
    m.init(x=1.0)
    m.observe("y", x, noise=noise_factory(s, c))
    return m


# (noise factory, scipy logpdf(y, f, s, c), data generator)
CASES = {
    "gaussian": (lambda s, c: Gaussian(s * c),
                 lambda y, f, s, c: stats.norm.logpdf(y, f, s * c),
                 lambda rng, n: rng.normal(5, 3, n)),
    "lognormal": (lambda s, c: LogNormalNoise(s),
                  lambda y, f, s, c: stats.lognorm.logpdf(y, s, scale=f),
                  lambda rng, n: rng.lognormal(1, 1, n)),
    "poisson": (lambda s, c: Poisson(),
                lambda y, f, s, c: stats.poisson.logpmf(y, f),
                lambda rng, n: rng.poisson(8, n).astype(float)),
    "negbinomial": (lambda s, c: NegBinomial(s),
                    lambda y, f, s, c: stats.nbinom.logpmf(y, s, s / (s + f)),
                    lambda rng, n: rng.poisson(20, n).astype(float)),
    "propadd": (lambda s, c: PropAdd(c, s),
                lambda y, f, s, c: stats.norm.logpdf(y, f, np.sqrt(c**2 + (s * f) ** 2)),
                lambda rng, n: rng.normal(5, 3, n)),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_log_density_matches_scipy(kind: str) -> None:
    factory, reference, draw = CASES[kind]
    m = _model(factory)
    rng = np.random.default_rng(1)
    batch, steps = 3, 40
    f = rng.uniform(0.5, 30.0, size=(batch, steps, 1))
    y = draw(rng, steps)[:, None]
    s = np.array([0.3, 1.7, 12.0])
    got = pointwise_log_likelihood(m, torch.tensor(f), torch.tensor(y),
                                   {"k": torch.ones(3), "s": torch.tensor(s)}).numpy()
    want = reference(y[None, :, 0], f[..., 0], s[:, None], 2.0)
    np.testing.assert_allclose(got[..., 0], want, rtol=1e-10, atol=1e-10)
    total = log_likelihood(m, torch.tensor(f), torch.tensor(y),
                           {"k": torch.ones(3), "s": torch.tensor(s)}).numpy()
    np.testing.assert_allclose(total, want.sum(axis=1), rtol=1e-10)


def test_missing_values_are_skipped_and_gradients_stay_finite() -> None:
    m = _model(lambda s, c: NegBinomial(s))
    f = torch.tensor([[[3.0], [-1e-9], [0.0], [7.0]]], dtype=torch.float64,
                     requires_grad=True)  # round-off negatives
    y = torch.tensor([[2.0], [np.nan], [0.0], [np.nan]], dtype=torch.float64)
    params = {"k": torch.ones(1), "s": torch.tensor([4.0])}
    ll = log_likelihood(m, f, y, params)
    want = stats.nbinom.logpmf(2, 4, 4 / 7) + stats.nbinom.logpmf(0, 4, 1.0)
    assert float(ll.detach()) == pytest.approx(want, rel=1e-10)
    ll.sum().backward()
    assert torch.isfinite(f.grad).all()
    assert f.grad[0, 1, 0] == 0 and f.grad[0, 3, 0] == 0


def test_poisson_gradient_finite_at_zero_prediction() -> None:
    m = _model(lambda s, c: Poisson())
    f = torch.tensor([[[0.0], [-2.0], [1.0]]], requires_grad=True)
    y = torch.tensor([[0.0], [0.0], [3.0]])
    ll = log_likelihood(m, f, y, {"k": torch.ones(1), "s": torch.ones(1)})
    ll.backward()
    assert torch.isfinite(ll).all() and torch.isfinite(f.grad).all()


def test_fixed_parameters_fill_noise_arguments() -> None:
    m = Model("fixed noise")
    x = m.state("x")
    m.rate(x, 0)
    m.init(x=1.0)
    m.observe("y", x, noise=Gaussian(m.param("sd", Fixed(0.5))))
    f = torch.full((1, 2, 1), 1.0)
    y = torch.tensor([[1.5], [0.0]])
    got = float(log_likelihood(m, f, y, {}))
    assert got == pytest.approx(stats.norm.logpdf([1.5, 0.0], 1.0, 0.5).sum())


def test_standardised_residuals() -> None:
    m = _model(lambda s, c: NegBinomial(s))
    f = torch.tensor([[[10.0], [4.0]]])
    y = torch.tensor([[15.0], [np.nan]])
    r = standardised_residuals(m, f, y, {"k": torch.ones(1), "s": torch.tensor([5.0])})
    assert float(r[0, 0, 0]) == pytest.approx(5 / np.sqrt(10 + 100 / 5))
    assert torch.isnan(r[0, 1, 0])


@pytest.mark.parametrize("kind", sorted(CASES))
def test_samples_have_the_declared_moments(kind: str) -> None:
    factory = CASES[kind][0]
    m = _model(factory)
    rng = np.random.default_rng(7)
    f = np.full((1, 20000, 1), 6.0)
    s = 0.4
    draws = sample_observations(m, torch.tensor(f), {"k": 1.0, "s": s}, rng)[0, :, 0]
    mean, var = {
        "gaussian": (6.0, (2 * s) ** 2),
        "lognormal": (6.0 * np.exp(s**2 / 2), (np.exp(s**2) - 1) * 36 * np.exp(s**2)),
        "poisson": (6.0, 6.0),
        "negbinomial": (6.0, 6.0 + 36 / s),
        "propadd": (6.0, 4.0 + (s * 6) ** 2),
    }[kind]
    assert draws.mean() == pytest.approx(mean, rel=0.03)
    assert draws.var() == pytest.approx(var, rel=0.08)


def test_sampling_is_reproducible_from_a_simulation() -> None:
    m = _model(lambda s, c: Poisson())
    sim = compile_model(m).simulate({"k": 0.5, "s": 1.0}, np.arange(5.0))
    sim.observables[:] = sim.observables * 50
    a = sample_observations(m, sim, {"k": 0.5, "s": 1.0}, 3)
    b = sample_observations(m, sim, {"k": 0.5, "s": 1.0}, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 5, 1)


def test_data_outside_the_noise_support_is_a_data_error() -> None:
    m = _model(lambda s, c: LogNormalNoise(s))
    with pytest.raises(DataError, match="log-normal"):
        check_data_support(m, np.array([[1.0], [0.0]]))
    obs = ObservationModel(m)
    ll = obs.log_likelihood(torch.ones(1, 2, 1), torch.tensor([[1.0], [0.0]]),
                            {"k": torch.ones(1), "s": torch.ones(1)})
    assert float(ll) == -np.inf


@pytest.mark.parametrize("kind", sorted(CASES))
def test_batched_log_likelihood_scores_each_series_under_its_own_sample(kind: str) -> None:
    """Row b of the data under parameter set b only, against scipy, missing values skipped."""
    factory, reference, draw = CASES[kind]
    m = _model(factory)
    rng = np.random.default_rng(2)
    batch, steps = 4, 30
    f = rng.uniform(0.5, 30.0, size=(batch, steps, 1))
    y = np.stack([draw(rng, steps) for _ in range(batch)])[:, :, None]
    y[1, 5, 0] = y[3, 0, 0] = np.nan
    s = np.array([0.3, 1.7, 12.0, 4.0])
    params = {"k": torch.ones(batch), "s": torch.tensor(s)}
    got = batched_log_likelihood(m, torch.tensor(f), y, params).numpy()
    want = np.nansum(reference(y[..., 0], f[..., 0], s[:, None], 2.0), axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # the same as scoring each series alone
    for b in range(batch):
        alone = log_likelihood(m, torch.tensor(f[b:b + 1]), torch.tensor(y[b]),
                               {"k": torch.ones(1), "s": torch.tensor(s[b:b + 1])})
        assert float(alone) == pytest.approx(got[b], rel=1e-12)


def test_batched_log_likelihood_is_differentiable_and_checks_shapes() -> None:
    m = _model(lambda s, c: NegBinomial(s))
    f = torch.full((2, 3, 1), 4.0, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[[1.0], [2.0], [3.0]], [[5.0], [np.nan], [0.0]]], dtype=torch.float64)
    ll = batched_log_likelihood(m, f, y, {"k": torch.ones(2), "s": torch.tensor([3.0, 9.0])})
    ll.sum().backward()
    assert torch.isfinite(f.grad).all() and f.grad[1, 1, 0] == 0
    with pytest.raises(DataError, match="one series per prediction"):
        batched_log_likelihood(m, f, y[0], {"k": torch.ones(2), "s": torch.ones(2)})
    with pytest.raises(DataError, match="or one series per sample"):
        log_likelihood(m, f, torch.ones(3, 3, 1), {"k": torch.ones(2), "s": torch.ones(2)})
