"""A plugin from outside the mmw packages: a proposer, a bench agent, a sandbox backend, an
ODE solver and a noise kind, registered on import. The tests name it in ``MMW_PLUGINS``
and use each through the command line or the benchmark runner, whose job processes are
spawned, so they must find it themselves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import sympy as sp
from decay_models import decay_source  # tests/: the tests put it on the plugin's path

from agent.core import Candidate, Usage
from agent.proposers import register_proposer
from evals.agents import AgentOutcome, AgentSpec, register_agent
from mechanistic.noise import Noise, register_noise
from mechanistic.solvers import Solver, register_solver
from sandbox.auto import Backend, register_backend

DECAY = decay_source(model="toy decay", structure="toy first-order decay")


class ToyProposer:
    """Always the same first-order decay; refuses repairs, refinements and what-ifs."""

    name = "toy"

    def __init__(self) -> None:
        self.usage = Usage()

    def propose(self, task, n):
        return [Candidate("toy-0", DECAY, "toy first-order decay", proposer="toy")][:n]

    def repair(self, task, candidate, feedback):
        return None

    def refine(self, task, candidate, critique, n=1):
        return []

    def intervention(self, task, candidate, model_json, question):
        raise ValueError("the toy proposer maps no questions")


class Persistence:
    """Forecasts every observed column as its last observed value."""

    name = "persistence"

    def run(self, task, seed, budget, sandbox, workdir):
        started = time.perf_counter()
        data = task.agent_task(seed).data
        forecast = {}
        for column in task.observed:
            values = np.asarray(data.values[column], dtype=float)
            last = values[np.isfinite(values)][-1]
            forecast[column] = np.full(len(task.times), last)
        n = len(task.counterfactuals)
        return AgentOutcome(agent="persistence", valid=True, reason="", structure="persistence",
                            nodes=0, valid_nodes=0, repairs=0, llm_calls=0, tokens=0,
                            wall_s=time.perf_counter() - started, forecast=forecast,
                            counterfactuals=(None,) * n, interventions=([],) * n, params={})


class ToySandbox:
    """A sandbox backend of the plugin's own: the local bwrap backend under another name,
    counting the runs it served (the test reads the count from its stdout marker)."""

    name = "toy"

    def __init__(self) -> None:
        from sandbox.local import LocalConfig, LocalSandbox

        self.inner = LocalSandbox(LocalConfig(mode="bwrap"))
        self.runs = 0

    def run(self, spec):
        self.runs += 1
        return self.inner.run(spec)

    def guarantees(self):
        return self.inner.guarantees()

    def close(self):
        self.inner.close()


@dataclass(frozen=True)
class Euler(Solver):
    """Explicit Euler with a fixed step: first order, so its error is plain to see."""

    dt: float = 0.01
    divergence_threshold: float = 1e15
    kind: ClassVar[str] = "Euler"

    def integrate(self, model, y, interval, params, status, box):
        env, transfer, inflow = model._interval_env(params, interval, as_tensors=False)
        n = max(1, math.ceil((interval.end - interval.start) / self.dt - 1e-9))
        h = (interval.end - interval.start) / n
        for i in range(n):
            y = y + h * model.rhs(interval.start + i * h, y, env, transfer, inflow)
        return y, status


@dataclass(frozen=True)
class Laplace(Noise):
    """y ~ Laplace(f, b): absolute deviations (a median fit), heavier tails than a normal."""

    b: Any
    kind: ClassVar[str] = "laplace"
    formula: ClassVar[str] = "y ~ Laplace(f, b)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "b", sp.sympify(self.b, strict=True))

    def log_density(self, f, y, args):
        import torch

        return -torch.abs(y - f) / args["b"] - torch.log(2 * args["b"])

    def standardised(self, f, y, args):
        return (y - f) / (args["b"] * math.sqrt(2.0))

    def draw(self, f, args, rng):
        return f + rng.laplace(0.0, 1.0, np.shape(f)) * args["b"]

    def distribution(self, f):
        return "Laplace", None, [f, self.b]


register_proposer("toy", lambda settings: ToyProposer(), replace=True)
register_solver(Euler, replace=True)
register_backend("toy", Backend(lambda settings: ToySandbox()), replace=True)
register_agent("persistence", AgentSpec(lambda llm: Persistence(), needs_sandbox=False,
                                        doc="last value carried forward"), replace=True)
register_noise(Laplace, replace=True)
