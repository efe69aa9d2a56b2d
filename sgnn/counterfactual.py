"""Counterfactuals from an SGNN: posterior parameter draws simulated with and without an
intervention.

The network answers "which structure, which parameters" in one forward pass; a what-if
needs the mechanism itself, so the answer goes back to simulation:

1. **Structure** of each draw: drawn from the network's structure probabilities (so the
   answer carries structural uncertainty), among the structures the interventions can be
   applied to (one naming a parameter a structure lacks leaves that structure out, with
   a note).
2. **Parameters**: drawn from the network's marginal posterior quantiles, read as a
   piecewise-linear quantile function in each parameter's unconstrained space (normal
   tails beyond the outer quantiles). The network gives marginals, not correlations, so
   draws are independent across parameters; bands are wider than a joint posterior's
   would be, never falsely narrow.
3. **Clock**: training windows start a random delay (and offset) after the epidemic's
   seeding, so the data's clock and the simulator's differ by an unknown shift. Each
   draw takes the shift under which its simulated observables explain the observed
   context best (declared noise, :func:`mechanistic.observation.batched_log_likelihood`
   over every admissible shift).
4. **Both worlds from the same draws**: the intervened and the baseline simulation use
   identical draws and shifts, so their difference is the intervention's effect alone
   (paired, as ``mmw counterfactual`` does for fitted candidates).

Intervention times are on the data's clock; the JSON is the one
:mod:`mechanistic.interventions` reads (``mmw counterfactual --intervention``).
Observables are expected reported values (no observation noise, no reporting artifacts).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.stats import norm

from mechanistic.data import ObservedData
from mechanistic.errors import ModelError
from mechanistic.interventions import (
    Dose,
    Intervention,
    interventions_to_json,
    validate_interventions,
)
from mechanistic.observation import ObservationModel
from mechanistic.simulate import RK4, compile_model
from sgnn.predict import prepare
from sgnn.train import Checkpoint

if TYPE_CHECKING:
    from sgnn.heads import Head
    from sgnn.network import SGNN

__all__ = ["SGNNCounterfactual", "counterfactual", "sample_quantile_function"]


@dataclass(frozen=True)
class SGNNCounterfactual:
    """Bands with and without the interventions, and of their paired difference.

    ``baseline[name]``, ``intervened[name]`` and ``effect[name]`` are ``[T, Q]`` arrays of
    quantiles ``quantiles`` over the draws, on the data's clock ``t``.
    """

    t: np.ndarray
    quantiles: tuple[float, ...]
    interventions: list[Intervention]
    baseline: dict[str, np.ndarray]
    intervened: dict[str, np.ndarray]
    effect: dict[str, np.ndarray]
    structures: dict[str, int]          # draws per structure
    n_draws: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.t.tolist(), "quantiles": list(self.quantiles),
                "interventions": interventions_to_json(self.interventions),
                "baseline": {k: v.tolist() for k, v in self.baseline.items()},
                "intervened": {k: v.tolist() for k, v in self.intervened.items()},
                "effect": {k: v.tolist() for k, v in self.effect.items()},
                "structures": self.structures, "n_draws": self.n_draws, "notes": self.notes}

    def frame(self) -> Any:
        """``t`` then ``baseline_<obs>_q<q>``, ``intervened_<obs>_q<q>``, ``effect_...``."""
        import pandas as pd

        data: dict[str, Any] = {"t": self.t}
        for world, table in (("baseline", self.baseline), ("intervened", self.intervened),
                             ("effect", self.effect)):
            for name, values in table.items():
                for j, q in enumerate(self.quantiles):
                    data[f"{world}_{name}_q{q:g}"] = values[:, j]
        return pd.DataFrame(data)


def sample_quantile_function(levels: Sequence[float], values: np.ndarray,
                             rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws from the distribution with quantiles ``values [P, Q]`` at ``levels``.

    Linear in the normal score between the given quantiles and beyond them (so the tails
    are normal-like, not cut at the outer quantiles). Columns are drawn independently.
    """
    z_levels = norm.ppf(np.asarray(levels, dtype=float))
    values = np.asarray(values, dtype=float)
    z = rng.standard_normal((n, values.shape[0]))
    out = np.empty_like(z)
    for p in range(values.shape[0]):
        v = np.maximum.accumulate(values[p])      # guard: monotone even if rounding is not
        out[:, p] = np.interp(z[:, p], z_levels, v)
        lo_slope = (v[1] - v[0]) / (z_levels[1] - z_levels[0])
        hi_slope = (v[-1] - v[-2]) / (z_levels[-1] - z_levels[-2])
        below, above = z[:, p] < z_levels[0], z[:, p] > z_levels[-1]
        out[below, p] = v[0] + lo_slope * (z[below, p] - z_levels[0])
        out[above, p] = v[-1] + hi_slope * (z[above, p] - z_levels[-1])
    return out


def _shifted(item: Intervention, shift: float) -> Intervention:
    """``item`` moved from the data's clock onto the simulator's (``+ shift``)."""
    if isinstance(item, Dose):
        return dataclasses.replace(item, times=tuple(t + shift for t in item.times))
    end = item.end + shift if math.isfinite(item.end) else item.end  # type: ignore[attr-defined]
    return dataclasses.replace(item, start=item.start + shift, end=end)  # type: ignore[call-arg]


def counterfactual(checkpoint: Checkpoint, data: ObservedData,
                   interventions: Sequence[Intervention], *, draws: int = 200,
                   horizon: int | None = None, seed: int = 0,
                   quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)
                   ) -> SGNNCounterfactual:
    """Simulate posterior draws for ``data`` with and without ``interventions``.

    Outputs run from the start of the context window (the data's first time, or the
    first of the last ``n_context`` points of a longer series) to ``horizon`` steps
    (default: the trained horizon) past its last. Raises :class:`ModelError` when no
    structure of the corpus accepts the interventions, ``ValueError`` for a bad
    ``draws``/``horizon``.
    """
    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be an integer >= 1, got {draws!r}")
    corpus, net = checkpoint.corpus, checkpoint.network
    cfg = corpus.config
    horizon = cfg.horizon if horizon is None else horizon
    if not isinstance(horizon, int) or horizon < 0:
        raise ValueError(f"horizon must be an integer >= 0, got {horizon!r}")
    items = list(interventions)
    context, mask, last, notes = prepare(checkpoint, data)
    with torch.no_grad():
        out = net(context, mask)
    probs = _answer(net, out, "structure probabilities",
                    lambda head, output: head.structure_probabilities(output))
    usable, reasons = [], []
    for k, model in enumerate(corpus.models):
        try:
            validate_interventions(model, items)
            usable.append(k)
        except ModelError as exc:
            reasons.append(f"structure {corpus.names[k]!r} left out: {exc}")
    if not usable:
        raise ModelError("no structure of the SGNN's corpus accepts these interventions: "
                         + "; ".join(reasons))
    notes += reasons
    weights = probs[usable] / probs[usable].sum() if probs[usable].sum() > 0 else None
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(draws, weights if weights is not None
                             else np.full(len(usable), 1 / len(usable)))
    levels = net.config.quantiles
    u_all = _answer(net, out, "parameter quantiles",           # [P, Q] unconstrained
                    lambda head, output: head.parameter_quantiles(output))
    # From the start of the context the network read (earlier data lies before the
    # simulator's clock may start) to ``horizon`` steps past the last point.
    first = max(float(data.t[0]), last - (cfg.n_context - 1) * cfg.dt)
    n_out = round((last - first) / cfg.dt) + 1 + horizon
    t_out = first + cfg.dt * np.arange(n_out)
    worlds: dict[str, list[np.ndarray]] = {"baseline": [], "intervened": []}
    drawn: dict[str, int] = {}
    for k, count in zip(usable, counts, strict=True):
        if count == 0:
            continue
        drawn[corpus.names[k]] = int(count)
        u = sample_quantile_function(levels, u_all[corpus.offsets[k]:corpus.offsets[k + 1]],
                                     rng, int(count))
        base, what = _simulate_structure(checkpoint, k, u, context, mask, last, t_out, items)
        worlds["baseline"].append(base)
        worlds["intervened"].append(what)
    baseline = np.concatenate(worlds["baseline"])          # [D, T, O]
    intervened = np.concatenate(worlds["intervened"])
    ok = np.isfinite(baseline).all(axis=(1, 2)) & np.isfinite(intervened).all(axis=(1, 2))
    if not ok.any():
        raise ModelError("every posterior draw failed to simulate; no counterfactual")
    if not ok.all():
        notes.append(f"{int((~ok).sum())} of {len(ok)} draws failed to simulate and were "
                     f"left out")
    qs = tuple(float(q) for q in quantiles)

    def bands(values: np.ndarray) -> dict[str, np.ndarray]:
        q = np.quantile(values[ok], qs, axis=0)              # [Q, T, O]
        return {name: q[:, :, j].T for j, name in enumerate(corpus.observables)}

    notes.append("parameters drawn independently from the SGNN's marginal posteriors; "
                 "observables are expected reported values (no noise)")
    return SGNNCounterfactual(t_out, qs, items, bands(baseline), bands(intervened),
                              bands(intervened - baseline), drawn, int(ok.sum()), notes)


def _answer(net: SGNN, out: Mapping[str, torch.Tensor], what: str,
            ask: Callable[[Head, torch.Tensor], np.ndarray | None]) -> np.ndarray:
    """What the first configured head that answers ``ask`` gives for the one series in
    ``out`` (heads are asked by what they answer, not by name: see sgnn/heads.py);
    ModelError when none does."""
    for head in net.heads:
        value = ask(head, out[head.key][0])
        if value is not None:
            return value
    raise ModelError(f"an SGNN counterfactual needs {what}, and no head of this network "
                     f"({', '.join(h.name for h in net.heads)}) gives them")


def _simulate_structure(checkpoint: Checkpoint, k: int, u: np.ndarray, context: torch.Tensor,
                        mask: torch.Tensor, last: float, t_out: np.ndarray,
                        items: list[Intervention]) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and intervened observables ``[n, T, O]`` of structure ``k``'s draws ``u``."""
    corpus = checkpoint.corpus
    cfg = corpus.config
    model = corpus.models[k]
    compiled = compile_model(model, dtype=torch.float64)
    solver = RK4(cfg.solver_dt)
    params = {n: torch.as_tensor(v) for n, v in corpus.natural(k, u).items()}
    n = u.shape[0]
    c = cfg.n_context
    shifts = np.arange(cfg.max_offset + cfg.max_delay + 1)
    # The simulator's clock at the context's last point is (shift + c - 1) * dt.
    grid = cfg.dt * np.arange(int(shifts[-1]) + c + len(t_out))
    with torch.no_grad():
        sim = compiled.simulate(params, grid, solver=solver, t0=0.0)
    obs = sim.observables.numpy()                                   # [n, G, O_model]
    cols = [model.observable_names.index(o) for o in corpus.observables]
    # Score every shift: the context against the simulation seen from that shift.
    window = shifts[:, None] + np.arange(c)[None, :]                 # [S, C]
    pred = obs[:, window, :]                                          # [n, S, C, O_model]
    y = np.full((c, len(model.observable_names)), np.nan)
    observed = mask[0].numpy() > 0
    y[:, cols] = np.where(observed, context[0].numpy(), np.nan)
    s = len(shifts)
    flat = torch.as_tensor(pred.reshape(n * s, c, -1))
    rep = {name: v.repeat_interleave(s) for name, v in params.items()}
    with torch.no_grad():
        ll = ObservationModel(model).log_likelihood(
            flat, torch.as_tensor(np.broadcast_to(y, flat.shape).copy()), rep)
    ll = torch.nan_to_num(ll, nan=-math.inf).reshape(n, s).numpy()
    best = shifts[ll.argmax(axis=1)]
    base = np.full((n, len(t_out), len(cols)), np.nan)
    what = np.full_like(base, np.nan)
    ok = sim.ok.numpy()
    for shift in np.unique(best):
        rows = np.flatnonzero((best == shift) & ok)
        if rows.size == 0:
            continue
        offset = float((shift + c - 1) * cfg.dt) - last       # data clock -> simulator clock
        times = t_out + offset
        sub = {name: v[rows] for name, v in params.items()}
        moved = [_shifted(item, offset) for item in items]
        with torch.no_grad():
            a = compiled.simulate(sub, times, solver=solver, t0=0.0)
            b = compiled.simulate(sub, times, solver=solver, t0=0.0, interventions=moved)
        base[rows] = np.where(a.ok.numpy()[:, None, None], a.observables.numpy()[..., cols],
                              np.nan)
        what[rows] = np.where(b.ok.numpy()[:, None, None], b.observables.numpy()[..., cols],
                              np.nan)
    return base, what
