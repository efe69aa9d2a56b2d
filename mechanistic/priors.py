"""Parameter priors.

A prior does three jobs: it states the plausible range a scientist believes in (shown
in review), it gives the support that fitting maps an unconstrained optimiser onto, and
it is the sampling distribution for SGNN corpora and multi-start fits. Priors are frozen,
validated dataclasses that serialise to plain JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np

from mechanistic.errors import ModelError

__all__ = [
    "Fixed",
    "HalfNormal",
    "LogNormal",
    "LogUniform",
    "Normal",
    "Prior",
    "Support",
    "Uniform",
    "prior_from_dict",
]


@dataclass(frozen=True)
class Support:
    """Where a parameter may live: the real line, (lower, inf), or (lower, upper)."""

    lower: float = -math.inf
    upper: float = math.inf

    @property
    def kind(self) -> str:
        if math.isinf(self.lower) and math.isinf(self.upper):
            return "real"
        if math.isinf(self.upper):
            return "lower"
        return "interval"


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ModelError(f"prior argument {name}={value!r} must be a finite number")
    return value


class Prior:
    """Base class; subclasses are frozen dataclasses with a ``kind`` tag."""

    kind: ClassVar[str] = ""

    @property
    def support(self) -> Support:  # pragma: no cover - overridden
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def log_prob(self, x: np.ndarray | float) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @property
    def typical(self) -> float:
        """A central value: starting point for fits and default for simulations."""
        raise NotImplementedError  # pragma: no cover

    def describe(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in asdict(self).items())  # type: ignore[call-overload]
        return f"{type(self).__name__}({args})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class Uniform(Prior):
    low: float
    high: float
    kind: ClassVar[str] = "uniform"

    def __post_init__(self) -> None:
        _finite("low", self.low)
        _finite("high", self.high)
        if not self.low < self.high:
            raise ModelError(f"Uniform needs low < high, got low={self.low}, high={self.high}")

    @property
    def support(self) -> Support:
        return Support(float(self.low), float(self.high))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=n)

    def log_prob(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        inside = (x >= self.low) & (x <= self.high)
        return np.where(inside, -math.log(self.high - self.low), -np.inf)

    @property
    def typical(self) -> float:
        return 0.5 * (self.low + self.high)


@dataclass(frozen=True)
class LogUniform(Prior):
    low: float
    high: float
    kind: ClassVar[str] = "log_uniform"

    def __post_init__(self) -> None:
        _finite("low", self.low)
        _finite("high", self.high)
        if not 0 < self.low < self.high:
            raise ModelError(
                f"LogUniform needs 0 < low < high, got low={self.low}, high={self.high}"
            )

    @property
    def support(self) -> Support:
        return Support(float(self.low), float(self.high))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.exp(rng.uniform(math.log(self.low), math.log(self.high), size=n))

    def log_prob(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        inside = (x >= self.low) & (x <= self.high)
        norm = math.log(math.log(self.high) - math.log(self.low))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(inside, -np.log(x) - norm, -np.inf)

    @property
    def typical(self) -> float:
        return math.sqrt(self.low * self.high)


@dataclass(frozen=True)
class Normal(Prior):
    mean: float
    std: float
    kind: ClassVar[str] = "normal"

    def __post_init__(self) -> None:
        _finite("mean", self.mean)
        if not _finite("std", self.std) > 0:
            raise ModelError(f"Normal needs std > 0, got {self.std}")

    @property
    def support(self) -> Support:
        return Support()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(self.mean, self.std, size=n)

    def log_prob(self, x: np.ndarray | float) -> np.ndarray:
        z = (np.asarray(x, dtype=float) - self.mean) / self.std
        return -0.5 * z**2 - math.log(self.std) - 0.5 * math.log(2 * math.pi)

    @property
    def typical(self) -> float:
        return float(self.mean)


@dataclass(frozen=True)
class LogNormal(Prior):
    """Log-normal with parameters of the underlying normal: log(x) ~ N(mu, sigma)."""

    mu: float
    sigma: float
    kind: ClassVar[str] = "log_normal"

    def __post_init__(self) -> None:
        _finite("mu", self.mu)
        if not _finite("sigma", self.sigma) > 0:
            raise ModelError(f"LogNormal needs sigma > 0, got {self.sigma}")

    @property
    def support(self) -> Support:
        return Support(0.0, math.inf)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, size=n)

    def log_prob(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (np.log(x) - self.mu) / self.sigma
            lp = -0.5 * z**2 - np.log(x * self.sigma) - 0.5 * math.log(2 * math.pi)
        return np.where(x > 0, lp, -np.inf)

    @property
    def typical(self) -> float:
        return math.exp(self.mu)


@dataclass(frozen=True)
class HalfNormal(Prior):
    scale: float
    kind: ClassVar[str] = "half_normal"

    def __post_init__(self) -> None:
        if not _finite("scale", self.scale) > 0:
            raise ModelError(f"HalfNormal needs scale > 0, got {self.scale}")

    @property
    def support(self) -> Support:
        return Support(0.0, math.inf)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.abs(rng.normal(0.0, self.scale, size=n))

    def log_prob(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        z = x / self.scale
        lp = -0.5 * z**2 - math.log(self.scale) + 0.5 * math.log(2 / math.pi)
        return np.where(x >= 0, lp, -np.inf)

    @property
    def typical(self) -> float:
        return self.scale * math.sqrt(2 / math.pi)


@dataclass(frozen=True)
class Fixed(Prior):
    """A parameter held at a known value: shown in review, never fitted."""

    value: float
    kind: ClassVar[str] = "fixed"

    def __post_init__(self) -> None:
        _finite("value", self.value)

    @property
    def support(self) -> Support:
        return Support(float(self.value), float(self.value))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value))

    def log_prob(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.where(x == self.value, 0.0, -np.inf)

    @property
    def typical(self) -> float:
        return float(self.value)


_PRIORS: dict[str, type[Prior]] = {
    cls.kind: cls for cls in (Uniform, LogUniform, Normal, LogNormal, HalfNormal, Fixed)
}


def prior_from_dict(data: Any) -> Prior:
    """Rebuild a prior from its JSON form, with errors that name what is wrong."""
    if not isinstance(data, dict) or "kind" not in data:
        raise ModelError(f"a prior must be an object with a 'kind', got {str(data)[:80]}")
    kind = data["kind"]
    cls = _PRIORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ModelError(f"unknown prior kind {str(kind)[:40]!r}; known: {sorted(_PRIORS)}")
    args = {k: v for k, v in data.items() if k != "kind"}
    expected = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    if set(args) != expected:
        raise ModelError(f"prior {kind!r} needs fields {sorted(expected)}, got {sorted(args)}")
    for key, value in args.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                abs(value) <= 1e300 if isinstance(value, int) else math.isfinite(value)):
            raise ModelError(f"prior {kind!r} field {key!r} must be a finite number below "
                             f"1e300, got {str(value)[:40]}")
    return cls(**args)
