"""The compiled batched simulator (torch).

One entry point, :meth:`CompiledModel.simulate`, takes a solver strategy object
(:class:`RK4` or :class:`Dopri5`) and thousands of parameter sets at once. Integration
runs between *events*: output times, control changes, intervention windows and doses.
Within an interval between events, controls and interventions are constant, so they are
decided once in Python and both solvers land exactly on every event: doses are exact
jumps, windows have sharp edges, and outputs need no interpolation.

A sample whose state turns non-finite or exceeds the divergence threshold is reported in
``Simulation.status`` and its outputs become NaN from then on; the rest of the batch is
unaffected (diffrax-style failures as data). Everything is differentiable w.r.t. the
parameters and the neural terms (discretise-then-optimise).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
import torch
from torch import nn

from mechanistic.errors import ModelError
from mechanistic.interventions import (
    ControlSchedule,
    Dose,
    Infusion,
    Intervention,
    Scale,
    SetValue,
    Transfer,
    validate_interventions,
)
from mechanistic.model import Model
from mechanistic.neural import build_neural_modules
from mechanistic.solvers import RK4, Dopri5, Solver, Status
from mechanistic.torch_expr import compile_program

__all__ = ["RK4", "CompiledModel", "Dopri5", "Simulation", "Status", "compile_model"]

ParamInput = Mapping[str, Any] | torch.Tensor




@dataclass
class Simulation:
    """States and observables on the output grid, with a status per sample."""

    t: torch.Tensor                      # [T]
    states: torch.Tensor                 # [B, T, S]
    observables: torch.Tensor            # [B, T, O]
    status: torch.Tensor                 # [B] int64, values of :class:`Status`
    state_names: list[str] = field(default_factory=list)
    observable_names: list[str] = field(default_factory=list)

    @property
    def ok(self) -> torch.Tensor:
        return self.status == Status.OK

    def state(self, name: str) -> torch.Tensor:
        return self.states[..., self.state_names.index(name)]

    def observable(self, name: str) -> torch.Tensor:
        return self.observables[..., self.observable_names.index(name)]

    def frame(self, sample: int = 0) -> Any:
        """One sample as a pandas DataFrame: time, states, observables."""
        import pandas as pd

        data = {"t": self.t.detach().cpu().numpy()}
        for i, name in enumerate(self.state_names):
            data[name] = self.states[sample, :, i].detach().cpu().numpy()
        for i, name in enumerate(self.observable_names):
            data[name if name not in data else f"{name}_obs"] = (
                self.observables[sample, :, i].detach().cpu().numpy())
        return pd.DataFrame(data)




@dataclass(frozen=True)
class _Interval:
    """Constant controls/interventions between two events."""

    start: float
    end: float
    overrides: tuple[Intervention, ...]
    controls: dict[str, float]
    transfer: tuple[Transfer, ...]
    infusion: tuple[Infusion, ...] = ()


class CompiledModel:
    """A model compiled to torch: simulate many parameter sets at once."""

    def __init__(
        self,
        model: Model,
        neural: nn.ModuleDict | None = None,
        dtype: torch.dtype = torch.float64,
        seed: int = 0,
        skeleton: bool = False,
    ) -> None:
        """``skeleton=True`` compiles every neural term as exactly 0: the mechanistic
        skeleton a fresh (zero-output) network starts from, without paying for the MLP."""
        self.model = model
        self.dtype = dtype
        self.state_names = model.state_names
        self.param_names = model.param_names
        self.observable_names = model.observable_names
        self.neural = neural if neural is not None else build_neural_modules(model, seed, dtype)
        missing = set(model.neural_) - set(self.neural.keys())
        if missing:
            raise ModelError(f"no network given for neural term(s) {sorted(missing)}")
        constants = {sp.Symbol(c.name): c.value for c in model.constants_.values()}
        rhs = model.rhs()
        exprs = [rhs[s] for s in self.state_names]
        observed = [o.expr for o in model.observables_.values()]
        if skeleton:
            exprs = [_without_neural(e) for e in exprs]
            observed = [_without_neural(e) for e in observed]
        self._rhs = compile_program(exprs, self._neural_call, constants)
        inits = model.initial_conditions()
        self._init = compile_program([inits[s] for s in self.state_names], None, constants)
        self._compiled: Any = None
        self._obs = compile_program(observed, self._neural_call, constants)

    # ------------------------------------------------------------------ helpers
    def _neural_call(self, name: str, inputs: Sequence[Any]) -> torch.Tensor:
        tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
        ref = tensors[0] if tensors else torch.zeros((), dtype=self.dtype)
        shape = torch.broadcast_shapes(*(x.shape for x in tensors)) if tensors else ()
        stacked = torch.stack(
            [x.expand(shape) if isinstance(x, torch.Tensor)
             else torch.full(shape, float(x), dtype=ref.dtype) for x in inputs], dim=-1)
        return self.neural[name](stacked)

    def param_table(self, params: ParamInput, batch: int | None = None) -> dict[str, torch.Tensor]:
        """Every parameter as a [B] tensor; Fixed priors fill in what is not given."""
        if isinstance(params, torch.Tensor):
            if params.ndim != 2 or params.shape[1] != len(self.param_names):
                raise ModelError(f"a parameter tensor must be [batch, {len(self.param_names)}] "
                                 f"in the order {self.param_names}, got {tuple(params.shape)}")
            params = {n: params[:, i] for i, n in enumerate(self.param_names)}
        unknown = set(params) - set(self.param_names)
        if unknown:
            raise ModelError(f"unknown parameter(s) {sorted(unknown)}; {self.model.name!r} has "
                             f"{self.param_names}")
        values: dict[str, torch.Tensor] = {}
        for name, p in self.model.params_.items():
            if name in params:
                values[name] = torch.as_tensor(params[name], dtype=self.dtype)
            elif p.fixed:
                values[name] = torch.tensor(p.prior.typical, dtype=self.dtype)
            else:
                missing = [n for n in self.model.free_param_names if n not in params]
                raise ModelError(f"missing value(s) for parameter(s) {missing}")
        sizes = {v.numel() for v in values.values() if v.ndim > 0}
        if batch is None:
            batch = max(sizes, default=1)
        for name, v in values.items():
            if v.ndim > 1 or (v.ndim == 1 and v.numel() not in (1, batch)):
                raise ModelError(f"parameter {name!r} has {v.numel()} values; expected 1 or "
                                 f"{batch} (one per sample)")
            values[name] = v.reshape(-1).expand(batch)
        return values

    def _intervals(
        self, t0: float, events: list[float], items: Sequence[Intervention],
        controls: Mapping[str, ControlSchedule],
    ) -> list[_Interval]:
        out = []
        for a, b in zip([t0, *events[:-1]], events, strict=True):
            if b <= a:
                continue
            mid = 0.5 * (a + b)
            ctrl = {name: (controls[name].value_at(mid, c.default) if name in controls
                           else c.default) for name, c in self.model.controls_.items()}
            for item in items:
                if isinstance(item, SetValue | Scale) and item.target in ctrl and item.active(mid):
                    ctrl[item.target] = float(item.apply(ctrl[item.target]))
            overrides = tuple(i for i in items if isinstance(i, SetValue | Scale)
                              and i.target in self.model.params_ and i.active(mid))
            transfer = tuple(i for i in items if isinstance(i, Transfer) and i.active(mid))
            infusion = tuple(i for i in items if isinstance(i, Infusion) and i.active(mid))
            out.append(_Interval(a, b, overrides, ctrl, transfer, infusion))
        return out

    def _interval_env(
        self, params: Mapping[str, torch.Tensor], interval: _Interval, as_tensors: bool
    ) -> tuple[dict[str, Any], torch.Tensor | None, torch.Tensor | None]:
        """Parameter and control values for one interval, its transfer matrix and its
        inflow column (infusion rates per state, [S, 1])."""
        env: dict[str, Any] = dict(params)
        for item in interval.overrides:
            env[item.target] = item.apply(env[item.target])  # type: ignore[attr-defined]
        for name, value in interval.controls.items():
            # A compiled step takes controls as 0-d tensors so new values do not recompile.
            env[name] = torch.tensor(value, dtype=self.dtype) if as_tensors else value
        index = {n: i for i, n in enumerate(self.state_names)}
        inflow = None
        if interval.infusion:
            inflow = torch.zeros(len(index), 1, dtype=self.dtype)
            for drip in interval.infusion:
                inflow[index[drip.target], 0] += drip.rate
        if not interval.transfer:
            return env, None, inflow
        transfer = torch.zeros(len(index), len(index), dtype=self.dtype)
        for item in interval.transfer:
            transfer[index[item.source], index[item.source]] -= item.rate
            if item.target is not None:
                transfer[index[item.source], index[item.target]] += item.rate
        return env, transfer.T.contiguous(), inflow

    def rhs(self, t: Any, y: torch.Tensor, env: Mapping[str, Any],
            transfer: torch.Tensor | None = None,
            inflow: torch.Tensor | None = None) -> torch.Tensor:
        """dy/dt for states ``y`` laid out [S, B] (each state's row contiguous)."""
        local = dict(env)
        local["t"] = t
        for i, name in enumerate(self.state_names):
            local[name] = y[i]
        dy = _stack(self._rhs(local), y.shape[1], y, dim=0)
        if transfer is not None:
            dy = dy + transfer @ y
        return dy if inflow is None else dy + inflow

    def _rk4_step(self, t: Any, y: torch.Tensor, h: Any, env: Mapping[str, Any],
                  transfer: torch.Tensor | None,
                  inflow: torch.Tensor | None = None) -> torch.Tensor:
        k1 = self.rhs(t, y, env, transfer, inflow)
        k2 = self.rhs(t + h / 2, y + (h / 2) * k1, env, transfer, inflow)
        k3 = self.rhs(t + h / 2, y + (h / 2) * k2, env, transfer, inflow)
        k4 = self.rhs(t + h, y + h * k3, env, transfer, inflow)
        return y + (h / 6) * (k1 + 2 * (k2 + k3) + k4)

    def _rk4_steps(self, t0: Any, y: torch.Tensor, h: Any, n: int, env: Mapping[str, Any],
                   transfer: torch.Tensor | None,
                   inflow: torch.Tensor | None = None) -> torch.Tensor:
        for i in range(n):
            y = self._rk4_step(t0 + i * h, y, h, env, transfer, inflow)
        return y

    def _rk4_interval(self, y: torch.Tensor, a: float, b: float, dt: float,
                      env: Mapping[str, Any], transfer: torch.Tensor | None,
                      compiled: bool, inflow: torch.Tensor | None = None) -> torch.Tensor:
        """Equal RK4 steps of at most ``dt`` from ``a`` to exactly ``b``."""
        n = max(1, math.ceil((b - a) / dt - 1e-9))
        h = (b - a) / n
        if not compiled:
            return self._rk4_steps(a, y, h, n, env, transfer, inflow)
        if self._compiled is None:
            # All steps of an interval fused into one kernel; t and h are tensors so that
            # new values do not trigger a recompile (n does: intervals are usually alike).
            self._compiled = torch.compile(self._rk4_steps, dynamic=False)
        return self._compiled(torch.tensor(a, dtype=y.dtype), y,
                              torch.tensor(h, dtype=y.dtype), n, env, transfer, inflow)

    # ------------------------------------------------------------------ simulate
    def simulate(
        self,
        params: ParamInput,
        t_eval: Sequence[float] | np.ndarray | torch.Tensor,
        *,
        solver: Solver | None = None,
        interventions: Sequence[Intervention] = (),
        controls: Mapping[str, ControlSchedule] | None = None,
        t0: float | None = None,
        chunk_size: int | None = None,
    ) -> Simulation:
        """Simulate every parameter set; outputs on ``t_eval`` (strictly increasing)."""
        parts = list(self.iter_simulate(params, t_eval, solver=solver, interventions=interventions,
                                        controls=controls, t0=t0, chunk_size=chunk_size))
        first = parts[0]
        return Simulation(
            first.t,
            torch.cat([p.states for p in parts]),
            torch.cat([p.observables for p in parts]),
            torch.cat([p.status for p in parts]),
            self.state_names,
            self.observable_names,
        )

    def iter_simulate(
        self,
        params: ParamInput,
        t_eval: Sequence[float] | np.ndarray | torch.Tensor,
        *,
        solver: Solver | None = None,
        interventions: Sequence[Intervention] = (),
        controls: Mapping[str, ControlSchedule] | None = None,
        t0: float | None = None,
        chunk_size: int | None = None,
    ) -> Iterator[Simulation]:
        """Like :meth:`simulate`, chunk by chunk, so working memory stays bounded."""
        solver = solver or RK4()
        grid = torch.as_tensor(np.array(t_eval, dtype=float) if not isinstance(
            t_eval, torch.Tensor) else t_eval.detach(), dtype=torch.float64).reshape(-1)
        if grid.numel() == 0 or not torch.isfinite(grid).all():
            raise ModelError("t_eval must be a non-empty sequence of finite times")
        if grid.numel() > 1 and not bool((grid[1:] > grid[:-1]).all()):
            raise ModelError("t_eval must be strictly increasing")
        times = [float(x) for x in grid]
        start = times[0] if t0 is None else float(t0)
        if start > times[0]:
            raise ModelError(f"t0={start} is after the first output time {times[0]}")
        items = list(interventions)
        validate_interventions(self.model, items)
        controls = dict(controls or {})
        unknown = set(controls) - set(self.model.controls_)
        if unknown:
            raise ModelError(f"unknown control(s) {sorted(unknown)}; {self.model.name!r} has "
                             f"{self.model.control_names}")
        breaks = {b for i in items for b in i.breakpoints()}
        breaks |= {t for s in controls.values() for t in s.times}
        events = sorted({*times, *(b for b in breaks if start < b <= times[-1])})
        intervals = self._intervals(start, events, items, controls)
        doses: dict[float, list[Dose]] = {}
        for item in items:
            if isinstance(item, Dose):
                for t in item.times:
                    if start <= t <= times[-1]:
                        doses.setdefault(t, []).append(item)
        table = self.param_table(params)
        batch = next(iter(table.values())).shape[0] if table else 1
        compiled = solver.fused
        # Chunks small enough to stay in cache: fused kernels are fastest around 8k samples.
        chunk_size = chunk_size or (8192 if compiled else 16384)
        if chunk_size < 1:
            raise ModelError(f"chunk_size must be >= 1, got {chunk_size}")
        for lo in range(0, batch, chunk_size):
            # Contiguous copies: a broadcast (stride-0) input makes fused kernels far slower.
            chunk = {k: v[lo:lo + chunk_size].contiguous() for k, v in table.items()}
            size = min(chunk_size, batch - lo)
            if compiled and size < chunk_size and batch > chunk_size:
                # Pad the last chunk to the compiled shape rather than compile a new kernel.
                pad = chunk_size - size
                chunk = {k: torch.cat([v, v[-1:].expand(pad)]) for k, v in chunk.items()}
            sim = self._simulate_chunk(chunk, grid, times, start, intervals, doses, solver,
                                       items, compiled, controls)
            if sim.states.shape[0] != size:
                sim = Simulation(sim.t, sim.states[:size], sim.observables[:size],
                                 sim.status[:size], sim.state_names, sim.observable_names)
            yield sim

    def _simulate_chunk(
        self,
        params: dict[str, torch.Tensor],
        grid: torch.Tensor,
        times: list[float],
        start: float,
        intervals: list[_Interval],
        doses: dict[float, list[Dose]],
        solver: Solver,
        items: Sequence[Intervention],
        compiled: bool,
        controls: Mapping[str, ControlSchedule] | None = None,
    ) -> Simulation:
        batch = next(iter(params.values())).shape[0] if params else 1
        ref = next(iter(params.values())) if params else torch.zeros(1, dtype=self.dtype)
        y = _stack(self._init(dict(params)), batch, ref, dim=0)  # [S, B]: rows contiguous
        index = {n: i for i, n in enumerate(self.state_names)}
        status = torch.zeros(batch, dtype=torch.int64)
        outputs: list[torch.Tensor] = []
        out_set = {t: i for i, t in enumerate(times)}
        state_box: dict[str, Any] = {"h": None, "steps": 0}

        def at_event(t: float, y: torch.Tensor) -> torch.Tensor:
            for dose in doses.get(t, ()):
                bump = torch.zeros(len(self.state_names), 1, dtype=self.dtype)
                bump[index[dose.state], 0] = dose.amount
                y = y + bump
            if t in out_set:
                outputs.append(y)
            return y

        y = at_event(start, y)
        for interval in intervals:
            y, status = solver.integrate(self, y, interval, params, status, state_box)
            y = at_event(interval.end, y)
        states = torch.stack(outputs, dim=0)  # [T, S, B]
        status, dead = _failures(states, status, solver.divergence_threshold)
        if bool(dead.any()):
            states = torch.where(dead[:, None, :], float("nan"), states)
        states = states.permute(2, 0, 1)  # a [B, T, S] view; copying it costs a tenth of the run
        observables = self._observe(states, params, grid.to(self.dtype), items, controls)
        return Simulation(grid, states, observables, status, self.state_names,
                          self.observable_names)

    def _observe(self, states: torch.Tensor, params: Mapping[str, torch.Tensor],
                 grid: torch.Tensor, items: Sequence[Intervention],
                 controls: Mapping[str, ControlSchedule] | None = None) -> torch.Tensor:
        batch, steps = states.shape[0], states.shape[1]
        if not self.observable_names:
            return states.new_zeros(batch, steps, 0)
        env: dict[str, Any] = {name: v[:, None] for name, v in params.items()}
        env["t"] = grid
        for i, name in enumerate(self.state_names):
            env[name] = states[..., i]
        for name, control in self.model.controls_.items():
            schedule = (controls or {}).get(name)
            env[name] = torch.tensor([schedule.value_at(float(t), control.default)
                                      if schedule else control.default for t in grid],
                                     dtype=self.dtype)
        for item in items:
            if isinstance(item, SetValue | Scale) and item.target in env:
                mask = torch.tensor([item.active(float(t)) for t in grid])
                env[item.target] = torch.where(mask, item.apply(env[item.target]),
                                               env[item.target])
        return _stack(self._obs(env), (batch, steps), states)

    def initial_state(self, params: ParamInput) -> torch.Tensor:
        table = self.param_table(params)
        batch = next(iter(table.values())).shape[0] if table else 1
        ref = next(iter(table.values())) if table else torch.zeros(1, dtype=self.dtype)
        return _stack(self._init(dict(table)), batch, ref)


def _without_neural(expr: sp.Basic) -> sp.Basic:
    from sympy.core.function import AppliedUndef

    calls = expr.atoms(AppliedUndef)
    return expr.xreplace({c: sp.Integer(0) for c in calls}) if calls else expr


def _stack(values: list[Any], shape: int | tuple[int, ...], ref: torch.Tensor,
           dim: int = -1) -> torch.Tensor:
    """Stack per-state (or per-observable) results, broadcasting constants."""
    size = (shape,) if isinstance(shape, int) else shape
    cols = []
    for v in values:
        if isinstance(v, torch.Tensor):
            cols.append(v.expand(size) if tuple(v.shape) != size else v)
        else:
            cols.append(torch.full(size, float(v), dtype=ref.dtype))
    return torch.stack(cols, dim=dim)


def _failures(
    states: torch.Tensor, status: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample status from the outputs [T, S, B], and the mask [T, B] of dead outputs.

    Checking once at the end instead of after every step keeps the hot loop free of
    synchronising reductions; a NaN or an overflow persists, so none is missed.
    """
    values = states.detach()
    # One pass finds both kinds: NaN fails every comparison, and inf exceeds the threshold.
    bad = ~(values.abs() <= threshold).all(1)                 # [T, B]
    steps = bad.shape[0]
    if not bool(bad.any()):
        return status, torch.zeros_like(bad)
    first = torch.where(bad.any(0), bad.to(torch.int8).argmax(0), steps)  # [B]
    dead = torch.arange(steps)[:, None] >= first[None, :]
    ever = first < steps
    at_first = values.gather(0, first.clamp(max=steps - 1)[None, None, :].expand(
        1, values.shape[1], -1))[0]                           # [S, B]
    hit = ~torch.isfinite(at_first).all(0)
    code = torch.where(hit, int(Status.NONFINITE), int(Status.DIVERGED))
    status = torch.where((status == Status.OK) & ever, code, status)
    return status, dead


def compile_model(model: Model, neural: nn.ModuleDict | None = None,
                  dtype: torch.dtype = torch.float64, seed: int = 0) -> CompiledModel:
    """Compile a model once; simulate it many times."""
    return CompiledModel(model, neural=neural, dtype=dtype, seed=seed)
