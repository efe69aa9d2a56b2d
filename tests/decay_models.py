"""The first-order decay module the tests share: one copy of its source, data from it.

dx/dt = -k x with log-normal measurements: its fit is known in closed form (k = 0.2 in
:func:`decay_task`'s data), so tests of the loop, the CLI, the review and the bench can
check what was found against the truth. ``pythonpath = ["tests"]`` (pyproject.toml)
makes this importable from every test folder.
"""

from __future__ import annotations

import functools

import numpy as np

_TEMPLATE = """\
# structure: {structure}
from mechanistic import LogNormalNoise, LogUniform, Model

m = Model("{model}", time_unit="day")
x = m.state("x")
k = m.param("k", LogUniform(0.01, 2.0), doc="fractional loss rate")
x0 = m.param("x0", LogUniform(1.0, 1000.0))
s = m.param("s", LogUniform(0.01, 1.0))
m.flow(x, None, k * x, name="loss")
m.init(x=x0)
m.observe("{observable}", x, noise=LogNormalNoise(s))
"""


def decay_source(model: str = "decay", structure: str = "first-order decay",
                 observable: str = "x") -> str:
    """The decay module, under other names where a test needs them."""
    return _TEMPLATE.format(model=model, structure=structure, observable=observable)


DECAY_SOURCE = decay_source()


@functools.cache
def decay_model_json() -> str:
    """The model JSON of :data:`DECAY_SOURCE`, built in-process (test code, not a module
    from outside)."""
    namespace: dict = {}
    exec(compile(DECAY_SOURCE, "decay.py", "exec"), namespace)
    return namespace["m"].to_json()


def decay_task():
    """30 days of x = 100 exp(-0.2 t) with 5% log-normal noise; fitted to day 20."""
    from agent.core import Task
    from mechanistic.data import ObservedData

    t = np.arange(0.0, 30.0)
    rng = np.random.default_rng(1)
    y = 100.0 * np.exp(-0.2 * t) * np.exp(rng.normal(0.0, 0.05, t.size))
    return Task("a substance decays at a constant fractional rate", ObservedData(t, {"x": y}),
                train_until=20.0)
