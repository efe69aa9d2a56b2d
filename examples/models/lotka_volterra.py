"""Lotka-Volterra predator-prey model with multiplicative (log-normal) counting noise.

Prey grow exponentially without predators and are eaten by mass action; predators grow
in proportion to prey eaten and die at a constant rate. The textbook reference model for
oscillating populations, used in tests of the simulator and of parameter recovery.
"""

from mechanistic import LogNormalNoise, LogUniform, Model

m = Model("Lotka-Volterra predator-prey", time_unit="year")
prey, predator = m.states("prey predator")
alpha = m.param("alpha", LogUniform(0.1, 3.0), doc="prey birth rate", unit="1/year")
beta = m.param("beta", LogUniform(0.005, 0.5), doc="predation rate per predator",
               unit="1/(predator year)")
delta = m.param("delta", LogUniform(0.005, 0.5), doc="predator growth per prey eaten",
                unit="1/(prey year)")
gamma = m.param("gamma", LogUniform(0.1, 3.0), doc="predator death rate", unit="1/year")
sigma = m.param("sigma", LogUniform(0.01, 1.0), doc="log-scale observation noise")

m.flow(None, prey, alpha * prey, name="prey_births")
m.flow(prey, None, beta * prey * predator, name="predation")
m.flow(None, predator, delta * prey * predator, name="predator_births")
m.flow(predator, None, gamma * predator, name="predator_deaths")
m.init(prey=30.0, predator=4.0)
m.observe("prey", prey, noise=LogNormalNoise(sigma), doc="prey count")
m.observe("predator", predator, noise=LogNormalNoise(sigma), doc="predator count")
