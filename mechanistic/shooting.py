"""Multiple shooting: the fitter's first stage, on short segments integrated side by side.

Why: a single-shooting fit integrates the whole training window for every objective
evaluation, one RK4 step after another, so its cost is the number of sequential steps
(hundreds) times a few dozen tiny tensor operations each; a batch of four starts costs
the same as one. And on oscillating or long series a trajectory that starts out of phase
stays out of phase, so the optimiser finds a poor local optimum (a period or an amplitude
off) rather than the data's.

Multiple shooting cuts the window into ``K`` segments. Each segment starts from its own
state vector, a free variable of the optimisation (the first from the model's initial
conditions), and all segments of all starts are rows of *one* batched integration, so an
evaluation costs the steps of one segment, a tenth of the window. Each segment's start is
initialised from the data where a state is observed directly, so every segment begins on
the data and the phase problem goes; a penalty on the gaps between one segment's end and
the next one's start pulls the pieces into one trajectory. The fitter then polishes the
best starts' parameters by ordinary single shooting, so the reported likelihood is always
that of one continuous trajectory (see :mod:`mechanistic.fit`).

The segment objective follows the simulator's rules: the same RK4 step bound per event
interval, controls constant between their change times, the same observation model. It
does not take interventions or trained networks (the fitter falls back to single shooting
for those).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
import torch

from mechanistic.interventions import ControlSchedule
from mechanistic.model import Model
from mechanistic.observation import ObservationModel
from mechanistic.simulate import CompiledModel, _stack

__all__ = ["SegmentPlan", "ShootingObjective", "direct_observations", "plan_segments",
           "segment_starts", "state_scales"]

_DTYPE = torch.float64
# A gap between segments costs about one log-likelihood unit when it is this fraction of
# the state's typical size: tight enough that the segments trace one trajectory, loose
# enough that the first steps can move every segment towards the data.
GAP_TOLERANCE = 0.02
DIVERGENCE = 1e15


@dataclass(frozen=True)
class SegmentPlan:
    """Where the segments start and what each RK4 step of each segment does.

    Arrays are laid out ``[step, segment]``: all segments take ``steps`` steps, a shorter
    segment's last ones have ``h = 0`` (they leave the state as it is).
    """

    starts: np.ndarray            # [K] start time of each segment
    start_rows: np.ndarray        # [K] index of the data row a segment starts at (-1: t0)
    t: np.ndarray                 # [n, K] time at the start of each step
    h: np.ndarray                 # [n, K] step size
    controls: dict[str, np.ndarray]  # name -> [n, K] value during each step
    out_step: np.ndarray          # [T] step count after which data row j is reached
    out_segment: np.ndarray       # [T] the segment data row j belongs to
    end_step: np.ndarray          # [K] step count at each segment's end

    @property
    def segments(self) -> int:
        return len(self.starts)

    @property
    def steps(self) -> int:
        return self.t.shape[0]


def plan_segments(model: Model, times: np.ndarray, t0: float, dt: float,
                  controls: Mapping[str, ControlSchedule] | None, max_segments: int,
                  min_intervals: int) -> SegmentPlan | None:
    """Cut the data times into at most ``max_segments`` segments of at least
    ``min_intervals`` data intervals each; ``None`` when fewer than two segments fit."""
    times = np.asarray(times, dtype=float)
    n = len(times)
    if n < 2 * min_intervals + 1 or max_segments < 2:
        return None
    per = max(min_intervals, math.ceil((n - 1) / max_segments))
    bounds = list(range(0, n - 1, per))
    if len(bounds) > 1 and (n - 1) - bounds[-1] < min_intervals:
        bounds.pop()  # a short tail joins the segment before it
    if len(bounds) < 2:
        return None
    controls = dict(controls or {})
    breaks = sorted({t for s in controls.values() for t in s.times
                     if math.isfinite(t) and t0 < t < times[-1]})
    seg_of_row = np.zeros(n, dtype=np.int64)
    steps: list[list[tuple[float, float, dict[str, float]]]] = []
    row_step = np.zeros(n, dtype=np.int64)
    end_step = []
    starts = []
    for k, first in enumerate(bounds):
        last = bounds[k + 1] if k + 1 < len(bounds) else n - 1
        a0 = t0 if k == 0 else float(times[first])
        starts.append(a0)
        events = sorted({*(float(x) for x in times[first:last + 1]),
                         *(b for b in breaks if a0 < b < times[last])})
        events = [e for e in events if e > a0]
        seg: list[tuple[float, float, dict[str, float]]] = []
        lo = first if k == 0 else first + 1
        seg_of_row[lo:last + 1] = k
        rows = {float(times[j]): j for j in range(lo, last + 1)}
        for a, b in zip([a0, *events[:-1]], events, strict=True):
            m = max(1, math.ceil((b - a) / dt - 1e-9))
            h = (b - a) / m
            mid = 0.5 * (a + b)
            ctrl = {name: (controls[name].value_at(mid, c.default) if name in controls
                           else c.default) for name, c in model.controls_.items()}
            seg.extend((a + i * h, h, ctrl) for i in range(m))
            if b in rows:
                row_step[rows[b]] = len(seg)
        steps.append(seg)
        end_step.append(len(seg))
    longest = max(len(s) for s in steps)
    K = len(steps)
    t = np.zeros((longest, K))
    h = np.zeros((longest, K))
    ctrl_arrays = {name: np.zeros((longest, K)) for name in model.controls_}
    for k, seg in enumerate(steps):
        for i in range(longest):
            if i < len(seg):
                ti, hi, ci = seg[i]
            else:  # padding: stand still at the segment's end
                ti, hi, ci = seg[-1][0] + seg[-1][1], 0.0, seg[-1][2]
            t[i, k], h[i, k] = ti, hi
            for name, value in ci.items():
                ctrl_arrays[name][i, k] = value
    start_rows = np.array([-1 if k == 0 else bounds[k] for k in range(K)], dtype=np.int64)
    # Rows that start a segment (k >= 1) are read at step 0 of that segment.
    for k in range(1, K):
        seg_of_row[bounds[k]] = k
        row_step[bounds[k]] = 0
    return SegmentPlan(np.array(starts), start_rows, t, h, ctrl_arrays, row_step, seg_of_row,
                       np.array(end_step, dtype=np.int64))


class ShootingObjective:
    """Negative log-likelihood of the segments plus the gap penalty, per start.

    A row of ``u`` is ``[parameters (unconstrained), segment states]``: the states of
    segments ``1..K-1``, each on a log scale where the state is positive everywhere it was
    seen when the objective was built, else relative to its typical size.
    """

    def __init__(self, model: Model, compiled: CompiledModel, params_of: Any,
                 n_params: int, plan: SegmentPlan, times: np.ndarray, data: np.ndarray,
                 controls: Mapping[str, ControlSchedule] | None, scale: np.ndarray,
                 positive: np.ndarray, gap_tolerance: float = GAP_TOLERANCE) -> None:
        self.model, self.compiled, self.plan = model, compiled, plan
        self.gap_tolerance = gap_tolerance
        self.params_of = params_of  # unconstrained [B, k] -> {name: [B]}
        self.k = n_params
        self.S = len(model.state_names)
        self.data = torch.as_tensor(data, dtype=_DTYPE)
        self.grid = torch.as_tensor(times, dtype=_DTYPE)
        self.controls = controls
        self.obs = ObservationModel(model, _DTYPE)
        self.scale = torch.as_tensor(scale, dtype=_DTYPE)          # [S]
        self.positive = torch.as_tensor(positive, dtype=torch.bool)  # [S]
        self._t = torch.as_tensor(plan.t, dtype=_DTYPE)
        self._h = torch.as_tensor(plan.h, dtype=_DTYPE)
        self._ctrl = {n: torch.as_tensor(v, dtype=_DTYPE) for n, v in plan.controls.items()}
        self._out_step = torch.as_tensor(plan.out_step)
        self._out_seg = torch.as_tensor(plan.out_segment)

    @property
    def width(self) -> int:
        """Length of one row of ``u``."""
        return self.k + (self.plan.segments - 1) * self.S

    # ------------------------------------------------------------ state encoding
    def encode_states(self, states: np.ndarray) -> np.ndarray:
        """Segment start states ``[B, K-1, S]`` to the unconstrained tail of ``u``."""
        s = np.asarray(states, dtype=float)
        scale = self.scale.numpy()
        pos = self.positive.numpy()
        v = np.where(pos, np.log(np.maximum(s, 1e-12 * scale)), s / scale)
        return v.reshape(s.shape[0], -1)

    def _decode(self, v: torch.Tensor) -> torch.Tensor:
        v = v.reshape(v.shape[0], self.plan.segments - 1, self.S)
        return torch.where(self.positive, torch.exp(torch.clamp(v, max=700.0)), v * self.scale)

    # ---------------------------------------------------------------- objective
    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        B, K, S = u.shape[0], self.plan.segments, self.S
        params = self.params_of(u[:, :self.k])
        table = self.compiled.param_table(params or {}, batch=B)
        starts = self._decode(u[:, self.k:])                       # [B, K-1, S]
        ref = next(iter(table.values())) if table else torch.zeros(B, dtype=_DTYPE)
        y_first = _stack(self.compiled._init(dict(table)), B, ref, dim=0)  # [S, B]
        # rows r = k * B + b: segment-major, so a segment's rows are one slice
        y = torch.cat([y_first, starts.permute(2, 1, 0).reshape(S, (K - 1) * B)], dim=1)
        env: dict[str, Any] = {n: v.repeat(K) for n, v in table.items()}
        trail = [y]
        for i in range(self.plan.steps):
            t = self._t[i].repeat_interleave(B)
            h = self._h[i].repeat_interleave(B)
            for name, values in self._ctrl.items():
                env[name] = values[i].repeat_interleave(B)
            y = self._rk4(t, y, h, env)
            trail.append(y)
        path = torch.stack(trail).reshape(self.plan.steps + 1, S, K, B)  # [n+1, S, K, B]
        at_rows = path[self._out_step, :, self._out_seg, :]          # [T, S, B]
        states = at_rows.permute(2, 0, 1)                             # [B, T, S]
        bad = ~(states.abs() <= DIVERGENCE).all(2).all(1)             # [B]
        states = torch.where(torch.isfinite(states), states, torch.zeros_like(states))
        observables = self.compiled._observe(states, table, self.grid, (), self.controls)
        nll = -self.obs.log_likelihood(observables, self.data, params or {})
        ends = path[torch.as_tensor(self.plan.end_step[:-1]), :,
                    torch.arange(K - 1), :]                           # [K-1, S, B]
        gap = (ends.permute(2, 0, 1) - starts) / (self.gap_tolerance * self.scale)
        penalty = 0.5 * gap.pow(2).sum(dim=(1, 2))
        loss = nll + penalty
        return torch.where(bad, torch.full_like(loss, math.nan), loss)

    def _rk4(self, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor,
             env: dict[str, Any]) -> torch.Tensor:
        f = self.compiled.rhs
        k1 = f(t, y, env)
        k2 = f(t + h / 2, y + (h / 2) * k1, env)
        k3 = f(t + h / 2, y + (h / 2) * k2, env)
        k4 = f(t + h, y + h * k3, env)
        return y + (h / 6) * (k1 + 2 * (k2 + k3) + k4)


def state_scales(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Typical size and sign of each state from trajectories ``[B, T, S]``: the RMS of the
    finite values (1 where none is), and whether every finite value is positive."""
    s = np.asarray(states, dtype=float)
    out_scale, out_pos = [], []
    for j in range(s.shape[2]):
        v = s[..., j][np.isfinite(s[..., j])]
        rms = float(np.sqrt(np.mean(v ** 2))) if v.size else 1.0
        out_scale.append(rms if rms > 0 else 1.0)
        out_pos.append(bool(v.size and (v > 0).all()))
    return np.array(out_scale), np.array(out_pos)


def direct_observations(model: Model) -> dict[str, int]:
    """States that an observable reads directly (its expression is the state itself):
    segment starts for those come from the data. Maps state name -> observable index."""
    out: dict[str, int] = {}
    for j, obs in enumerate(model.observables_.values()):
        expr = obs.expr
        if isinstance(expr, sp.Symbol) and expr.name in model.states_ and expr.name not in out:
            out[expr.name] = j
    return out


def segment_starts(model: Model, plan: SegmentPlan, simulated: np.ndarray,
                   data: np.ndarray) -> np.ndarray:
    """Initial segment states ``[B, K-1, S]``: the simulated trajectory at each segment's
    start row, with directly observed states replaced by the data there."""
    rows = plan.start_rows[1:]
    states = np.array(simulated[:, rows, :], dtype=float)        # [B, K-1, S]
    direct = direct_observations(model)
    for i, name in enumerate(model.state_names):
        j = direct.get(name)
        if j is None:
            continue
        values = data[rows, j]
        ok = np.isfinite(values)
        states[:, ok, i] = values[ok]
    return states
