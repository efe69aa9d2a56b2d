"""Three textbook epidemic structures (SIR, SEIR, SIRS) sharing one reported-cases series.

Used by the tests and the model-selection benchmark: small, fast to simulate, and hard to
tell apart from a few noisy weeks, which is the point of the comparison against AIC.
"""

from __future__ import annotations

from mechanistic import LogUniform, Model, NegBinomial, Uniform

__all__ = ["epidemic_structures", "seir", "sir", "sirs"]

POPULATION = 1e5


def _base(name: str, states: str) -> tuple[Model, tuple]:
    m = Model(name, time_unit="day")
    return m, m.states(states)


def sir() -> Model:
    """S -> I -> R; reported cases are a fraction of new infections."""
    m, (S, I, R) = _base("SIR", "S I R")
    beta = m.param("beta", LogUniform(0.15, 1.5), doc="transmission rate")
    gamma = m.param("gamma", Uniform(1 / 14, 1 / 3), doc="recovery rate")
    rho = m.param("rho", Uniform(0.1, 1.0), doc="reporting fraction")
    phi = m.param("phi", LogUniform(5, 100), doc="dispersion")
    N = S + I + R
    m.flow(S, I, beta * S * I / N, name="infection")
    m.flow(I, R, gamma * I, name="recovery")
    m.init(S=POPULATION - 20, I=20, R=0)
    m.observe("cases", rho * beta * S * I / N, noise=NegBinomial(phi))
    return m


def seir() -> Model:
    """S -> E -> I -> R; the latent stage delays and smooths the rise."""
    m, (S, E, I, R) = _base("SEIR", "S E I R")
    beta = m.param("beta", LogUniform(0.15, 1.5), doc="transmission rate")
    sigma = m.param("sigma", Uniform(1 / 7, 1 / 2), doc="rate of becoming infectious")
    gamma = m.param("gamma", Uniform(1 / 14, 1 / 3), doc="recovery rate")
    rho = m.param("rho", Uniform(0.1, 1.0), doc="reporting fraction")
    phi = m.param("phi", LogUniform(5, 100), doc="dispersion")
    N = S + E + I + R
    m.flow(S, E, beta * S * I / N, name="infection")
    m.flow(E, I, sigma * E, name="onset")
    m.flow(I, R, gamma * I, name="recovery")
    m.init(S=POPULATION - 20, E=0, I=20, R=0)
    m.observe("cases", rho * sigma * E, noise=NegBinomial(phi))
    return m


def sirs() -> Model:
    """S -> I -> R -> S; waning immunity feeds susceptibles back."""
    m, (S, I, R) = _base("SIRS", "S I R")
    beta = m.param("beta", LogUniform(0.15, 1.5), doc="transmission rate")
    gamma = m.param("gamma", Uniform(1 / 14, 1 / 3), doc="recovery rate")
    omega = m.param("omega", LogUniform(0.01, 0.2), doc="waning rate")
    rho = m.param("rho", Uniform(0.1, 1.0), doc="reporting fraction")
    phi = m.param("phi", LogUniform(5, 100), doc="dispersion")
    N = S + I + R
    m.flow(S, I, beta * S * I / N, name="infection")
    m.flow(I, R, gamma * I, name="recovery")
    m.flow(R, S, omega * R, name="waning")
    m.init(S=POPULATION - 20, I=20, R=0)
    m.observe("cases", rho * beta * S * I / N, noise=NegBinomial(phi))
    return m


def epidemic_structures() -> list[Model]:
    return [sir(), seir(), sirs()]
