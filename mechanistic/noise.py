"""Observation noise models, declared in the DSL.

A noise model says how a measurement scatters around the model's prediction ``f``.
Its arguments are expressions (usually a declared parameter, so the noise level is
fitted with the rest, or a number). Likelihoods and sampling live in
:mod:`mechanistic.observation` (torch); this module only declares and serialises.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import sympy as sp

__all__ = [
    "Gaussian",
    "LogNormalNoise",
    "NegBinomial",
    "Noise",
    "Poisson",
    "PropAdd",
]


class Noise:
    """Base class: frozen dataclasses whose fields are sympy expressions."""

    kind: ClassVar[str] = ""
    formula: ClassVar[str] = ""

    def arguments(self) -> dict[str, sp.Expr]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.arguments().items())
        return f"{type(self).__name__}({args})"


def _expr(value: Any) -> sp.Expr:
    return sp.sympify(value, strict=True)


@dataclass(frozen=True)
class Gaussian(Noise):
    """y ~ Normal(f, sigma): additive noise of constant size."""

    sigma: Any
    kind: ClassVar[str] = "gaussian"
    formula: ClassVar[str] = "y ~ Normal(f, sigma)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _expr(self.sigma))


@dataclass(frozen=True)
class LogNormalNoise(Noise):
    """log y ~ Normal(log f, sigma): multiplicative noise for positive measurements."""

    sigma: Any
    kind: ClassVar[str] = "lognormal"
    formula: ClassVar[str] = "log y ~ Normal(log f, sigma)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _expr(self.sigma))


@dataclass(frozen=True)
class Poisson(Noise):
    """y ~ Poisson(f): counts whose variance equals their mean."""

    kind: ClassVar[str] = "poisson"
    formula: ClassVar[str] = "y ~ Poisson(f)"


@dataclass(frozen=True)
class NegBinomial(Noise):
    """y ~ NegBinomial(mean f, dispersion phi): overdispersed counts, var = f + f^2/phi."""

    phi: Any
    kind: ClassVar[str] = "negbinomial"
    formula: ClassVar[str] = "y ~ NegBinomial(mean=f, var=f + f^2/phi)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "phi", _expr(self.phi))


@dataclass(frozen=True)
class PropAdd(Noise):
    """y ~ Normal(f, sqrt(a^2 + (b f)^2)): additive floor plus proportional error."""

    a: Any
    b: Any
    kind: ClassVar[str] = "propadd"
    formula: ClassVar[str] = "y ~ Normal(f, sqrt(a^2 + (b f)^2))"

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", _expr(self.a))
        object.__setattr__(self, "b", _expr(self.b))


NOISE_KINDS: dict[str, type[Noise]] = {
    cls.kind: cls for cls in (Gaussian, LogNormalNoise, Poisson, NegBinomial, PropAdd)
}
