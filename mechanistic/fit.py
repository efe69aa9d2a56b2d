"""Maximum-likelihood fitting through the differentiable, batched simulator.

One entry point, :func:`fit_model`, takes a model, data and a frozen :class:`FitConfig`.

How it works, and why:

* **Unconstrained space.** Each free (non-``Fixed``) parameter is optimised as an
  unconstrained number mapped onto its prior's support: a log-uniform interval through a
  sigmoid in log space (rates span decades), any other interval through a scaled sigmoid,
  a lower bound as ``lower + exp(u)``, the real line as ``mean + std * u``. The optimiser
  can never propose a value the scientist declared impossible, and a unit step means a
  similar relative change for every parameter.
* **Multi-start in one batch.** The simulator is batched, so all starts are rows of one
  simulation: the first start is at the priors' typical values, the rest are prior
  draws. The objective is the sum of the per-start negative log-likelihoods, which are
  independent, so one Adam run optimises every start at once for the cost of one. A start
  whose loss or gradient turns non-finite (a stiff or diverging parameter draw) is masked
  out of the sum and re-drawn from the priors (its Adam moments cleared) up to
  ``max_resets`` times, then frozen at its best point: it never poisons the others.
* **Polish.** The best start(s) are refined with L-BFGS (strong-Wolfe line search), which
  converges in far fewer simulations than Adam near an optimum; the polish is kept only
  if it improves the likelihood.
* **Neural terms (hybrid models).** Networks are *shared* parameters, so they cannot be
  rows of the multi-start batch. The fit therefore runs in two phases: (1) the multi-start
  search above fits the mechanistic skeleton with the networks held fixed (a fresh
  network outputs exactly zero, so this is the purely mechanistic model); (2) from the
  best skeleton fit, the mechanistic parameters and the networks are trained jointly
  (Adam, weight decay on the network weights, roll back and halve the step on a
  non-finite loss). Before phase 2, fresh networks get input scales from the typical size
  of their inputs along the phase-1 trajectory and an output scale such that a unit
  output moves the dynamics by their typical size. Networks passed in by the caller keep
  their scales and weights as the starting point.

Data columns must be observables (``data.check_columns``); NaN cells are skipped by the
likelihood. With ``train_until`` the rows after it are held out and scored as validation.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import sympy as sp
import torch
from torch import nn

from mechanistic.data import ObservedData
from mechanistic.errors import DataError, ModelError
from mechanistic.files import json_data
from mechanistic.interventions import ControlSchedule, Intervention
from mechanistic.model import Model
from mechanistic.newton import MAX_NEWTON_PARAMS, newton_polish
from mechanistic.observation import ObservationModel, check_data_support
from mechanistic.priors import LogUniform, Normal, Prior
from mechanistic.scores import normalised_rmse, series_scale
from mechanistic.shooting import (
    GAP_TOLERANCE,
    SegmentPlan,
    ShootingObjective,
    direct_observations,
    plan_segments,
    segment_starts,
    state_scales,
)
from mechanistic.simulate import CompiledModel, Simulation, Status, compile_model
from mechanistic.solvers import RK4, Solver, solver_from_dict, solver_to_dict
from mechanistic.torch_expr import compile_program

__all__ = ["BENCH_FIT", "SEARCH_FIT", "FitConfig", "FitResult", "ParameterTransform",
           "fit_model"]

_DTYPE = torch.float64
STRATEGIES = ("shooting", "single")


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True)
class FitConfig:
    """Settings of one fit; validated on construction so a typo fails before any work.

    ``solver=None`` picks RK4 with ``dt = min(data spacing) / 4``; ``t0=None`` starts the
    simulation at the first data time (initial conditions hold there).
    """

    starts: int = 8
    adam_steps: int = 200
    lr: float = 0.05
    lbfgs_steps: int = 50
    polish_starts: int = 4
    solver: Solver | None = None
    seed: int = 0
    t0: float | None = None
    max_resets: int = 3
    tol: float = 1e-7
    patience: int = 40
    neural_steps: int = 400
    neural_lr: float = 0.01
    neural_weight_decay: float = 1e-4
    neural_lbfgs_steps: int = 0
    # Wall-clock limit of one fit: the optimisers stop where they are (best point so far)
    # once it passes, so a search's time budget holds inside a slow fit too.
    max_seconds: float | None = None
    # The multi-start stage: "shooting" (segments side by side, mechanistic/shooting.py,
    # where the data allow; else single) or "single" (the whole window per evaluation).
    strategy: str = "shooting"
    shooting_segments: int = 10
    shooting_min_intervals: int = 3

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"FitConfig.strategy must be one of {list(STRATEGIES)}, "
                             f"got {self.strategy!r}")
        for name in ("starts", "polish_starts", "patience", "shooting_segments",
                     "shooting_min_intervals"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"FitConfig.{name} must be an integer >= 1, "
                                 f"got {getattr(self, name)!r}")
        for name in ("adam_steps", "lbfgs_steps", "max_resets", "neural_steps",
                     "neural_lbfgs_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"FitConfig.{name} must be an integer >= 0, "
                                 f"got {getattr(self, name)!r}")
        for name in ("lr", "neural_lr", "tol"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"FitConfig.{name} must be a positive number, got {value!r}")
        if not (math.isfinite(self.neural_weight_decay) and self.neural_weight_decay >= 0):
            raise ValueError("FitConfig.neural_weight_decay must be >= 0")
        if self.solver is not None and not isinstance(self.solver, Solver):
            raise ValueError(f"FitConfig.solver must be a solver (RK4(...), Dopri5(...), "
                             f"any registered one) or None, got {self.solver!r}")
        if self.t0 is not None and not math.isfinite(self.t0):
            raise ValueError("FitConfig.t0 must be finite or None")
        if self.max_seconds is not None and not (
                isinstance(self.max_seconds, int | float) and self.max_seconds > 0):
            raise ValueError(f"FitConfig.max_seconds must be positive or None, "
                             f"got {self.max_seconds!r}")

    def deadline(self, started: float) -> float:
        """The ``time.perf_counter()`` value past which the fit stops optimising."""
        return math.inf if self.max_seconds is None else started + float(self.max_seconds)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["solver"] = None if self.solver is None else solver_to_dict(self.solver)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitConfig:
        """The inverse of :meth:`to_dict` (unknown keys are an error, as a typo is)."""
        if not isinstance(data, Mapping):
            raise ValueError("a fit configuration must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fit setting(s) {unknown}; known: {sorted(known)}")
        given = dict(data)
        if given.get("solver") is not None:
            given["solver"] = solver_from_dict(given["solver"])
        return cls(**given)


# The settings each kind of caller starts from, in one place. They differ on purpose: one
# fit a person asked for (``mmw fit``) gets FitConfig()'s defaults; a candidate in an
# interactive search fewer starts and steps; a candidate in a bench job (several agents
# share one time budget per task) fewer still.
SEARCH_FIT = FitConfig(starts=4, adam_steps=120, lbfgs_steps=30, polish_starts=2,
                       neural_steps=200)
BENCH_FIT = FitConfig(starts=3, adam_steps=100, lbfgs_steps=30, polish_starts=1)


# ------------------------------------------------------------------------ transforms
@dataclass(frozen=True)
class ParameterTransform:
    """Maps an unconstrained number onto a prior's support (and back)."""

    name: str
    kind: str  # "log_interval" | "interval" | "lower" | "real"
    lower: float = -math.inf
    upper: float = math.inf
    loc: float = 0.0
    scale: float = 1.0

    @classmethod
    def for_prior(cls, name: str, prior: Prior) -> ParameterTransform:
        support = prior.support
        if support.kind == "interval":
            if isinstance(prior, LogUniform):
                return cls(name, "log_interval", support.lower, support.upper)
            return cls(name, "interval", support.lower, support.upper)
        if support.kind == "lower":
            return cls(name, "lower", support.lower)
        std = prior.std if isinstance(prior, Normal) else 1.0
        return cls(name, "real", loc=prior.typical, scale=float(std))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if self.kind == "log_interval":
            lo, hi = math.log(self.lower), math.log(self.upper)
            return torch.exp(lo + (hi - lo) * torch.sigmoid(u))
        if self.kind == "interval":
            return self.lower + (self.upper - self.lower) * torch.sigmoid(u)
        if self.kind == "lower":
            return self.lower + torch.exp(u)
        return self.loc + self.scale * u

    def inverse(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.kind in ("log_interval", "interval"):
            if self.kind == "log_interval":
                lo, hi = math.log(self.lower), math.log(self.upper)
                p = (np.log(x) - lo) / (hi - lo)
            else:
                p = (x - self.lower) / (self.upper - self.lower)
            p = np.clip(p, 1e-6, 1 - 1e-6)  # a start on the boundary would be at infinity
            return np.log(p) - np.log1p(-p)
        if self.kind == "lower":
            return np.log(np.maximum(x - self.lower, 1e-12))
        return (x - self.loc) / self.scale


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class FitResult:
    """What a fit found, and how well the model explains the data.

    ``to_dict()`` is JSON-ready (non-finite numbers become null); the networks' weights
    (``neural_state``) stay in memory only. ``simulate`` runs the fitted model, for
    forecasts and counterfactuals under interventions.
    """

    model_name: str
    params: dict[str, float]
    free_params: list[str]
    log_likelihood: float
    n_obs: int
    k: int
    k_neural: int
    aic: float
    bic: float
    train_residuals: dict[str, Any]
    validation_residuals: dict[str, Any] | None
    validation_log_likelihood: float | None
    validation_error: float | None
    n_validation: int
    start_losses: list[float]
    resets: int
    converged: bool
    message: str
    wall_time: float
    t0: float
    train_until: float | None
    solver: dict[str, Any]
    config: dict[str, Any]
    neural_state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False,
                                                  compare=False)
    compiled: CompiledModel | None = field(default=None, repr=False, compare=False)
    # The known inputs' schedules the data were fitted under: forecasts read them too.
    controls: Mapping[str, ControlSchedule] | None = field(default=None, repr=False,
                                                         compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "model_name", "params", "free_params", "log_likelihood", "n_obs", "k", "k_neural",
            "aic", "bic", "train_residuals", "validation_residuals",
            "validation_log_likelihood", "validation_error", "n_validation", "start_losses",
            "resets", "converged", "message", "wall_time", "t0", "train_until", "solver",
            "config")}
        return json_data(out)

    def simulate(
        self,
        t_eval: Sequence[float] | np.ndarray | torch.Tensor,
        *,
        interventions: Sequence[Intervention] = (),
        controls: Mapping[str, ControlSchedule] | None = None,
        solver: Solver | None = None,
    ) -> Simulation:
        """The fitted model on ``t_eval`` (from the fit's ``t0``), optionally under
        interventions: a forecast or a counterfactual. ``controls`` default to the
        schedules the fit was made under (the task's known inputs)."""
        if self.compiled is None:  # pragma: no cover - results are built by fit_model
            raise ModelError("this FitResult carries no compiled model")
        params = {n: torch.tensor([v], dtype=_DTYPE) for n, v in self.params.items()}
        with torch.no_grad():
            return self.compiled.simulate(params, t_eval, solver=solver or solver_from_dict(
                self.solver), interventions=interventions,
                controls=self.controls if controls is None else controls, t0=self.t0)


# -------------------------------------------------------------------------- helpers
def _data_matrix(model: Model, data: ObservedData) -> np.ndarray:
    """Data as ``[T, O]`` in the model's observable order; unobserved columns are NaN."""
    out = np.full((len(data), len(model.observable_names)), np.nan)
    for j, name in enumerate(model.observable_names):
        if name in data.values:
            out[:, j] = data.values[name]
    return out


def _auto_solver(times: np.ndarray, t0: float) -> RK4:
    grid = np.concatenate([[t0], times]) if t0 < times[0] else times
    spacing = np.diff(grid)
    if spacing.size == 0:
        return RK4(dt=0.1)
    # The median, not the minimum: one short gap (t0 just before the first sample) must not
    # slow every step; each output interval still gets at least one step.
    return RK4(dt=float(np.median(spacing)) / 4)


def _residual_summary(model: Model, times: np.ndarray, observed: np.ndarray,
                      predicted: np.ndarray, z: np.ndarray, top: int = 3) -> dict[str, Any]:
    """Per observable: size and sign of the misfit, and where it is worst (for repair)."""
    out: dict[str, Any] = {}
    for j, name in enumerate(model.observable_names):
        mask = ~np.isnan(observed[:, j])
        if not mask.any():
            continue
        y, f = observed[mask, j], predicted[mask, j]
        err = f - y
        rmse = float(np.sqrt(np.mean(err**2)))
        zs = z[mask, j]
        order = np.argsort(-np.nan_to_num(np.abs(zs), nan=np.inf))[:top]
        out[name] = {
            "n": int(mask.sum()),
            "rmse": rmse,
            "mae": float(np.mean(np.abs(err))),
            "bias": float(np.mean(err)),
            "nrmse": normalised_rmse(rmse, series_scale(y)),
            "largest": [{"t": float(times[mask][i]), "observed": float(y[i]),
                         "predicted": float(f[i]), "z": float(zs[i])} for i in order],
        }
    return out


class _Objective:
    """Negative log-likelihood per row of an unconstrained parameter batch ``[B, k]``."""

    def __init__(self, model: Model, compiled: CompiledModel, transforms: list[ParameterTransform],
                 times: np.ndarray, data: np.ndarray, solver: Solver, t0: float,
                 interventions: Sequence[Intervention],
                 controls: Mapping[str, ControlSchedule] | None) -> None:
        self.model = model
        self.compiled = compiled
        self.transforms = transforms
        self.times = times
        self.data = torch.as_tensor(data, dtype=_DTYPE)
        self.solver = solver
        self.t0 = t0
        self.interventions = list(interventions)
        self.controls = controls
        self.obs = ObservationModel(model, _DTYPE)

    def params(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        return {tr.name: tr.forward(u[:, i]) for i, tr in enumerate(self.transforms)}

    def simulate(self, u: torch.Tensor, times: np.ndarray | None = None) -> Simulation:
        params = self.params(u)
        if not params:  # no free parameters: one row of fixed values
            params = {n: torch.full((u.shape[0],), p.prior.typical, dtype=_DTYPE)
                      for n, p in self.model.params_.items()}
        return self.compiled.simulate(params, self.times if times is None else times,
                                      solver=self.solver, interventions=self.interventions,
                                      controls=self.controls, t0=self.t0)

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        sim = self.simulate(u)
        ll = self.obs.log_likelihood(sim.observables, self.data, self.params(u))
        nll = -ll
        return torch.where(sim.status == Status.OK, nll, torch.full_like(nll, math.nan))


def _sample_starts(transforms: list[ParameterTransform], priors: list[Prior], n: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Starts in unconstrained space: the priors' typical values, then prior draws."""
    columns = []
    for tr, prior in zip(transforms, priors, strict=True):
        x = prior.sample(rng, n)
        x[0] = prior.typical
        columns.append(tr.inverse(x))
    return np.stack(columns, axis=1) if columns else np.zeros((n, 0))


# ----------------------------------------------------------------------- optimisers
def _adam_multistart(objective: _Objective, u0: np.ndarray, config: FitConfig,
                     resample: Callable[[int], np.ndarray], deadline: float = math.inf
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """Adam on the sum of independent per-start losses; returns each start's best point,
    its loss, and the number of resets."""
    u = nn.Parameter(torch.as_tensor(u0, dtype=_DTYPE).clone())
    opt = torch.optim.Adam([u], lr=config.lr)
    best_u = u.detach().clone()
    best = torch.full((u.shape[0],), math.inf, dtype=_DTYPE)
    resets = torch.zeros(u.shape[0], dtype=torch.int64)
    frozen = torch.zeros(u.shape[0], dtype=torch.bool)
    history: list[float] = []
    total_resets = 0
    for _step in range(config.adam_steps):
        if time.perf_counter() > deadline and torch.isfinite(best).any():
            break
        opt.zero_grad()
        loss = objective(u)
        finite = torch.isfinite(loss.detach())
        if finite.any():
            torch.where(finite, loss, torch.zeros_like(loss)).sum().backward()
        grad = u.grad if u.grad is not None else torch.zeros_like(u)
        bad = ~finite | ~torch.isfinite(grad).all(1)
        better = ~bad & (loss.detach() < best)
        best = torch.where(better, loss.detach(), best)
        best_u[better] = u.detach()[better]
        grad[bad] = 0.0
        u.grad = grad
        redraw = bad & ~frozen & (resets < config.max_resets)
        frozen |= bad & ~redraw
        opt.step()
        with torch.no_grad():
            if redraw.any():
                rows = torch.nonzero(redraw).flatten()
                u[rows] = torch.as_tensor(resample(len(rows)), dtype=_DTYPE)
                state = opt.state[u]
                for key in ("exp_avg", "exp_avg_sq"):
                    state[key][rows] = 0.0
                resets[rows] += 1
                total_resets += len(rows)
            if frozen.any():
                u[frozen] = best_u[frozen]
        done = torch.isfinite(best)
        history.append(float(best[done].sum()) if done.any() else math.inf)
        if len(history) > config.patience and math.isfinite(history[-1]):
            old = history[-1 - config.patience]
            if old - history[-1] <= config.tol * max(1.0, abs(history[-1])):
                break
    # the last point was evaluated before its step; one more evaluation is not worth it
    return best_u.numpy(), best.numpy(), total_resets


def _shooting_multistart(objective: _Objective, plan: SegmentPlan, u0: np.ndarray,
                         data: np.ndarray, config: FitConfig,
                         resample: Callable[[int], np.ndarray], deadline: float = math.inf
                         ) -> tuple[np.ndarray, np.ndarray, int]:
    """The multi-start stage on segments (mechanistic/shooting.py), then every start's
    parameters scored by single shooting: what the polish and the ranking see is the
    likelihood of one continuous trajectory, as in the single-shooting path."""
    with torch.no_grad():
        sim0 = objective.simulate(torch.as_tensor(u0, dtype=_DTYPE))
    states0 = sim0.states.numpy()
    direct = direct_observations(objective.model)
    # Sizes from the data where a state is read directly (prior draws can be wild),
    # else the median over starts of each start's RMS along its trajectory.
    per_start = [state_scales(states0[b:b + 1]) for b in range(states0.shape[0])]
    scale = np.nanmedian(np.stack([p[0] for p in per_start]), axis=0)
    positive = np.all(np.stack([p[1] for p in per_start]), axis=0)
    for i, name in enumerate(objective.model.state_names):
        j = direct.get(name)
        if j is not None:
            column = data[:, j][np.isfinite(data[:, j])]
            if column.size:
                rms = float(np.sqrt(np.mean(column ** 2)))
                scale[i] = rms if rms > 0 else scale[i]
                positive[i] = bool(positive[i] and (column >= 0).all())
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    shooting = ShootingObjective(objective.model, objective.compiled, objective.params,
                                 len(objective.transforms), plan, objective.times, data,
                                 objective.controls, scale, positive)

    def with_states(theta: np.ndarray, states: np.ndarray) -> np.ndarray:
        starts = segment_starts(objective.model, plan, states, data)
        return np.concatenate([theta, shooting.encode_states(starts)], axis=1)

    def redraw(n: int) -> np.ndarray:
        theta = resample(n)
        with torch.no_grad():
            sim = objective.simulate(torch.as_tensor(theta, dtype=_DTYPE))
        return with_states(theta, np.nan_to_num(sim.states.numpy(), nan=0.0))

    full0 = with_states(u0, np.nan_to_num(states0, nan=0.0))
    best_u, best_loss, resets = _adam_multistart(shooting, full0, config, redraw, deadline)
    # Close the gaps: the best starts go on under a penalty ten times tighter, by L-BFGS
    # (cheap here: one segment's steps per evaluation), so that the single-shooting polish
    # starts next to a continuous trajectory rather than a chain of near misses.
    top = np.argsort(np.where(np.isfinite(best_loss), best_loss, np.inf))[
        :min(config.polish_starts, len(best_loss))]
    if config.lbfgs_steps and time.perf_counter() <= deadline:
        tight = copy.copy(shooting)
        tight.gap_tolerance = GAP_TOLERANCE / 10
        with torch.no_grad():
            before = tight(torch.as_tensor(best_u[top], dtype=_DTYPE)).numpy()
        closed, _ = _polish(tight, best_u[top], np.where(np.isfinite(before), before, np.inf),
                            config.lbfgs_steps)
        best_u = best_u.copy()
        best_u[top] = closed
    theta = np.ascontiguousarray(best_u[:, :len(objective.transforms)])
    with torch.no_grad():
        losses = objective(torch.as_tensor(theta, dtype=_DTYPE)).numpy()
    return theta, losses, resets


# A coarser RK4 step is taken when the observables it gives stay within this fraction of
# each observed series' typical size of a twice-finer reference: well below any noise a
# likelihood resolves, so the fit is the same and each evaluation is cheaper.
STEP_TOLERANCE = 1e-3


def _coarsest_step(objective: _Objective, u: np.ndarray, losses: np.ndarray,
                   data: np.ndarray) -> RK4 | None:
    """The largest of 4x and 2x the current RK4 step whose simulation of the best starts
    agrees with a reference at half the current step (``None``: keep the current one).

    The default step (a quarter of the data spacing) is chosen before anything is known
    about the dynamics; with the multi-start's parameters in hand, one cheap forward
    simulation per step size tells whether a coarser one integrates them as well."""
    solver = objective.solver
    finite = np.isfinite(losses)
    if not isinstance(solver, RK4) or not finite.any():
        return None
    rows = np.argsort(np.where(finite, losses, np.inf))[:min(2, int(finite.sum()))]
    theta = torch.as_tensor(u[rows], dtype=_DTYPE)
    scale = np.array([series_scale(data[:, j][np.isfinite(data[:, j])])
                      if np.isfinite(data[:, j]).any() else 1.0 for j in range(data.shape[1])])
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)

    def observed(step: float) -> np.ndarray:
        trial = copy.copy(objective)
        trial.solver = RK4(dt=step, divergence_threshold=solver.divergence_threshold)
        with torch.no_grad():
            sim = trial.simulate(theta)
        out = sim.observables.numpy()
        return np.where((sim.status == Status.OK).numpy()[:, None, None], out, np.nan)

    reference = observed(solver.dt / 2)
    if not np.isfinite(reference).all():
        return None
    for factor in (4, 2):
        trial = observed(solver.dt * factor)
        error = np.abs(trial - reference) / scale
        if np.isfinite(trial).all() and float(error.max()) <= STEP_TOLERANCE:
            return RK4(dt=solver.dt * factor, divergence_threshold=solver.divergence_threshold)
    return None


def _lbfgs(loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor],
           steps: int) -> None:
    """L-BFGS with strong-Wolfe line search; a non-finite loss is reported as +inf with
    zero gradient, so the line search backs off instead of stepping into NaN."""
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, max_eval=steps * 2,
                            tolerance_grad=1e-9, tolerance_change=1e-12, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn()
        if not torch.isfinite(loss):
            for p in params:
                p.grad = torch.zeros_like(p)
            return torch.tensor(math.inf, dtype=_DTYPE)
        loss.backward()
        for p in params:
            if p.grad is not None and not torch.isfinite(p.grad).all():
                p.grad = torch.nan_to_num(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
        return loss.detach()

    opt.step(closure)  # callers compare before and after and keep the better point


def _polish(objective: _Objective, u: np.ndarray, losses: np.ndarray,
            steps: int) -> tuple[np.ndarray, np.ndarray]:
    """L-BFGS on the given rows (jointly, their losses are independent); keep what improves."""
    if steps == 0 or u.shape[1] == 0:
        return u, losses
    x = nn.Parameter(torch.as_tensor(u, dtype=_DTYPE).clone())
    _lbfgs(lambda: objective(x).sum(), [x], steps)
    with torch.no_grad():
        new = objective(x).numpy()
    take = np.isfinite(new) & (new < losses)
    out_u = np.where(take[:, None], x.detach().numpy(), u)
    return out_u, np.where(take, new, losses)


def _newton(objective: _Objective, u: np.ndarray, losses: np.ndarray, steps: int,
            deadline: float) -> tuple[np.ndarray, np.ndarray]:
    """Damped Newton with batched finite differences (mechanistic/newton.py) on the
    single-shooting likelihood; forward simulations only."""
    def losses_of(points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return objective(torch.as_tensor(points, dtype=_DTYPE)).numpy()

    polished, values, _ = newton_polish(losses_of, u, losses, steps, deadline=deadline)
    return polished, values


# -------------------------------------------------------------------- neural scales
def _neural_scales(model: Model, compiled: CompiledModel, params: dict[str, torch.Tensor],
                   sim: Simulation) -> dict[str, tuple[list[float], float]]:
    """Input scale: RMS of each input along the trajectory. Output scale: the size of a
    network output that moves the dynamics (dX/dt, or the observables) by their own RMS,
    found by probing the right-hand side with a constant in place of the network."""
    constants = {sp.Symbol(c.name): c.value for c in model.constants_.values()}
    env: dict[str, Any] = {n: v[:, None] for n, v in params.items()}
    env["t"] = sim.t.to(_DTYPE)
    for i, name in enumerate(sim.state_names):
        env[name] = sim.states[..., i]
    for name, control in model.controls_.items():
        env[name] = control.default
    probe: dict[str, float] = {}

    def fake(name: str, inputs: Sequence[Any]) -> torch.Tensor:
        shapes = [x.shape for x in inputs if isinstance(x, torch.Tensor)]
        shape = torch.broadcast_shapes(*shapes) if shapes else ()
        return torch.full(shape, probe.get(name, 0.0), dtype=_DTYPE)

    rhs = model.rhs()
    dyn = compile_program([rhs[s] for s in model.state_names], fake, constants)
    obs = compile_program([o.expr for o in model.observables_.values()], fake, constants)
    scales = {}
    for name, term in model.neural_.items():
        inputs = compile_program(list(term.inputs), fake, constants)(env)
        in_scale = []
        for x in inputs:
            v = torch.as_tensor(x, dtype=_DTYPE)
            v = v[torch.isfinite(v)]
            rms = float(v.pow(2).mean().sqrt()) if v.numel() else 1.0
            in_scale.append(rms if rms > 0 else 1.0)
        ratios = []
        for program in (dyn, obs):
            probe.clear()
            base = program(env)
            delta = 1e-4
            probe[name] = delta
            moved = program(env)
            probe.clear()
            for b, m in zip(base, moved, strict=True):
                b_t, m_t = torch.as_tensor(b, dtype=_DTYPE), torch.as_tensor(m, dtype=_DTYPE)
                sens = ((m_t - b_t) / delta).abs()
                size = b_t.abs()
                ok = torch.isfinite(sens) & torch.isfinite(size)
                s_rms = float(sens[ok].pow(2).mean().sqrt()) if ok.any() else 0.0
                f_rms = float(size[ok].pow(2).mean().sqrt()) if ok.any() else 0.0
                if s_rms > 0 and f_rms > 0:
                    ratios.append(f_rms / s_rms)
        scales[name] = (in_scale, float(np.median(ratios)) if ratios else 1.0)
    return scales


def _train_joint(objective: _Objective, u0: np.ndarray, networks: nn.ModuleDict,
                 config: FitConfig, deadline: float = math.inf) -> tuple[np.ndarray, float]:
    """Phase 2: mechanistic parameters and networks together from the skeleton fit."""
    u = nn.Parameter(torch.as_tensor(u0, dtype=_DTYPE).clone())
    weights = [p for p in networks.parameters() if p.requires_grad]
    decay = [p for n, p in networks.named_parameters() if p.requires_grad and "weight" in n]
    # One step size for both: the skeleton fit sits in a sharp optimum that the usual
    # multi-start step would throw it out of. Warm up so the first Adam steps (which move
    # every coordinate by about the step size, whatever its gradient) stay small.
    groups: list[dict[str, Any]] = [{"params": weights}]
    if u.shape[1]:
        groups.append({"params": [u]})
    opt = torch.optim.Adam(groups, lr=config.neural_lr)
    warmup, shrink = 25, 1.0

    def penalty() -> torch.Tensor:
        return config.neural_weight_decay * sum((p * p).sum() for p in decay)

    def snapshot() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return u.detach().clone(), copy.deepcopy(networks.state_dict())

    best_loss, best_state = math.inf, snapshot()
    history: list[float] = []
    for step in range(config.neural_steps):
        if time.perf_counter() > deadline:
            break
        for group in opt.param_groups:
            group["lr"] = config.neural_lr * shrink * min(1.0, (step + 1) / warmup)
        opt.zero_grad()
        nll = objective(u).sum()
        loss = nll + penalty()
        grads_ok = False
        if torch.isfinite(loss):
            loss.backward()
            grads_ok = all(torch.isfinite(p.grad).all() for p in [u, *weights]
                           if p.grad is not None)
        if not grads_ok:  # roll back to the best point and take smaller steps
            u_best, net_best = best_state
            with torch.no_grad():
                u.copy_(u_best)
            networks.load_state_dict(net_best)
            shrink *= 0.5
            opt.state.clear()
            continue
        if float(loss.detach()) < best_loss:
            best_loss, best_state = float(loss.detach()), snapshot()
        opt.step()
        history.append(best_loss)
        if len(history) > config.patience:
            old = history[-1 - config.patience]
            if old - best_loss <= config.tol * max(1.0, abs(best_loss)):
                break
    u_best, net_best = best_state
    with torch.no_grad():
        u.copy_(u_best)
    networks.load_state_dict(net_best)
    if config.neural_lbfgs_steps and time.perf_counter() <= deadline:
        _lbfgs(lambda: objective(u).sum() + penalty(), [u, *weights], config.neural_lbfgs_steps)
        with torch.no_grad():
            after = float(objective(u).sum() + penalty())
        if math.isfinite(after) and after < best_loss:
            best_loss = after
        else:
            with torch.no_grad():
                u.copy_(u_best)
            networks.load_state_dict(net_best)
    return u.detach().numpy(), best_loss


# ------------------------------------------------------------------------------ fit
def fit_model(
    model: Model,
    data: ObservedData,
    config: FitConfig | None = None,
    train_until: float | None = None,
    neural: nn.ModuleDict | None = None,
    *,
    interventions: Sequence[Intervention] = (),
    controls: Mapping[str, ControlSchedule] | None = None,
) -> FitResult:
    """Maximum-likelihood fit of ``model`` to ``data`` under its declared noise.

    ``train_until`` holds out the rows after it as a validation window. ``neural``
    supplies networks for the model's neural terms (trained in place); by default fresh
    ones are built. ``interventions``/``controls`` describe conditions the data were
    observed under. See the module docstring for the method.

    The stages, one function each: :func:`_problem` (data checks, the compiled model and
    the transforms), :func:`_fit_parameters` (phase 1: the multi-start and the polish,
    networks held fixed), :func:`_fit_networks` (phase 2, hybrids only) and
    :func:`_fit_result` (the scores on the training and validation windows).
    """
    config = config or FitConfig()
    started = time.perf_counter()
    problem = _problem(model, data, config, train_until, neural, interventions, controls)
    rng = np.random.default_rng(config.seed)
    trainable = [p for p in problem.networks.parameters() if p.requires_grad]
    phase1 = _fit_parameters(problem, config, rng, trainable, started)
    u_best, message = phase1.u_best, phase1.message
    objective = phase1.objective
    k_neural = sum(p.numel() for p in trainable)
    if trainable and config.neural_steps:
        u_best, joint = _fit_networks(problem, objective, u_best, config, started)
        message += f"; networks trained jointly from the best skeleton fit (loss {joint:.6g})"
    return _fit_result(problem, objective, u_best, config, phase1, message, k_neural,
                       started)


@dataclass(frozen=True)
class _Problem:
    """What every stage of one fit shares: the data in the model's observable order, the
    start of the simulation, the compiled model and its networks, and the free
    parameters' priors and transforms."""

    model: Model
    data: ObservedData
    train: ObservedData
    valid: ObservedData | None
    train_until: float | None
    y_train: np.ndarray
    y_all: np.ndarray
    n_obs: int
    t0: float
    compiled: CompiledModel
    skeleton: CompiledModel | None
    fresh_networks: bool
    free: list[str]
    priors: list[Prior]
    transforms: list[ParameterTransform]
    interventions: Sequence[Intervention]
    controls: Mapping[str, ControlSchedule] | None

    @property
    def networks(self) -> nn.ModuleDict:
        return self.compiled.neural

    def objectives(self, solver: Solver) -> tuple[_Objective, _Objective]:
        """The likelihood, and the one phase 1 fits: fresh networks output exactly 0, so
        the skeleton skips their cost."""
        full = _Objective(self.model, self.compiled, self.transforms, self.train.t,
                          self.y_train, solver, self.t0, self.interventions, self.controls)
        if self.skeleton is None:
            return full, full
        return full, _Objective(self.model, self.skeleton, self.transforms, self.train.t,
                                self.y_train, solver, self.t0, self.interventions,
                                self.controls)


def _problem(model: Model, data: ObservedData, config: FitConfig, train_until: float | None,
             neural: nn.ModuleDict | None, interventions: Sequence[Intervention],
             controls: Mapping[str, ControlSchedule] | None) -> _Problem:
    """The data checked against the model (DataError for what cannot be fitted) and the
    model compiled, before any optimisation."""
    data.check_columns(model.observable_names)
    train, valid = data.split(train_until) if train_until is not None else (data, None)
    y_train = _data_matrix(model, train)
    y_all = _data_matrix(model, data)
    n_obs = int((~np.isnan(y_train)).sum())
    if n_obs == 0:
        raise DataError(f"{data.source or 'data'}: no observed values to fit in the training "
                        f"window (every cell is missing)")
    check_data_support(model, y_all)
    t0 = float(data.t[0]) if config.t0 is None else float(config.t0)
    if t0 > data.t[0]:
        raise DataError(f"FitConfig.t0={t0:g} is after the first data time {data.t[0]:g}")
    fresh_networks = neural is None
    compiled = compile_model(model, neural=neural, dtype=_DTYPE, seed=config.seed)
    free = model.free_param_names
    priors = [model.params_[n].prior for n in free]
    transforms = [ParameterTransform.for_prior(n, p) for n, p in zip(free, priors, strict=True)]
    skeleton = CompiledModel(model, neural=compiled.neural, dtype=_DTYPE, skeleton=True) \
        if fresh_networks and model.neural_ else None
    return _Problem(model, data, train, valid, train_until, y_train, y_all, n_obs, t0,
                    compiled, skeleton, fresh_networks, free, priors, transforms,
                    interventions, controls)


@dataclass(frozen=True)
class _Phase1:
    """Phase 1's outcome: every start's final point and loss (the polished ones replaced),
    the best start, the solver it settled on and the objective under that solver."""

    starts_u: np.ndarray
    start_losses: np.ndarray
    resets: int
    u_best: np.ndarray
    agreeing: int
    message: str
    solver: Solver
    objective: _Objective


def _fit_parameters(problem: _Problem, config: FitConfig, rng: np.random.Generator,
                    trainable: list[nn.Parameter], started: float) -> _Phase1:
    """Phase 1: the multi-start (on segments where the data allow, else single shooting)
    and the polish of the best starts, with the networks held fixed (their gradients off,
    so failed rows cannot NaN them). ModelError when no start has a finite likelihood."""
    model, transforms, priors = problem.model, problem.transforms, problem.priors
    solver = config.solver or _auto_solver(problem.train.t, problem.t0)
    objective, phase1 = problem.objectives(solver)

    def resample(n: int) -> np.ndarray:
        draws = _sample_starts(transforms, priors, n + 1, rng)
        return draws[1:]

    for p in trainable:
        p.requires_grad_(False)
    try:
        u0 = _sample_starts(transforms, priors, config.starts, rng)
        plan = None
        if config.strategy == "shooting" and transforms and config.adam_steps and \
                not problem.interventions and (problem.fresh_networks or not model.neural_) \
                and isinstance(solver, RK4):
            plan = plan_segments(model, problem.train.t, problem.t0, solver.dt,
                                 problem.controls, config.shooting_segments,
                                 config.shooting_min_intervals)
        if plan is not None:
            starts_u, start_losses, resets = _shooting_multistart(
                phase1, plan, u0, problem.y_train, config, resample, config.deadline(started))
        elif transforms and config.adam_steps:
            starts_u, start_losses, resets = _adam_multistart(phase1, u0, config, resample,
                                                              config.deadline(started))
        else:
            with torch.no_grad():
                start_losses = phase1(torch.as_tensor(u0, dtype=_DTYPE)).numpy()
            starts_u, resets = u0, 0
        start_losses = np.where(np.isfinite(start_losses), start_losses, np.inf)
        if plan is not None and config.solver is None:
            # The cheapest step that keeps the fitted trajectories (see _coarsest_step)
            coarse = _coarsest_step(phase1, starts_u, start_losses, problem.y_train)
            if coarse is not None:
                solver = coarse
                objective, phase1 = problem.objectives(solver)
                with torch.no_grad():
                    start_losses = phase1(torch.as_tensor(starts_u, dtype=_DTYPE)).numpy()
                start_losses = np.where(np.isfinite(start_losses), start_losses, np.inf)
        top = np.argsort(start_losses)[:min(config.polish_starts, config.starts)]
        late = time.perf_counter() > config.deadline(started)
        if plan is not None and len(transforms) <= MAX_NEWTON_PARAMS:
            polished_u, polished = _newton(phase1, starts_u[top], start_losses[top],
                                           0 if late else config.lbfgs_steps,
                                           config.deadline(started))
        else:
            polished_u, polished = _polish(phase1, starts_u[top], start_losses[top],
                                           0 if late else config.lbfgs_steps)
    finally:
        for p in trainable:
            p.requires_grad_(True)
    start_losses = start_losses.copy()
    start_losses[top] = polished
    starts_u = starts_u.copy()
    starts_u[top] = polished_u
    best = int(np.argmin(start_losses))
    if not np.isfinite(start_losses[best]):
        raise ModelError(f"fit failed: every start of {model.name!r} gave a non-finite "
                         f"likelihood (simulation diverged or predictions impossible under "
                         f"the noise model); check the priors and the data scale")
    agreeing = _agreeing_starts(start_losses)
    message = (f"best of {config.starts} starts; {agreeing} within 0.5 log-likelihood units "
               f"of the best; {resets} start(s) re-drawn after non-finite losses")
    return _Phase1(starts_u, start_losses, int(resets), starts_u[best:best + 1], agreeing,
                   message, solver, objective)


def _fit_networks(problem: _Problem, objective: _Objective, u_best: np.ndarray,
                  config: FitConfig, started: float) -> tuple[np.ndarray, float]:
    """Phase 2 (hybrids): fresh networks get their scales from the best skeleton fit's
    trajectory, then networks and parameters are trained jointly (:func:`_train_joint`)."""
    compiled, networks = problem.compiled, problem.networks
    if problem.fresh_networks:
        with torch.no_grad():
            u_t = torch.as_tensor(u_best, dtype=_DTYPE)
            sim = objective.simulate(u_t)
            table = compiled.param_table(objective.params(u_t) or {}, batch=1)
        for name, (ins, out) in _neural_scales(problem.model, compiled, table, sim).items():
            networks[name].set_scales(ins, out)  # type: ignore[operator]
    return _train_joint(objective, u_best, networks, config, config.deadline(started))


def _fit_result(problem: _Problem, objective: _Objective, u_best: np.ndarray,
                config: FitConfig, phase1: _Phase1, message: str, k_neural: int,
                started: float) -> FitResult:
    """The fitted point scored: the likelihood on the training window (what was
    maximised), residual summaries on both windows, the validation likelihood and
    error, information criteria, and whether the fit converged."""
    model, data, y_all = problem.model, problem.data, problem.y_all
    train_until = problem.train_until
    with torch.no_grad():
        u_t = torch.as_tensor(u_best, dtype=_DTYPE)
        free_values = objective.params(u_t)
        nll_train = float(objective(u_t)[0])
        sim_all = objective.simulate(u_t, data.t)
        point = objective.obs.pointwise(sim_all.observables, torch.as_tensor(y_all), free_values)
        z = objective.obs.residuals(sim_all.observables, torch.as_tensor(y_all), free_values)
    predicted = sim_all.observables[0].numpy()
    z_np = z[0].numpy()
    is_train = data.t <= (train_until if train_until is not None else math.inf)
    ll = -nll_train
    k = len(problem.free)
    k_total = k + k_neural
    table = {n: float(v[0]) for n, v in
             problem.compiled.param_table(free_values or {}, 1).items()}
    train_res = _residual_summary(model, data.t[is_train], y_all[is_train], predicted[is_train],
                                  z_np[is_train])
    valid_res = valid_ll = valid_err = None
    n_valid = 0
    if problem.valid is not None:
        mask = ~is_train
        n_valid = int((~np.isnan(y_all[mask])).sum())
        valid_res = _residual_summary(model, data.t[mask], y_all[mask], predicted[mask],
                                      z_np[mask])
        valid_ll = float(point[0][torch.as_tensor(mask)].sum())
        nrmse = [v["nrmse"] for v in valid_res.values()]
        valid_err = float(np.mean(nrmse)) if nrmse else None
    converged = bool(np.isfinite(ll) and phase1.agreeing >= min(2, config.starts))
    if time.perf_counter() > config.deadline(started):
        message += f"; stopped at the fit's time limit ({config.max_seconds:g} s)"
        converged = False
    return FitResult(
        model_name=model.name,
        params=table,
        free_params=problem.free,
        log_likelihood=ll,
        n_obs=problem.n_obs,
        k=k,
        k_neural=k_neural,
        aic=2 * k_total - 2 * ll,
        bic=k_total * math.log(problem.n_obs) - 2 * ll,
        train_residuals=train_res,
        validation_residuals=valid_res,
        validation_log_likelihood=valid_ll,
        validation_error=valid_err,
        n_validation=n_valid,
        start_losses=[float(x) for x in phase1.start_losses],
        resets=phase1.resets,
        converged=converged,
        message=message,
        wall_time=time.perf_counter() - started,
        t0=problem.t0,
        train_until=train_until,
        solver=solver_to_dict(phase1.solver),
        config=config.to_dict(),
        neural_state={k_: v.detach().clone()
                      for k_, v in problem.networks.state_dict().items()},
        compiled=problem.compiled,
        controls=dict(problem.controls) if problem.controls else None,
    )


def _agreeing_starts(losses: np.ndarray, tol: float = 0.5) -> int:
    """Starts whose final negative log-likelihood is within ``tol`` of the best: two or
    more independent starts reaching the same optimum is the practical sign of convergence
    to the global maximum rather than a local one."""
    finite = losses[np.isfinite(losses)]
    if finite.size == 0:
        return 0
    return int((finite <= finite.min() + tol).sum())
