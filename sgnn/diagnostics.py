"""Is the SGNN trustworthy? Coverage, parameter recovery, and maximum likelihood as referee.

* ``calibration``: on held-out simulations (a seed of their own), how often the 50% and
  90% intervals contain the truth, for forecasts (against the noisy future points, which
  is what a forecast interval promises) and for parameters (in the unconstrained space
  of the sample's own structure); plus the median's recovery error and structure accuracy.
* ``batched_mle`` / ``compare_with_mle``: the classical route on the same series:
  maximum likelihood under the declared noise for every structure, choose by AIC. Fits
  run batched (all series and starts of one structure in one simulator call), because
  hundreds of separate fits would take hours; the likelihood is the model language's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mechanistic.fit import ParameterTransform
from mechanistic.model import Model
from mechanistic.observation import ObservationModel
from mechanistic.simulate import RK4, compile_model
from sgnn.corpus import Batch
from sgnn.train import Checkpoint

__all__ = ["MLEResult", "batched_mle", "calibration", "compare_with_mle", "held_out"]

HELD_OUT_SEED = 424_242


def held_out(checkpoint: Checkpoint, n: int, seed: int = HELD_OUT_SEED) -> Batch:
    """``n`` simulations the network never trained on (a seed of their own)."""
    return checkpoint.corpus.batch(n, rng=np.random.default_rng(seed))


def _outputs(checkpoint: Checkpoint, batch: Batch, chunk: int = 1024) -> dict[str, torch.Tensor]:
    net = checkpoint.network
    net.eval()
    parts: list[dict[str, torch.Tensor]] = []
    with torch.no_grad():
        for lo in range(0, len(batch), chunk):
            parts.append(net(batch.context[lo:lo + chunk], batch.mask[lo:lo + chunk]))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def calibration(checkpoint: Checkpoint, n: int = 2000, seed: int = HELD_OUT_SEED
                ) -> dict[str, Any]:
    """``n`` and each configured head's entries (:meth:`sgnn.heads.Head.calibrate`, in the
    network's head order): for the built-ins, coverage of the 50%/90% forecast and
    parameter intervals, the parameters' recovery error and structure accuracy."""
    batch = held_out(checkpoint, n, seed)
    out = _outputs(checkpoint, batch)
    net, corpus = checkpoint.network, checkpoint.corpus
    report: dict[str, Any] = {"n": n}
    for head in net.heads:
        report.update(head.calibrate(out[head.key], batch, net.config, corpus))
    return report


@dataclass
class MLEResult:
    """Best fit per series: parameters ``[N, P]``, log-likelihood and AIC ``[N]``.

    ``agreeing [N]`` counts the starts that ended within 0.5 log-likelihood units of the
    best one: with several starts agreeing, the optimum is probably global; with one
    alone it may be luck (or the others stuck), and AIC on it deserves less trust.
    """

    params: np.ndarray
    log_likelihood: np.ndarray
    aic: np.ndarray
    names: list[str]
    agreeing: np.ndarray | None = None

    @property
    def converged_fraction(self) -> float:
        """Share of series whose best optimum at least two starts reached."""
        return float("nan") if self.agreeing is None else float((self.agreeing >= 2).mean())


def batched_mle(model: Model, times: np.ndarray, data: np.ndarray, *, starts: int = 6,
                steps: int = 250, lr: float = 0.08, solver_dt: float = 0.5, t0: float = 0.0,
                seed: int = 0, observables: list[str] | None = None, screen: int = 0,
                screen_steps: int = 60) -> MLEResult:
    """Maximum likelihood of ``model`` for each series in ``data [N, T, O]`` (NaN = missing).

    ``observables`` names the data's columns (default: the model's observables in order).
    Multi-start Adam in the unconstrained space of the priors' supports (the transforms
    ``mechanistic.fit`` uses), all series x starts in one batched, differentiable
    simulation. AIC = 2k - 2 log L with k the number of free parameters.

    ``screen > starts`` first runs ``screen`` starts per series for ``screen_steps`` steps
    and keeps the ``starts`` best of them for the ``steps`` that follow: epidemic
    likelihoods have ridges and plateaus (an outbreak that never takes off, a peak in the
    wrong week) where a start can idle, and a wide, cheap screen finds the basin of the
    global optimum far more often than a few long runs do.
    """
    torch_dtype = torch.float64
    compiled = compile_model(model, dtype=torch_dtype)
    noise = ObservationModel(model, dtype=torch_dtype)
    names = model.free_param_names
    transforms = [ParameterTransform.for_prior(n, model.params_[n].prior) for n in names]
    rng = np.random.default_rng(seed)
    n_series = data.shape[0]
    pool = max(screen, starts)
    u0 = np.stack([tr.inverse(model.params_[n].prior.sample(rng, n_series * pool))
                   for n, tr in zip(names, transforms, strict=True)], axis=1)
    # The data as the model's observables (absent columns all missing), one row per start.
    full = np.full(data.shape[:2] + (len(model.observable_names),), np.nan)
    for j, name in enumerate(observables or model.observable_names):
        full[..., model.observable_names.index(name)] = data[..., j]
    y_series = torch.as_tensor(full, dtype=torch_dtype)
    n_points = max(1, int((~torch.isnan(y_series)).sum()))
    solver = RK4(solver_dt)

    def loglik(u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        params = {n: tr.forward(u[:, i]) for i, (n, tr) in enumerate(zip(names, transforms,
                                                                       strict=True))}
        sim = compiled.simulate(params, times, solver=solver, t0=t0)
        total = noise.log_likelihood(sim.observables, y, params)
        return torch.where(torch.isfinite(total), total, torch.full_like(total, -1e12))

    def climb(u0: torch.Tensor, k: int, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_steps`` of Adam from ``u0 [N * k, P]``; final parameters and log L [N, k]."""
        u = u0.clone().requires_grad_(True)
        y = y_series.repeat_interleave(k, dim=0)
        opt = torch.optim.Adam([u], lr=lr)
        # Large steps to travel, small ones to settle: the final AIC needs the optimum.
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, n_steps),
                                                           eta_min=lr / 50)
        for _ in range(n_steps):
            loss = -loglik(u, y).sum() / n_points
            opt.zero_grad()
            loss.backward()
            if u.grad is not None:
                u.grad.nan_to_num_(0.0)
            opt.step()
            sched.step()
            with torch.no_grad():
                u.clamp_(-12, 12)
        with torch.no_grad():
            return u.detach(), loglik(u, y).reshape(n_series, k)

    u = torch.tensor(u0, dtype=torch_dtype)
    if pool > starts:
        u, ll = climb(u, pool, screen_steps)
        keep = ll.argsort(dim=1, descending=True)[:, :starts]          # [N, starts]
        u = u.reshape(n_series, pool, -1)[torch.arange(n_series)[:, None], keep]
        u = u.reshape(n_series * starts, -1)
    u, ll = climb(u, starts, steps)
    best = ll.argmax(dim=1)
    best_u = u.reshape(n_series, starts, -1)[torch.arange(n_series), best]
    natural = np.stack([tr.forward(best_u[:, i]).numpy() for i, tr in enumerate(transforms)],
                       axis=1) if names else np.zeros((n_series, 0))
    best_ll = ll[torch.arange(n_series), best].numpy()
    agreeing = (ll >= ll.max(dim=1, keepdim=True).values - 0.5).sum(dim=1).numpy()
    return MLEResult(natural, best_ll, 2 * len(names) - 2 * best_ll, names, agreeing)


def compare_with_mle(checkpoint: Checkpoint, n: int = 60, seed: int = HELD_OUT_SEED,
                     **mle: Any) -> dict[str, Any]:
    """Structure misclassification of the SGNN and of AIC over ML fits, same series.

    The ML fits see the context window on the simulator's clock (assuming no offset and
    no delay; the corpus should set ``max_offset=0`` for a fair comparison).
    """
    batch = held_out(checkpoint, n, seed)
    corpus = checkpoint.corpus
    cfg = corpus.config
    out = _outputs(checkpoint, batch)
    sgnn_choice = out["logits"].argmax(-1).numpy()
    times = cfg.dt * (cfg.max_delay + np.arange(cfg.n_context))
    data = np.where(batch.mask.numpy() > 0, batch.context.numpy(), np.nan)
    aics, converged = [], {}
    for name, model in zip(corpus.names, corpus.models, strict=True):
        fit = batched_mle(model, times, data, solver_dt=cfg.solver_dt,
                          observables=corpus.observables, **mle)
        aics.append(fit.aic)
        converged[name] = fit.converged_fraction
    aic = np.stack(aics, axis=1)
    aic = np.where(np.isfinite(aic), aic, math.inf)
    aic_choice = aic.argmin(axis=1)
    truth = batch.structure.numpy()
    k = len(corpus.names)
    return {
        "n": n,
        "structures": corpus.names,
        "sgnn_error": float((sgnn_choice != truth).mean()),
        "aic_error": float((aic_choice != truth).mean()),
        "sgnn_confusion": _confusion(truth, sgnn_choice, k),
        "aic_confusion": _confusion(truth, aic_choice, k),
        "mle_starts_agree_fraction": converged,
    }


def _confusion(truth: np.ndarray, choice: np.ndarray, k: int) -> list[list[int]]:
    """Rows: true structure; columns: chosen structure."""
    m = np.zeros((k, k), dtype=int)
    for t, c in zip(truth, choice, strict=True):
        m[t, c] += 1
    return m.tolist()
