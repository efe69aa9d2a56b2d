"""Where generated code runs: a container, or an isolated local process.

One :class:`Sandbox` protocol, two backends (``container`` through the docker
SDK, ``local`` through bubblewrap), chosen by :func:`sandbox.auto.open_sandbox`.
:func:`sandbox.runner.run_model_module` runs a DSL module and returns its
model as JSON or a structured error. Every run returns a :class:`RunResult`.

Only the data types are re-exported here (standard library only, no side
effects): the in-container guest imports this package too.
"""

from sandbox.spec import (
    Guarantees,
    LimitHit,
    Limits,
    RunResult,
    RunSpec,
    Sandbox,
    SandboxError,
)

__all__ = ["Guarantees", "LimitHit", "Limits", "RunResult", "RunSpec", "Sandbox", "SandboxError"]
