"""Uncertainty around a fit: Laplace draws and predictive bands.

A forecast or a counterfactual without an interval invites over-trust. The fit's
uncertainty is approximated by a Gaussian in the optimiser's unconstrained space, centred
on the maximum-likelihood point with the inverse Hessian of the negative log-likelihood
as covariance (the Laplace approximation); draws are mapped back onto each prior's
support, so they respect bounds. Neural-term weights are held at their fitted values
(their uncertainty is not represented; the bands are narrower than the truth for hybrid
models, and the result says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mechanistic.data import ObservedData
from mechanistic.fit import FitResult, ParameterTransform, _data_matrix, _Objective
from mechanistic.interventions import ControlSchedule, Intervention
from mechanistic.model import Model
from mechanistic.observation import ObservationModel
from mechanistic.simulate import CompiledModel, Simulation, compile_model
from mechanistic.solvers import solver_from_dict

__all__ = ["Bands", "ParameterDraws", "laplace_draws", "predictive_bands"]

_DTYPE = torch.float64


@dataclass(frozen=True)
class ParameterDraws:
    """Parameter sets drawn around a fit; ``values[name]`` has one entry per draw."""

    values: dict[str, np.ndarray]
    method: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0


def laplace_draws(
    model: Model,
    data: ObservedData,
    fit: FitResult | Mapping[str, Any],
    n: int = 200,
    seed: int = 0,
    compiled: CompiledModel | None = None,
    controls: Mapping[str, ControlSchedule] | None = None,
) -> ParameterDraws:
    """``n`` parameter sets from the Laplace approximation at ``fit`` (training rows only).

    ``fit`` is a :class:`FitResult` or its ``to_dict()`` form (read back from a run folder);
    pass the ``compiled`` model carrying the fitted networks for a hybrid model.
    """
    info = fit.to_dict() if isinstance(fit, FitResult) else dict(fit)
    if compiled is None:
        compiled = fit.compiled if isinstance(fit, FitResult) and fit.compiled else \
            compile_model(model)
    free = list(info["free_params"])
    params = {k: float(v) for k, v in info["params"].items()}
    notes: list[str] = []
    fixed = {k: np.full(n, v) for k, v in params.items() if k not in free}
    if not free:
        return ParameterDraws(fixed, "none", ["no free parameters: a single point"])
    until = info.get("train_until")
    train = data.split(until)[0] if until is not None else data
    transforms = [ParameterTransform.for_prior(k, model.params_[k].prior) for k in free]
    objective = _Objective(model, compiled, transforms, train.t, _data_matrix(model, train),
                           solver_from_dict(info["solver"]), float(info["t0"]), (), controls)
    u_hat = np.array([tr.inverse(np.array([params[tr.name]]))[0] for tr in transforms])
    u0 = torch.as_tensor(u_hat, dtype=_DTYPE)

    def nll(u: torch.Tensor) -> torch.Tensor:
        return objective(u[None, :])[0]

    hessian = torch.autograd.functional.hessian(nll, u0).detach().numpy()
    hessian = 0.5 * (hessian + hessian.T)
    if not np.isfinite(hessian).all():
        notes.append("the Hessian was not finite; draws use a small isotropic spread")
        cov = np.eye(len(free)) * 1e-4
    else:
        eigval, eigvec = np.linalg.eigh(hessian)
        floor = max(float(eigval.max()) * 1e-8, 1e-8)
        if (eigval < floor).any():
            notes.append(f"{int((eigval < floor).sum())} direction(s) of the likelihood are "
                         f"flat or curved the wrong way (weakly identified parameters); their "
                         f"spread is capped")
        eigval = np.clip(eigval, floor, None)
        # Cap the spread of flat directions at 3 units of unconstrained space (about the
        # whole prior range after the sigmoid/log map) instead of letting it go to infinity.
        var = np.minimum(1.0 / eigval, 9.0)
        cov = (eigvec * var) @ eigvec.T
    rng = np.random.default_rng(seed)
    u = rng.multivariate_normal(u_hat, cov, size=n, method="cholesky")
    u[0] = u_hat  # the fit itself is always draw 0
    with torch.no_grad():
        mapped = {tr.name: tr.forward(torch.as_tensor(u[:, i], dtype=_DTYPE)).numpy()
                  for i, tr in enumerate(transforms)}
    if model.neural_:
        notes.append("neural-term weights held at their fitted values")
    return ParameterDraws({**fixed, **mapped}, "laplace", notes)


@dataclass(frozen=True)
class Bands:
    """Quantiles over draws: ``quantiles[q][name]`` is an array over ``t``."""

    t: np.ndarray
    quantiles: dict[float, dict[str, np.ndarray]]
    best: dict[str, np.ndarray]
    n_ok: int
    notes: list[str]

    def frame(self) -> Any:
        import pandas as pd

        data: dict[str, Any] = {"t": self.t}
        for name, values in self.best.items():
            data[name] = values
            for q in sorted(self.quantiles):
                data[f"{name}_q{q:g}"] = self.quantiles[q][name]
        return pd.DataFrame(data)


def predictive_bands(
    compiled: CompiledModel,
    draws: ParameterDraws,
    t_eval: Sequence[float] | np.ndarray,
    *,
    t0: float,
    solver: Mapping[str, Any],
    interventions: Sequence[Intervention] = (),
    controls: Mapping[str, ControlSchedule] | None = None,
    quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
    observation_noise: bool = True,
    seed: int = 0,
) -> Bands:
    """Simulate every draw (under interventions) and summarise states and observables.

    With ``observation_noise`` the observables' bands include measurement noise drawn
    from the declared noise model: a prediction interval for new data, not only for the
    mean. States never include observation noise.
    """
    model = compiled.model
    params = {k: torch.as_tensor(v, dtype=_DTYPE) for k, v in draws.values.items()}
    with torch.no_grad():
        sim: Simulation = compiled.simulate(params, t_eval, solver=solver_from_dict(solver),
                                            interventions=interventions, controls=controls,
                                            t0=t0)
    ok = sim.ok.numpy()
    series: dict[str, np.ndarray] = {}
    for i, name in enumerate(sim.state_names):
        series[name] = sim.states[..., i].numpy()
    observed = sim.observables.numpy()
    if observation_noise and observed.shape[-1]:
        noisy = ObservationModel(model, _DTYPE).sample(sim.observables, params,
                                                       np.random.default_rng(seed))
        observed = np.asarray(noisy)
    for j, name in enumerate(sim.observable_names):
        key = name if name not in series else f"{name}_obs"
        series[key] = observed[..., j]
    notes = list(draws.notes)
    if not ok.all():
        notes.append(f"{int((~ok).sum())} of {len(ok)} draws failed to simulate and were "
                     f"left out")
    keep = ok if ok.any() else np.ones_like(ok)
    quant = {float(q): {k: np.nanquantile(v[keep], q, axis=0) for k, v in series.items()}
             for q in quantiles}
    best = {k: v[0] for k, v in series.items()}
    best.update({name if name not in sim.state_names else f"{name}_obs":
                 sim.observables[0, :, j].numpy() for j, name in enumerate(sim.observable_names)})
    return Bands(np.asarray(t_eval, dtype=float), quant, best, int(ok.sum()), notes)
