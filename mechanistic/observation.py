"""Observation model (torch): how measurements scatter around the model's predictions.

The declared noise (:mod:`mechanistic.noise`) says *what* the scatter is; this module
turns it into numbers: exact, normalised log-densities of data given predictions (so
log-likelihoods of different noise models and different structures are comparable by
AIC/BIC), standardised residuals for the repair loop, and noisy draws for synthetic data
and SGNN corpora.

Everything here is batched over parameter sets: predictions are ``[B, T, O]`` (as
:class:`~mechanistic.simulate.Simulation.observables`), data is ``[T, O]`` (one series
scored under every parameter set, as in a fit) or ``[B, T, O]`` (series ``b`` under
parameter set ``b``, as when many series are fitted at once, see
:func:`batched_log_likelihood`), NaN for a missing value, and noise arguments (sympy
expressions of parameters and constants) are evaluated per sample from ``[B]`` parameter
tensors. Missing values contribute nothing.

Predictions are clamped where a density needs them positive (Poisson and negative
binomial means, log-normal medians, at ``TINY``): a simulated epidemic that dips to -1e-9
by round-off must not turn a fit's gradient into NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp
import torch

from mechanistic.errors import DataError, ModelError
from mechanistic.model import Model
from mechanistic.noise import TINY, Noise
from mechanistic.torch_expr import compile_program

__all__ = [
    "TINY",
    "ObservationModel",
    "batched_log_likelihood",
    "check_data_support",
    "log_likelihood",
    "pointwise_log_likelihood",
    "sample_observations",
    "standardised_residuals",
]



def _param_env(model: Model, params: Mapping[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """Every parameter as a tensor; Fixed priors fill in what is not given."""
    env: dict[str, Any] = {}
    for name, p in model.params_.items():
        if name in params:
            env[name] = torch.as_tensor(params[name], dtype=dtype)
        elif p.fixed:
            env[name] = torch.tensor(p.prior.typical, dtype=dtype)
        else:
            raise ModelError(f"missing value for parameter {name!r} (needed by the noise model)")
    return env


class ObservationModel:
    """The noise models of one model's observables, compiled once for repeated use.

    A fit evaluates the likelihood thousands of times; compiling the noise arguments
    once keeps that cheap. The free functions below build one of these per call.
    """

    def __init__(self, model: Model, dtype: torch.dtype = torch.float64) -> None:
        self.model = model
        self.dtype = dtype
        self.names = model.observable_names
        self.noises: list[Noise] = [o.noise for o in model.observables_.values()]
        constants = {sp.Symbol(c.name): c.value for c in model.constants_.values()}
        exprs: list[sp.Expr] = []
        self._slots: list[dict[str, int]] = []
        for noise in self.noises:
            slots = {}
            for arg, expr in noise.arguments().items():
                slots[arg] = len(exprs)
                exprs.append(expr)
            self._slots.append(slots)
        self._args = compile_program(exprs, None, constants) if exprs else None

    # ------------------------------------------------------------------ helpers
    def noise_arguments(self, params: Mapping[str, Any],
                        batch: int) -> list[dict[str, torch.Tensor]]:
        """Per observable, each noise argument as a ``[B, 1]`` tensor (broadcasts over T)."""
        if self._args is None:
            return [{} for _ in self.noises]
        env = _param_env(self.model, params, self.dtype)
        values = self._args(env)
        out = []
        for slots in self._slots:
            args = {}
            for arg, i in slots.items():
                v = torch.as_tensor(values[i], dtype=self.dtype).reshape(-1)
                if v.numel() not in (1, batch):
                    raise ModelError(f"noise argument {arg!r} has {v.numel()} values for a "
                                     f"batch of {batch}")
                args[arg] = v.expand(batch).reshape(batch, 1)
            out.append(args)
        return out

    def _check(self, predictions: torch.Tensor, data: torch.Tensor) -> tuple[torch.Tensor, int]:
        if predictions.ndim != 3 or predictions.shape[2] != len(self.names):
            raise ModelError(f"predictions must be [batch, time, {len(self.names)}] for "
                             f"observables {self.names}, got {tuple(predictions.shape)}")
        data = torch.as_tensor(data, dtype=predictions.dtype)
        if data.shape != predictions.shape[1:] and data.shape != predictions.shape:
            raise DataError(f"data must be [time, observable] = {tuple(predictions.shape[1:])} "
                            f"or one series per sample, {tuple(predictions.shape)}; got "
                            f"{tuple(data.shape)}")
        return data, predictions.shape[0]

    # -------------------------------------------------------------- likelihoods
    def pointwise(self, predictions: torch.Tensor, data: torch.Tensor | np.ndarray,
                  params: Mapping[str, Any]) -> torch.Tensor:
        """Log-density of every data point, ``[B, T, O]``; 0 where the data is missing.

        ``data`` is ``[T, O]`` (shared by all samples) or ``[B, T, O]`` (one per sample).
        """
        data, batch = self._check(predictions, data)
        observed = ~torch.isnan(data)
        y = torch.where(observed, data, torch.ones_like(data))  # a harmless stand-in
        columns = []
        for j, (noise, args) in enumerate(zip(self.noises, self.noise_arguments(params, batch),
                                              strict=True)):
            columns.append(noise.log_density(predictions[..., j], y[..., j], args))
        logp = torch.stack(columns, dim=-1)
        return torch.where(observed, logp, torch.zeros_like(logp))

    def log_likelihood(self, predictions: torch.Tensor, data: torch.Tensor | np.ndarray,
                       params: Mapping[str, Any]) -> torch.Tensor:
        """Total log-likelihood per sample, ``[B]``, over the non-missing data points.

        ``data`` is ``[T, O]`` (shared) or ``[B, T, O]`` (series ``b`` under sample ``b``).
        """
        return self.pointwise(predictions, data, params).sum(dim=(1, 2))

    def residuals(self, predictions: torch.Tensor, data: torch.Tensor | np.ndarray,
                  params: Mapping[str, Any]) -> torch.Tensor:
        """Standardised residuals ``(y - E[y]) / sd[y]`` (log scale for log-normal noise),
        ``[B, T, O]``; NaN where data is missing. Values beyond ~3 flag misfit."""
        data, batch = self._check(predictions, data)
        columns = []
        for j, (noise, args) in enumerate(zip(self.noises, self.noise_arguments(params, batch),
                                              strict=True)):
            columns.append(noise.standardised(predictions[..., j], data[..., j], args))
        return torch.stack(columns, dim=-1)

    # ----------------------------------------------------------------- sampling
    def sample(self, predictions: torch.Tensor | np.ndarray, params: Mapping[str, Any],
               rng: np.random.Generator) -> np.ndarray:
        """Noisy observations ``[B, T, O]`` drawn around ``predictions``; NaN stays NaN."""
        f = torch.as_tensor(predictions, dtype=self.dtype).detach()
        if f.ndim != 3 or f.shape[2] != len(self.names):
            raise ModelError(f"predictions must be [batch, time, {len(self.names)}], "
                             f"got {tuple(f.shape)}")
        batch = f.shape[0]
        out = np.empty(tuple(f.shape), dtype=float)
        for j, (noise, args) in enumerate(zip(self.noises, self.noise_arguments(params, batch),
                                              strict=True)):
            a = {k: v.detach().cpu().numpy() for k, v in args.items()}
            out[..., j] = noise.sample(f[..., j].cpu().numpy(), a, rng)
        return out


def check_data_support(model: Model, data: np.ndarray) -> None:
    """Data a noise model gives zero probability is a modelling error, not a fit failure:
    say so before fitting (log-normal needs y > 0, counts need y >= 0)."""
    for j, (name, obs) in enumerate(model.observables_.items()):
        col = np.asarray(data)[:, j]
        col = col[~np.isnan(col)]
        problem = obs.noise.support_problem(col)
        if problem is not None:
            raise DataError(f"observable {name!r} {problem}")


# ------------------------------------------------------------------ free functions
def pointwise_log_likelihood(model: Model, predictions: torch.Tensor,
                             data: torch.Tensor | np.ndarray,
                             params: Mapping[str, Any]) -> torch.Tensor:
    """Log-density of every data point ``[B, T, O]`` (0 where data is missing)."""
    return ObservationModel(model, predictions.dtype).pointwise(predictions, data, params)


def log_likelihood(model: Model, predictions: torch.Tensor, data: torch.Tensor | np.ndarray,
                   params: Mapping[str, Any]) -> torch.Tensor:
    """Log-likelihood per sample ``[B]`` of data ``[T, O]`` (NaN = missing) given
    predictions ``[B, T, O]`` and parameters (name -> ``[B]`` tensor or number)."""
    return ObservationModel(model, predictions.dtype).log_likelihood(predictions, data, params)


def batched_log_likelihood(model: Model, predictions: torch.Tensor,
                           data: torch.Tensor | np.ndarray,
                           params: Mapping[str, Any]) -> torch.Tensor:
    """Log-likelihood ``[B]`` of series ``b`` of ``data [B, T, O]`` given predictions ``b``.

    For fitting many series at once (one simulator call for all series and starts, as
    the SGNN's maximum-likelihood referee does): row ``b`` of the data is scored only
    under parameter set ``b``. NaN marks a missing value and contributes nothing; the
    densities are the exact normalised ones of :meth:`ObservationModel.pointwise`, so
    values are comparable across structures (AIC). Differentiable in ``predictions``
    and ``params``. For repeated calls build one :class:`ObservationModel` and call its
    ``log_likelihood`` with ``[B, T, O]`` data: it compiles the noise arguments once.
    """
    predictions = torch.as_tensor(predictions)
    data = torch.as_tensor(data, dtype=predictions.dtype)
    if data.ndim != 3 or data.shape != predictions.shape:
        raise DataError(f"batched data must be one series per prediction, "
                        f"{tuple(predictions.shape)}; got {tuple(data.shape)}")
    return ObservationModel(model, predictions.dtype).log_likelihood(predictions, data, params)


def standardised_residuals(model: Model, predictions: torch.Tensor,
                           data: torch.Tensor | np.ndarray,
                           params: Mapping[str, Any]) -> torch.Tensor:
    """Standardised residuals ``[B, T, O]``, NaN where data is missing."""
    return ObservationModel(model, predictions.dtype).residuals(predictions, data, params)


def sample_observations(model: Model, sim: Any, params: Mapping[str, Any],
                        rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Draw noisy observations ``[B, T, O]`` around a simulation (or a predictions array).

    ``rng`` is a numpy Generator or a seed, so synthetic data sets are reproducible.
    """
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    predictions = sim.observables if hasattr(sim, "observables") else sim
    return ObservationModel(model).sample(predictions, params, generator)
