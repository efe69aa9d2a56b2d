"""SEIR epidemic with under-reporting and a contact-reduction control."""

from mechanistic import LogUniform, Model, NegBinomial, Uniform

m = Model("SEIR with under-reporting", time_unit="day")
S, E, I, R = m.states("S E I R")
beta = m.param("beta", LogUniform(0.05, 3.0), doc="transmission rate", unit="1/day")
sigma = m.param("sigma", Uniform(1 / 7, 1 / 2), doc="rate of becoming infectious", unit="1/day")
gamma = m.param("gamma", Uniform(1 / 14, 1 / 3), doc="recovery rate", unit="1/day")
rho = m.param("rho", Uniform(0.05, 1.0), doc="reporting fraction")
phi = m.param("phi", LogUniform(1, 100), doc="negative binomial dispersion")
u = m.control("contact_reduction", default=0.0, doc="fraction of contacts avoided")
N = S + E + I + R
m.flow(S, E, (1 - u) * beta * S * I / N, name="infection")
m.flow(E, I, sigma * E, name="onset")
m.flow(I, R, gamma * I, name="recovery")
m.init(S=1e6 - 10, E=0, I=10, R=0)
m.observe("cases", rho * sigma * E, noise=NegBinomial(phi), doc="reported daily cases")
