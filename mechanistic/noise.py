"""Observation noise models, declared in the DSL, each carrying its own behaviour.

A noise model says how a measurement scatters around the model's prediction ``f``.
Its arguments are expressions (usually a declared parameter, so the noise level is
fitted with the rest, or a number). Each kind is one class holding everything about it:
its exact log-density and standardised residual (torch, for fits and the repair loop),
its sampler (numpy, for synthetic data, suite tasks and SGNN corpora), the data it can
explain, and its distribution for the review. A new kind is one class, here or in a
plugin, registered with :func:`register_noise` (the built-ins are in ``NOISE_KINDS``
from the start); the likelihood, the residuals, the samplers and the review call its
methods and never dispatch on the type. What still names kinds, on purpose, is listed in
``docs/architecture.md`` ("Noise kind"): the DSL's exports and the names ``to_source``
reserves.

torch is imported inside the methods that need it, so declaring a model (in the
sandbox) never loads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import sympy as sp

__all__ = [
    "LOQ_FRACTION",
    "NOISE_KINDS",
    "TINY",
    "Gaussian",
    "LogNormalNoise",
    "NegBinomial",
    "Noise",
    "Poisson",
    "PropAdd",
    "register_noise",
]


TINY = 1e-10
"""Smallest mean/median a count or log-normal density is evaluated at: a simulated epidemic
that dips to -1e-9 by round-off must not turn a fit's gradient into NaN."""

LOQ_FRACTION = 1e-6
"""A log-normal draw whose mean is under this fraction of its series' peak is below the
limit of quantification (a concentration before the first dose) and is missing (NaN)."""

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
Tensor = Any  # torch.Tensor, named without importing torch
Args = Mapping[str, Any]


class Noise:
    """Base class: frozen dataclasses whose fields are sympy expressions.

    Methods take predictions ``f`` and data ``y`` of one observable, ``[T]`` or ``[B, T]``,
    and the noise arguments evaluated per sample (``[B, 1]`` tensors or arrays).
    """

    kind: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    counts: ClassVar[bool] = False
    """Whether the data are counts (whole numbers >= 0): forecasts of such a series are
    floored at zero (``sgnn.heads.ForecastHead``)."""

    def arguments(self) -> dict[str, sp.Expr]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.arguments().items())
        return f"{type(self).__name__}({args})"

    def log_density(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        """Exact, normalised log-density of ``y`` given ``f`` (torch)."""
        raise NotImplementedError

    def standardised(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        """``(y - E[y]) / sd[y]`` (log scale for log-normal noise), torch."""
        raise NotImplementedError

    def draw(self, f: np.ndarray, args: Args, rng: np.random.Generator) -> np.ndarray:
        """Noisy values around finite ``f`` (numpy); :meth:`sample` handles the rest."""
        raise NotImplementedError

    def sample(self, f: np.ndarray, args: Args, rng: np.random.Generator) -> np.ndarray:
        """One noisy realisation of ``f``; NaN where ``f`` is not finite."""
        f = np.asarray(f, dtype=float)
        ok = np.isfinite(f)
        out = self.draw(np.where(ok, f, 0.0), args, rng)
        return np.where(ok, out, np.nan)

    def support_problem(self, values: np.ndarray) -> str | None:
        """Why observed ``values`` have zero probability under this noise, or None."""
        return None

    def distribution(self, f: sp.Expr) -> tuple[str, str | None, list[sp.Expr]]:
        """(distribution, transform of the measurement or None, its arguments), for review."""
        raise NotImplementedError

    def petab(self, f: str, formula: Callable[[sp.Expr], str]
              ) -> tuple[str, str, str | None] | None:
        """This noise as PEtab v1's normal noise (``mechanistic/formats/petab_out.py``):
        ``(noiseFormula, observableTransformation, a note or None)`` for a prediction
        written ``f``, with ``formula`` writing an argument in the problem's ids. ``None``:
        PEtab v1 has no form for it (the export refuses the model, saying so)."""
        return None


def _normal_log_density(z: Tensor, sd: Tensor) -> Tensor:
    import torch

    return -0.5 * z * z - torch.log(sd) - _HALF_LOG_2PI


class _Counts(Noise):
    """Shared by the count kinds: defined for y >= 0 only, means clamped positive."""

    counts: ClassVar[bool] = True

    def support_problem(self, values: np.ndarray) -> str | None:
        if (values < 0).any():
            return f"has count noise ({self.kind}) but the data hold negative values"
        return None


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

    def log_density(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        return _normal_log_density((y - f) / args["sigma"], args["sigma"])

    def standardised(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        return (y - f) / args["sigma"]

    def draw(self, f: np.ndarray, args: Args, rng: np.random.Generator) -> np.ndarray:
        return f + args["sigma"] * rng.standard_normal(f.shape)

    def distribution(self, f: sp.Expr) -> tuple[str, str | None, list[sp.Expr]]:
        return "Normal", None, [f, self.sigma]

    def petab(self, f: str, formula: Callable[[sp.Expr], str]
              ) -> tuple[str, str, str | None]:
        return formula(self.sigma), "lin", None


@dataclass(frozen=True)
class LogNormalNoise(Noise):
    """log y ~ Normal(log f, sigma): multiplicative noise for positive measurements."""

    sigma: Any
    kind: ClassVar[str] = "lognormal"
    formula: ClassVar[str] = "log y ~ Normal(log f, sigma)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _expr(self.sigma))

    def log_density(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        import torch

        positive = y > 0
        log_y = torch.log(torch.where(positive, y, torch.ones_like(y)))
        sd = args["sigma"]
        z = (log_y - torch.log(f.clamp_min(TINY))) / sd
        logp = -0.5 * z * z - torch.log(sd) - log_y - _HALF_LOG_2PI
        return torch.where(positive, logp, torch.full_like(logp, -math.inf))

    def standardised(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        import torch

        return (torch.log(y) - torch.log(f.clamp_min(TINY))) / args["sigma"]

    def draw(self, f: np.ndarray, args: Args, rng: np.random.Generator) -> np.ndarray:
        out = np.maximum(f, TINY) * np.exp(args["sigma"] * rng.standard_normal(f.shape))
        peak = np.max(np.abs(f), axis=-1, keepdims=True) if f.size else np.zeros(f.shape)
        return np.where(f > LOQ_FRACTION * np.maximum(peak, 1e-300), out, np.nan)

    def support_problem(self, values: np.ndarray) -> str | None:
        if (values <= 0).any():
            return (f"has log-normal noise but the data hold {int((values <= 0).sum())} "
                    "value(s) <= 0; use Gaussian, PropAdd or count noise, or drop the zeros")
        return None

    def distribution(self, f: sp.Expr) -> tuple[str, str | None, list[sp.Expr]]:
        return "Normal", "log", [sp.log(f, evaluate=False), self.sigma]

    def petab(self, f: str, formula: Callable[[sp.Expr], str]
              ) -> tuple[str, str, str | None]:
        return formula(self.sigma), "log", None


@dataclass(frozen=True)
class Poisson(_Counts):
    """y ~ Poisson(f): counts whose variance equals their mean."""

    kind: ClassVar[str] = "poisson"
    formula: ClassVar[str] = "y ~ Poisson(f)"

    def log_density(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        import torch

        mu = f.clamp_min(TINY)
        logp = torch.xlogy(y, mu) - mu - torch.lgamma(y + 1)
        return torch.where(y >= 0, logp, torch.full_like(logp, -math.inf))

    def standardised(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        import torch

        mu = f.clamp_min(TINY)
        return (y - mu) / torch.sqrt(mu)

    def draw(self, f: np.ndarray, args: Args, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(np.maximum(f, 0.0)).astype(float)

    def distribution(self, f: sp.Expr) -> tuple[str, str | None, list[sp.Expr]]:
        return "Poisson", None, [f]

    def petab(self, f: str, formula: Callable[[sp.Expr], str]
              ) -> tuple[str, str, str | None]:
        return (f"sqrt({f})", "lin", "Poisson noise written as normal with variance f "
                "(PEtab v1 has no count distributions)")


@dataclass(frozen=True)
class NegBinomial(_Counts):
    """y ~ NegBinomial(mean f, dispersion phi): overdispersed counts, var = f + f^2/phi."""

    phi: Any
    kind: ClassVar[str] = "negbinomial"
    formula: ClassVar[str] = "y ~ NegBinomial(mean=f, var=f + f^2/phi)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "phi", _expr(self.phi))

    def log_density(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        import torch

        phi = args["phi"]
        mu = f.clamp_min(TINY)
        log_total = torch.log(phi + mu)
        logp = (torch.lgamma(y + phi) - torch.lgamma(phi) - torch.lgamma(y + 1)
                + phi * (torch.log(phi) - log_total) + torch.xlogy(y, mu) - y * log_total)
        return torch.where(y >= 0, logp, torch.full_like(logp, -math.inf))

    def standardised(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        import torch

        mu = f.clamp_min(TINY)
        return (y - mu) / torch.sqrt(mu + mu * mu / args["phi"])

    def draw(self, f: np.ndarray, args: Args, rng: np.random.Generator) -> np.ndarray:
        """Gamma-Poisson mixture: a gamma rate per point, then a Poisson count at it."""
        phi = args["phi"]
        rate = rng.gamma(phi, np.maximum(f, 1e-12) / phi)
        return rng.poisson(rate).astype(float)

    def distribution(self, f: sp.Expr) -> tuple[str, str | None, list[sp.Expr]]:
        return "NegBinomial", None, [f, self.phi]

    def petab(self, f: str, formula: Callable[[sp.Expr], str]
              ) -> tuple[str, str, str | None]:
        return (f"sqrt({f} + {f}**2/({formula(self.phi)}))", "lin",
                "negative binomial noise written as normal with variance f + f^2/phi "
                "(PEtab v1 has no count distributions)")


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

    @staticmethod
    def _sd(f: Tensor, args: Args) -> Tensor:
        import torch

        return torch.sqrt(args["a"] ** 2 + (args["b"] * f) ** 2)

    def log_density(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        sd = self._sd(f, args)
        return _normal_log_density((y - f) / sd, sd)

    def standardised(self, f: Tensor, y: Tensor, args: Args) -> Tensor:
        return (y - f) / self._sd(f, args)

    def draw(self, f: np.ndarray, args: Args, rng: np.random.Generator) -> np.ndarray:
        sd = np.sqrt(args["a"] ** 2 + (args["b"] * f) ** 2)
        return f + sd * rng.standard_normal(f.shape)

    def distribution(self, f: sp.Expr) -> tuple[str, str | None, list[sp.Expr]]:
        return "Normal", None, [f, sp.sqrt(self.a**2 + (self.b * f) ** 2)]

    def petab(self, f: str, formula: Callable[[sp.Expr], str]
              ) -> tuple[str, str, str | None]:
        return (f"sqrt(({formula(self.a)})**2 + (({formula(self.b)})*{f})**2)", "lin",
                None)


NOISE_KINDS: dict[str, type[Noise]] = {
    cls.kind: cls for cls in (Gaussian, LogNormalNoise, Poisson, NegBinomial, PropAdd)
}
"""Noise classes by ``kind`` (the name model JSON stores); add to it with
:func:`register_noise`."""


def register_noise(cls: type[Noise], *, replace: bool = False) -> type[Noise]:
    """Add a noise kind under its ``kind`` (usable as a decorator); a taken kind needs
    ``replace``. The class must be a frozen dataclass subclass of :class:`Noise` (its
    fields are its arguments, which model JSON stores beside the kind). A plugin
    (``MMW_PLUGINS``, see :mod:`mechanistic.plugins`) registers its kinds on import; a
    DSL module that declares one runs in the sandbox, where plugins are not loaded, so
    models with a plugin's noise travel as model JSON."""
    if not (isinstance(cls, type) and issubclass(cls, Noise)):
        raise ValueError(f"register_noise needs a Noise subclass, got {cls!r}")
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise ValueError(f"noise kind {cls.__name__}: declare it as a frozen dataclass")
    if not isinstance(cls.kind, str) or not cls.kind.isidentifier() or \
            cls.kind != cls.kind.lower():
        raise ValueError(f"noise kind {cls.__name__}: `kind` must be a lower-case identifier, "
                         f"got {cls.kind!r}")
    if cls.kind in NOISE_KINDS and NOISE_KINDS[cls.kind] is not cls and not replace:
        raise ValueError(f"a noise kind called {cls.kind!r} is already registered")
    NOISE_KINDS[cls.kind] = cls
    return cls
