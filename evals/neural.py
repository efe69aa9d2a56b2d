"""A purely neural forecaster: the baseline that shows what a mechanism buys.

An autoregressive MLP predicts the next row of every observed column from the last ``L``
rows (on an ``asinh`` scale, so counts spanning decades and the odd negative reading are
both fine), from the study's known inputs over the same lags (exogenous channels built
from ``task.conditions``: dose amounts landing in each interval, treatment schedules as
their value while active) and from time. There is no state, no conservation, no
parameter with a meaning; it is a small ensemble trained only on rows
``t <= train_until``, with the validation rows ``(train_until, validate_until]`` used for
early stopping by multi-step rollout error. The test rows are never read.

Forecast: one-step-ahead predictions up to ``validate_until`` (in-sample, like a fitted
mechanistic model's trajectory there), then a free rollout through the test window.

Counterfactuals, and why this is **generous** to the baseline: where the true
intervention is a change to one of the input channels the network was trained with (an
extra or larger dose on a dosed compartment, a changed treatment window), the changed
inputs are fed in; the network gets the ground-truth intervention, which no search agent
does (they must translate the question themselves). The answer is the factual forecast
plus the difference between two rollouts from just before the intervention (changed
minus unchanged inputs), so the network's own rollout drift cancels. Where the
intervention acts on something the network has no input for (vaccination moving people
between hidden states, a changed contact rate), it has no handle and answers with its
unintervened forecast: an effect of zero. That is the point of the baseline, so it is
documented in every outcome's ``detail``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from evals.agents import AgentOutcome, Budget, failed
from mechanistic.interventions import Dose, Infusion, Intervention, Scale, SetValue, Transfer
from sandbox.spec import Sandbox

if TYPE_CHECKING:
    from evals.task import BenchTask

__all__ = ["NeuralAgent", "NeuralConfig", "input_channels"]


@dataclass(frozen=True)
class NeuralConfig:
    """Size and training of the forecaster; small on purpose (two shared CPU cores)."""

    lags: int = 6
    hidden: int = 32
    members: int = 3             # ensemble members (different initialisations), averaged
    epochs: int = 1500
    lr: float = 0.01
    weight_decay: float = 1e-4
    check_every: int = 25        # epochs between validation rollouts (early stopping)
    patience: int = 400          # epochs without a better validation rollout before stopping

    def __post_init__(self) -> None:
        for name in ("lags", "hidden", "members", "epochs", "check_every", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"NeuralConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"NeuralConfig.{name} must be >= 0, got {value!r}")


# ------------------------------------------------------------------ input channels
def _key(item: Intervention) -> str:
    if isinstance(item, Dose):
        return f"dose:{item.state}"
    if isinstance(item, SetValue | Scale):
        return f"{item.kind}:{item.target}"
    if isinstance(item, Transfer):
        return f"transfer:{item.source}->{item.target}"
    if isinstance(item, Infusion):
        return f"infusion:{item.target}"
    return f"{item.kind}:?"  # pragma: no cover - the kinds above are all there are


def _add(channels: dict[str, np.ndarray], item: Intervention, times: np.ndarray,
         override: bool) -> None:
    """Write ``item`` into its channel: dose amounts landing in each interval
    ``(t[k-1], t[k]]``; windowed interventions as their strength while active."""
    row = channels[_key(item)]
    if isinstance(item, Dose):
        edges = np.concatenate([[-np.inf], times])
        for when in item.times:
            k = int(np.searchsorted(edges, when, side="left")) - 1
            if 0 <= k < len(times):
                row[k] += item.amount
        return
    active = np.array([item.active(float(t)) for t in times])
    if isinstance(item, SetValue):
        strength = item.value
    elif isinstance(item, Scale):
        strength = item.factor - 1.0   # no change reads as 0, like an absent treatment
    else:
        strength = item.rate  # type: ignore[attr-defined]
    if override:
        row[active] = strength
    else:
        row[active] += strength


def input_channels(conditions: Sequence[Intervention], times: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """The study's known inputs as one channel per (kind, target), on ``times``."""
    channels: dict[str, np.ndarray] = {}
    for item in conditions:
        channels.setdefault(_key(item), np.zeros(len(times)))
        _add(channels, item, times, override=False)
    return channels


def _with_changes(channels: dict[str, np.ndarray], items: Sequence[Intervention],
                  times: np.ndarray) -> tuple[dict[str, np.ndarray], list[Intervention]]:
    """The channels under ``items``; returns them and the items that had a handle."""
    out = {k: v.copy() for k, v in channels.items()}
    used = []
    for item in items:
        if _key(item) in out:
            _add(out, item, times, override=isinstance(item, SetValue | Scale))
            used.append(item)
    return out, used


def _first_effect(items: Sequence[Intervention]) -> float:
    return min(min(i.times) if isinstance(i, Dose) else i.start for i in items)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- model
class _Forecaster:
    """The trained ensemble and everything needed to roll it out on the task's grid."""

    def __init__(self, config: NeuralConfig, times: np.ndarray, z: np.ndarray,
                 exog: np.ndarray, n_train: int, n_fit: int, seed: int) -> None:
        self.config, self.times, self.z, self.exog = config, times, z, exog
        self.n_train, self.n_fit = n_train, n_fit    # rows t <= train_until, <= validate_until
        span = float(times[n_fit - 1] - times[0]) or 1.0
        self.tau = (times - times[0]) / span
        self.ncol = z.shape[1]
        finite = z[:n_fit][np.isfinite(z[:n_fit])]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
        # A rollout may not leave the range seen in training by more than a factor e (on
        # the asinh scale, about log-scale for large values): an autoregressive net
        # trained on a growth phase extrapolates growth forever, and a bound is what any
        # practitioner would put on it. Without it, errors of 10^3 dominated the means.
        self.clip = (lo - 1.0, hi + 1.0)
        self.filled = _ffill(z)
        self.members = [self._train(seed * 101 + m) for m in range(config.members)]

    def _features(self, hist: np.ndarray, exog: np.ndarray, k: int) -> np.ndarray:
        """Inputs to predict row ``k + 1`` from rows ``<= k`` (padded at the start)."""
        lags = self.config.lags
        idx = np.clip(np.arange(k - lags + 1, k + 1), 0, None)
        past = hist[idx].ravel()
        ex = exog[np.clip(idx + 1, 0, len(exog) - 1)].ravel()
        return np.concatenate([past, ex, [self.tau[k + 1]]])

    def _dataset(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows, targets, mask = [], [], []
        for k in range(self.n_train - 1):
            target = self.z[k + 1]
            if not np.isfinite(target).any():
                continue
            rows.append(self._features(self.filled, self.exog, k))
            targets.append(np.nan_to_num(target - self.filled[k]))
            mask.append(np.isfinite(target))
        return (torch.tensor(np.array(rows)), torch.tensor(np.array(targets)),
                torch.tensor(np.array(mask), dtype=torch.float64))

    def _train(self, seed: int) -> nn.Module:
        cfg = self.config
        torch.manual_seed(seed)
        x, y, w = self._dataset()
        net = nn.Sequential(nn.Linear(x.shape[1], cfg.hidden), nn.Tanh(),
                            nn.Linear(cfg.hidden, cfg.hidden), nn.Tanh(),
                            nn.Linear(cfg.hidden, self.ncol)).double()
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best, best_state, since = math.inf, None, 0
        for epoch in range(cfg.epochs):
            opt.zero_grad()
            loss = (((net(x) - y) ** 2) * w).sum() / w.sum().clamp(min=1.0)
            loss.backward()
            opt.step()
            if (epoch + 1) % cfg.check_every == 0 or epoch == cfg.epochs - 1:
                score = self._validation_error(net) if self.n_fit > self.n_train \
                    else float(loss.detach())
                if score < best:
                    best, since = score, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    since += cfg.check_every
                    if since >= cfg.patience:
                        break
        if best_state is not None:
            net.load_state_dict(best_state)
        return net

    def _validation_error(self, net: nn.Module) -> float:
        """Rollout from the last training row through the validation rows (the job the
        network is trained for is multi-step, so that is what early stopping watches)."""
        z = self._rollout([net], self.exog, self.n_train - 1, self.n_fit)
        target = self.z[self.n_train:self.n_fit]
        ok = np.isfinite(target)
        if not ok.any():
            return math.inf
        return float(np.mean((z[self.n_train:self.n_fit][ok] - target[ok]) ** 2))

    def _step(self, nets: Sequence[nn.Module], hist: np.ndarray, exog: np.ndarray,
              k: int) -> np.ndarray:
        x = torch.tensor(self._features(hist, exog, k))[None]
        with torch.no_grad():
            delta = torch.stack([net(x)[0] for net in nets]).mean(0).numpy()
        return np.clip(hist[k] + delta, *self.clip)

    def _rollout(self, nets: Sequence[nn.Module], exog: np.ndarray, start: int,
                 end: int | None = None) -> np.ndarray:
        """Rows ``start + 1 ..`` predicted from predictions; rows ``<= start`` observed."""
        end = len(self.times) if end is None else end
        hist = self.filled.copy()
        for k in range(start, end - 1):
            hist[k + 1] = self._step(nets, hist, exog, k)
        return hist

    def forecast(self) -> np.ndarray:
        """One-step-ahead up to ``validate_until``, then a free rollout."""
        out = self._rollout(self.members, self.exog, self.n_fit - 1)
        for k in range(self.n_fit - 1):
            out[k + 1] = self._step(self.members, self.filled, self.exog, k)
        return out

    def effect(self, exog: np.ndarray, start: int) -> np.ndarray:
        """Changed-input rollout minus unchanged-input rollout, both from row ``start``."""
        return (self._rollout(self.members, exog, start)
                - self._rollout(self.members, self.exog, start))


def _ffill(z: np.ndarray) -> np.ndarray:
    out = z.copy()
    for c in range(out.shape[1]):
        col = out[:, c]
        finite = np.flatnonzero(np.isfinite(col))
        if finite.size == 0:
            col[:] = 0.0
            continue
        col[:finite[0]] = col[finite[0]]
        for k in range(1, len(col)):
            if not np.isfinite(col[k]):
                col[k] = col[k - 1]
    return out


# --------------------------------------------------------------------------- agent
@dataclass(frozen=True)
class NeuralAgent:
    """The ``neural`` agent: :class:`_Forecaster` on the task's inputs, no mechanism."""

    name: str = "neural"
    config: NeuralConfig = NeuralConfig()

    def run(self, task: BenchTask, seed: int, budget: Budget, sandbox: Sandbox | None,
            workdir: Path) -> AgentOutcome:
        started = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._run(task, seed, started)
        except Exception as exc:  # a degenerate series (too few rows): a result, as data
            return failed(self.name, task, f"{type(exc).__name__}: {exc}", started, nodes=1)
        finally:
            torch.set_num_threads(threads)

    def _run(self, task: BenchTask, seed: int, started: float) -> AgentOutcome:
        data = task.agent_task(seed).data
        times = np.asarray(task.times, dtype=float)
        if data.t.shape != times.shape or not np.allclose(data.t, times):
            raise ValueError("the observations are not on the task's time grid")
        n_train = int(np.sum(times <= task.train_until))
        n_fit = int(np.sum(times <= task.validate_until))
        if n_train < 4:
            raise ValueError(f"{n_train} training rows are too few to train a forecaster")
        cols = list(task.observed)
        y = np.stack([data.values[c] for c in cols], axis=1).astype(float)
        y[n_fit:] = np.nan                       # the test window is never read
        scale = np.array([_scale(y[:n_train, i]) for i in range(len(cols))])
        z = np.arcsinh(y / scale)
        channels = input_channels(task.conditions, times)
        for item in task.inputs:  # a known input is a channel of its own, set per time
            channels[f"set:{item.name}"] = np.asarray(item.values, dtype=float).copy()
        norms = {k: (float(np.max(np.abs(v))) or 1.0) for k, v in channels.items()}
        names = sorted(channels)

        def matrix(ch: dict[str, np.ndarray]) -> np.ndarray:
            if not names:
                return np.zeros((len(times), 0))
            return np.stack([ch[k] / norms[k] for k in names], axis=1)

        model = _Forecaster(self.config, times, z, matrix(channels), n_train, n_fit, seed)
        zf = model.forecast()
        forecast = {c: scale[i] * np.sinh(zf[:, i]) for i, c in enumerate(cols)}
        cfs: list[dict[str, np.ndarray] | None] = []
        items_json: list[list[dict]] = []
        handles: list[str] = []
        for cf in task.counterfactuals:
            changed, used = _with_changes(channels, cf.interventions, times)
            items_json.append([i.to_dict() for i in used])
            if not used:
                handles.append("no input channel for this intervention: unintervened forecast")
                cfs.append(dict(forecast))
                continue
            first = _first_effect(used)
            start = max(0, min(int(np.sum(times < first)) - 1, n_fit - 1))
            effect = model.effect(matrix(changed), start)
            zc = zf.copy()
            zc[start + 1:] += effect[start + 1:]
            cfs.append({c: scale[i] * np.sinh(zc[:, i]) for i, c in enumerate(cols)})
            missed = len(cf.interventions) - len(used)
            handles.append("inputs changed" + (f"; {missed} part(s) without a channel ignored"
                                               if missed else ""))
        detail: dict[str, Any] = {"channels": names, "cf_handles": handles,
                                  "members": self.config.members}
        return AgentOutcome(
            agent=self.name, valid=True, reason="",
            structure="autoregressive MLP ensemble (no mechanism)", nodes=1, valid_nodes=1,
            repairs=0, llm_calls=0, tokens=0, wall_s=time.perf_counter() - started,
            forecast=forecast, counterfactuals=tuple(cfs), interventions=tuple(items_json),
            params={}, detail=detail)


def _scale(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    if not finite.size:
        return 1.0
    s = float(np.median(finite[finite > 0])) if (finite > 0).any() else 1.0
    return s if s > 0 and math.isfinite(s) else 1.0
