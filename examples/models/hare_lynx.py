"""Lotka-Volterra predator-prey model for the Hudson's Bay hare and lynx pelt records.

Time is the calendar year itself (the data's ``Year`` column), so the simulation starts in
1845 at the first record. Pelts are counted in thousands; both series are positive and
their scatter grows with their size, hence multiplicative (log-normal) observation noise.
"""

from mechanistic import LogNormalNoise, LogUniform, Model

m = Model("Lotka-Volterra hare and lynx", time_unit="year",
          doc="Hudson's Bay Company pelt records, 1845-1935, in thousands")
H, L = m.states("H L")
alpha = m.param("alpha", LogUniform(0.05, 3.0), doc="hare birth rate", unit="1/year")
beta = m.param("beta", LogUniform(1e-3, 0.5), doc="predation rate", unit="1/(thousand year)")
delta = m.param("delta", LogUniform(1e-3, 0.5), doc="lynx growth per hare eaten",
                unit="1/(thousand year)")
gamma = m.param("gamma", LogUniform(0.05, 3.0), doc="lynx death rate", unit="1/year")
H0 = m.param("H0", LogUniform(1.0, 200.0), doc="hares in 1845", unit="thousand")
L0 = m.param("L0", LogUniform(1.0, 200.0), doc="lynx in 1845", unit="thousand")
s_hare = m.param("s_hare", LogUniform(0.01, 3.0), doc="log-scale noise of hare counts")
s_lynx = m.param("s_lynx", LogUniform(0.01, 3.0), doc="log-scale noise of lynx counts")

m.flow(None, H, alpha * H, name="hare_births")
m.flow(H, None, beta * H * L, name="predation")
m.flow(None, L, delta * H * L, name="lynx_births")
m.flow(L, None, gamma * L, name="lynx_deaths")
m.init(H=H0, L=L0)
m.observe("Hare", H, noise=LogNormalNoise(s_hare), doc="hare pelts", unit="thousand")
m.observe("Lynx", L, noise=LogNormalNoise(s_lynx), doc="lynx pelts", unit="thousand")
