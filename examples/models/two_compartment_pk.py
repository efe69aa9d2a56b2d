"""Two-compartment pharmacokinetics with first-order oral absorption.

Doses enter the gut depot as interventions (``Dose(state="gut", amount=..., times=...)``),
are absorbed into the central compartment (plasma), distribute to and from a peripheral
compartment (tissue) and are cleared from plasma. The measured quantity is the plasma
concentration; assay error has an additive floor plus a proportional part.
"""

from mechanistic import LogNormal, LogUniform, Model, PropAdd

m = Model("Two-compartment PK, oral dosing", time_unit="hour")
gut, central, peripheral = m.states("gut central peripheral")
ka = m.param("ka", LogUniform(0.1, 5.0), doc="absorption rate constant", unit="1/h")
CL = m.param("CL", LogNormal(1.6, 0.5), doc="clearance", unit="L/h")
V1 = m.param("V1", LogUniform(5.0, 100.0), doc="central volume", unit="L")
Q = m.param("Q", LogUniform(0.5, 20.0), doc="inter-compartmental clearance", unit="L/h")
V2 = m.param("V2", LogUniform(5.0, 200.0), doc="peripheral volume", unit="L")
a = m.param("a", LogUniform(0.001, 1.0), doc="additive assay error", unit="mg/L")
b = m.param("b", LogUniform(0.01, 0.5), doc="proportional assay error")

m.flow(gut, central, ka * gut, name="absorption")
m.flow(central, None, CL / V1 * central, name="elimination")
m.flow(central, peripheral, Q / V1 * central, name="distribution")
m.flow(peripheral, central, Q / V2 * peripheral, name="redistribution")
m.init(gut=0, central=0, peripheral=0)
m.observe("conc", central / V1, noise=PropAdd(a, b), doc="plasma concentration", unit="mg/L")
