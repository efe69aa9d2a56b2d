"""ODE solvers: strategy objects that integrate a compiled model between two events.

:meth:`mechanistic.simulate.CompiledModel.simulate` takes a solver and asks it to cross
each interval between events (output times, control changes, doses); a solver is a frozen
dataclass of its settings with one method, :meth:`Solver.integrate`, that advances the
state ``[S, B]`` and returns it with each sample's :class:`Status` (a sample that fails
is data, not an exception, as in diffrax). Solvers live in one registry, keyed by
``kind``: a fit records its solver as ``{"kind": ..., settings}`` and reads it back with
:func:`solver_from_dict`, which checks the record (it comes from a run folder), and a new
solver is one subclass plus :func:`register_solver`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from enum import IntEnum
from typing import Any, ClassVar

import torch

from mechanistic.errors import ModelError
from mechanistic.untrusted import shown

__all__ = ["RK4", "SOLVERS", "Dopri5", "Solver", "Status", "register_solver",
           "solver_from_dict", "solver_to_dict"]


class Status(IntEnum):
    OK = 0
    NONFINITE = 1
    DIVERGED = 2
    MAX_STEPS = 3


class Solver:
    """Base of the solver strategies. ``divergence_threshold``: a state beyond it is a
    diverged sample. ``fused``: whether simulations should be chunked for fused kernels."""

    kind: ClassVar[str] = ""
    divergence_threshold: float

    @property
    def fused(self) -> bool:
        return False

    def integrate(self, model: Any, y: torch.Tensor, interval: Any,
                  params: dict[str, torch.Tensor], status: torch.Tensor,
                  box: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance ``y`` ([S, B]) across ``interval`` of ``model`` (a CompiledModel: its
        ``_interval_env``, ``rhs`` and RK4 kernels); ``box`` carries state between the
        intervals of one simulation (a proposed step size, a step count)."""
        raise NotImplementedError


def _check_numbers(solver: Solver) -> None:
    """Settings are plain numbers (a solver record may come from a run folder)."""
    for f in fields(solver):  # type: ignore[arg-type]
        value = getattr(solver, f.name)
        want = bool if f.type in ("bool", bool) else int if f.type in ("int", int) else float
        ok = isinstance(value, bool) if want is bool else (
            not isinstance(value, bool) and isinstance(value, int if want is int else
                                                        int | float))
        if not ok or (want is not bool and not math.isfinite(value)):
            what = "true or false" if want is bool else f"a finite {want.__name__}"
            raise ModelError(f"{solver.kind} setting {f.name} must be {what}, "
                             f"got {shown(value)}")


@dataclass(frozen=True)
class RK4(Solver):
    """Classical fixed-step Runge-Kutta; ``dt`` is the largest step (cheap, predictable)."""

    dt: float = 0.1
    divergence_threshold: float = 1e15
    compiled: bool = False  # fuse each step with torch.compile: ~10x faster on big batches
    kind: ClassVar[str] = "RK4"

    def __post_init__(self) -> None:
        _check_numbers(self)
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ModelError(f"RK4 needs dt > 0, got {self.dt}")

    @property
    def fused(self) -> bool:
        return self.compiled

    def integrate(self, model: Any, y: torch.Tensor, interval: Any,
                  params: dict[str, torch.Tensor], status: torch.Tensor,
                  box: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        env, transfer, inflow = model._interval_env(params, interval, as_tensors=self.compiled)
        y = model._rk4_interval(y, interval.start, interval.end, self.dt, env, transfer,
                                self.compiled, inflow)
        return y, status


@dataclass(frozen=True)
class Dopri5(Solver):
    """Adaptive Dormand-Prince 5(4); one step size shared by the batch, error per sample."""

    rtol: float = 1e-6
    atol: float = 1e-9
    max_steps: int = 100_000
    divergence_threshold: float = 1e15
    kind: ClassVar[str] = "Dopri5"

    def integrate(self, model: Any, y: torch.Tensor, interval: Any,
                  params: dict[str, torch.Tensor], status: torch.Tensor,
                  box: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        env, transfer, inflow = model._interval_env(params, interval, as_tensors=False)

        def f(t: float, y: torch.Tensor) -> Any:
            return model.rhs(t, y, env, transfer, inflow)

        y, exhausted = _dopri5_interval(f, y, interval.start, interval.end, self, box,
                                        status == Status.OK)
        if bool(exhausted.any()):
            status = torch.where(exhausted & (status == Status.OK), int(Status.MAX_STEPS),
                                 status)
            y = torch.where(exhausted, float("nan"), y)
        return y, status

    def __post_init__(self) -> None:
        _check_numbers(self)
        if not (self.rtol > 0 and self.atol > 0):
            raise ModelError("Dopri5 needs rtol > 0 and atol > 0")
        if self.max_steps < 1:
            raise ModelError("Dopri5 needs max_steps >= 1")


SOLVERS: dict[str, type[Solver]] = {}


def register_solver(cls: type[Solver], *, replace: bool = False) -> type[Solver]:
    """Add a solver class under its ``kind`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Solver) and cls.kind):
        raise ValueError("register_solver needs a Solver subclass with a kind")
    if cls.kind in SOLVERS and not replace:
        raise ValueError(f"a solver of kind {cls.kind!r} is already registered")
    SOLVERS[cls.kind] = cls
    return cls


register_solver(RK4)
register_solver(Dopri5)


def solver_to_dict(solver: Solver) -> dict[str, Any]:
    return {"kind": solver.kind, **asdict(solver)}  # type: ignore[call-overload]


def solver_from_dict(spec: Any) -> Solver:
    """The solver a fit recorded; ModelError naming what is wrong with the record."""
    if not isinstance(spec, dict):
        raise ModelError(f"a solver record must be an object, got {shown(spec)}")
    kind = spec.get("kind")
    cls = SOLVERS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ModelError(f"unknown solver kind {shown(kind)}; known: {sorted(SOLVERS)}")
    args = {k: v for k, v in spec.items() if k != "kind"}
    allowed = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ModelError(f"solver {kind} has no setting(s) {unknown}; settings: "
                         f"{sorted(allowed)}")
    return cls(**args)


_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_DP_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)


def _dopri5_interval(
    f: Any, y: torch.Tensor, a: float, b: float, solver: Dopri5, box: dict[str, Any],
    active: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate [a, b] adaptively; returns the state and a mask of samples that ran out
    of steps. ``box`` carries the proposed step size and the step count across intervals."""
    t = a
    k1 = f(t, y)
    if box["h"] is None:
        scale = solver.atol + solver.rtol * y.detach().abs()
        d0 = _rms(y.detach() / scale, active)
        d1 = _rms(k1.detach() / scale, active)
        box["h"] = min(0.01 * d0 / d1 if d0 > 1e-5 and d1 > 1e-5 else 1e-6, b - a)
    failed = torch.zeros_like(active)
    last_error: torch.Tensor | None = None
    while t < b:
        if box["steps"] >= solver.max_steps:
            return y, failed | active
        if box["h"] < 1e-12 * max(1.0, abs(t)):
            # The shared step collapsed: fail only the samples whose error forced it (a
            # blow-up in one sample must not stop the others), then go on.
            culprits = active
            if last_error is not None:
                errors = torch.where(active, last_error, torch.zeros_like(last_error))
                culprits = active & (errors >= 0.01 * errors.max())
            failed, active = failed | culprits, active & ~culprits
            if not bool(active.any()):
                return y, failed
            box["h"], last_error = (b - a) * 1e-3, None
            continue
        h = min(box["h"], b - t)
        last = h >= b - t
        ks = [k1]
        for c, row in zip(_DP_C[1:6], _DP_A[1:6], strict=True):
            dy = sum(coef * k for coef, k in zip(row, ks, strict=False) if coef != 0.0)
            ks.append(f(t + c * h, y + h * dy))
        y_new = y + h * sum(
            coef * k for coef, k in zip(_DP_A[6], ks, strict=False) if coef != 0.0)
        ks.append(f(t + h, y_new))
        err = h * sum(coef * k for coef, k in zip(_DP_E, ks, strict=True) if coef != 0.0)
        box["steps"] += 1
        scale = solver.atol + solver.rtol * torch.maximum(y.detach().abs(), y_new.detach().abs())
        per_sample = ((err.detach() / scale) ** 2).mean(0).sqrt()
        healthy = active & torch.isfinite(per_sample) & torch.isfinite(y_new.detach()).all(0)
        worst = float(per_sample[healthy].max()) if bool(healthy.any()) else 0.0
        factor = 5.0 if worst == 0.0 else min(5.0, max(0.2, 0.9 * worst ** -0.2))
        if worst <= 1.0:
            t = b if last else t + h
            y, k1, active = y_new, ks[-1], healthy
            # A step cut short to land on an event says nothing against the proposal.
            box["h"] = max(box["h"], h * factor) if last else h * factor
        else:
            box["h"] = h * factor
        last_error = torch.where(healthy, per_sample, torch.zeros_like(per_sample))
    return y, failed


def _rms(x: torch.Tensor, active: torch.Tensor) -> float:
    if not bool(active.any()):
        return 0.0
    return float((x[:, active] ** 2).mean().sqrt())

