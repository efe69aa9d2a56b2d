"""SBML files written from published equations, as other tools write them.

Each function returns SBML text that mmw did not write: three through Antimony (the way
Tellurium users write them: concentrations in compartments, reactions, assignment rules,
function definitions, events) and two as hand-written XML (Level 2 with local kinetic-law
parameters, and Level 3 rate rules on parameters). The equations and values are those of
the cited papers; the tests import each with mmw and compare mmw's simulation to
libRoadRunner's on the same text.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sbml_cases import RR_ATOL, RR_RTOL, relative_error, simulate_mmw


def _antimony(text: str) -> str:
    import antimony

    antimony.clearPreviousLoads()
    if antimony.loadAntimonyString(text) < 0:
        raise AssertionError(antimony.getLastError())
    return antimony.getSBMLString(antimony.getMainModuleName())


def goldbeter_1991() -> str:
    """Goldbeter (1991) PNAS 88:9107, the minimal mitotic oscillator (BioModels
    BIOMD0000000003): cyclin C, active cdc2 M, active protease X."""
    return _antimony("""
    model goldbeter1991
      compartment cell = 1;
      species C in cell, M in cell, X in cell;
      C = 0.01; M = 0.01; X = 0.01;
      vi = 0.025; vd = 0.25; Kd = 0.02; kd = 0.01; Kc = 0.5; VM1 = 3; V2 = 1.5;
      VM3 = 1; V4 = 0.5; K1 = 0.005; K2 = 0.005; K3 = 0.005; K4 = 0.005;
      V1 := C * VM1 / (Kc + C);
      V3 := M * VM3;
      synthesis: -> C; cell * vi;
      degradation_X: C -> ; cell * vd * X * C / (Kd + C);
      degradation: C -> ; cell * kd * C;
      activation_M: -> M; cell * V1 * (1 - M) / (K1 + (1 - M));
      inactivation_M: M -> ; cell * V2 * M / (K2 + M);
      activation_X: -> X; cell * V3 * (1 - X) / (K3 + (1 - X));
      inactivation_X: X -> ; cell * V4 * X / (K4 + X);
    end
    """)


def michaelis_menten() -> str:
    """Michaelis & Menten (1913) as mass action, E + S <-> ES -> E + P, in a compartment of
    2 litres (concentration species: rates are amounts per time), Level 2 Version 4 with
    local kinetic-law parameters."""
    return """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level2/version4" level="2" version="4">
  <model id="michaelis_menten" name="Michaelis-Menten enzyme">
    <listOfCompartments><compartment id="vessel" size="2"/></listOfCompartments>
    <listOfSpecies>
      <species id="E" compartment="vessel" initialConcentration="0.5"/>
      <species id="S" compartment="vessel" initialConcentration="10"/>
      <species id="ES" compartment="vessel" initialConcentration="0"/>
      <species id="P" compartment="vessel" initialConcentration="0"/>
    </listOfSpecies>
    <listOfReactions>
      <reaction id="binding" reversible="true">
        <listOfReactants>
          <speciesReference species="E"/><speciesReference species="S"/>
        </listOfReactants>
        <listOfProducts><speciesReference species="ES"/></listOfProducts>
        <kineticLaw>
          <math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><ci>vessel</ci>
            <apply><minus/><apply><times/><ci>k1</ci><ci>E</ci><ci>S</ci></apply>
            <apply><times/><ci>km1</ci><ci>ES</ci></apply></apply></apply></math>
          <listOfParameters>
            <parameter id="k1" value="2.5"/><parameter id="km1" value="1"/>
          </listOfParameters>
        </kineticLaw>
      </reaction>
      <reaction id="catalysis" reversible="false">
        <listOfReactants><speciesReference species="ES"/></listOfReactants>
        <listOfProducts>
          <speciesReference species="E"/><speciesReference species="P"/>
        </listOfProducts>
        <kineticLaw>
          <math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><ci>vessel</ci>
            <ci>kcat</ci><ci>ES</ci></apply></math>
          <listOfParameters><parameter id="kcat" value="0.8"/></listOfParameters>
        </kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def sir() -> str:
    """Kermack & McKendrick (1927) SIR, incidence as a function definition and the
    population as an assignment rule; a school closure halves contacts from day 40 (an
    event setting a parameter: a control with a schedule)."""
    return _antimony("""
    function incidence(b, s, i, n)
      b * s * i / n
    end
    model sir
      compartment town = 1;
      substanceOnly species S in town, I in town, R in town;
      S = 9990; I = 10; R = 0;
      beta = 0.5; gam = 0.1; contact = 1;
      N := S + I + R;
      infection: S -> I; incidence(contact * beta, S, I, N);
      recovery: I -> R; gam * I;
      closure: at time >= 40: contact = 0.5;
    end
    """)


def bergman_minimal() -> str:
    """Bergman et al. (1979) Am J Physiol 236:E667 minimal model of glucose G and remote
    insulin action X, with the insulin kinetics of Toffolo et al. (1980): rate rules on
    parameters (no species), time and a max() in the secretion term."""
    rules = {
        "G": "<apply><plus/><apply><times/><apply><minus/><apply><plus/><ci>p1</ci><ci>X</ci>"
             "</apply></apply><ci>G</ci></apply><apply><times/><ci>p1</ci><ci>Gb</ci></apply>"
             "</apply>",
        "X": "<apply><plus/><apply><times/><apply><minus/><ci>p2</ci></apply><ci>X</ci>"
             "</apply><apply><times/><ci>p3</ci><apply><minus/><ci>Ins</ci><ci>Ib</ci>"
             "</apply></apply></apply>",
        "Ins": "<apply><plus/><apply><times/><apply><minus/><ci>n</ci></apply><ci>Ins</ci>"
               "</apply><apply><times/><ci>gam</ci><apply><max/><apply><minus/><ci>G</ci>"
               "<ci>h</ci></apply><cn type=\"integer\">0</cn></apply><csymbol "
               "encoding=\"text\" definitionURL=\"http://www.sbml.org/sbml/symbols/time\">"
               "t</csymbol></apply></apply>",
    }
    values = {"G": 287, "X": 0, "Ins": 403, "p1": 0.03082, "p2": 0.02093, "p3": 1.062e-5,
              "Gb": 92, "Ib": 11, "n": 0.3, "gam": 0.003349, "h": 89.5}
    params = "".join(f'<parameter id="{k}" value="{v}" constant="{str(k not in rules).lower()}"/>'
                     for k, v in values.items())
    math = "".join(f'<rateRule variable="{k}"><math xmlns="http://www.w3.org/1998/Math/MathML">'
                   f"{v}</math></rateRule>" for k, v in rules.items())
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<sbml xmlns="http://www.sbml.org/sbml/'
            'level3/version2/core" level="3" version="2"><model id="bergman_minimal" '
            'name="Bergman minimal model" timeUnits="minute">'
            f"<listOfParameters>{params}</listOfParameters><listOfRules>{math}</listOfRules>"
            "</model></sbml>")


def toggle_switch() -> str:
    """Gardner, Cantor & Collins (2000) Nature 403:339, the genetic toggle switch
    du/dt = a1/(1 + v^beta) - u, dv/dt = a2/(1 + u^gamma) - v, with an inducer pulse at
    t = 20 that switches it (an event on a1)."""
    return _antimony("""
    model toggle
      compartment cell = 1;
      species u in cell, v in cell;
      u = 0.1; v = 2;
      a1 = 156.25; a2 = 15.6; beta = 2.5; gam = 1;
      make_u: -> u; a1 / (1 + v^beta);
      decay_u: u -> ; u;
      make_v: -> v; a2 / (1 + u^gam);
      decay_v: v -> ; v;
      inducer: at time >= 20: a1 = 1;
    end
    """)


LITERATURE: dict[str, Callable[[], str]] = {
    "Goldbeter 1991 mitotic oscillator": goldbeter_1991,
    "Michaelis-Menten enzyme (L2V4)": michaelis_menten,
    "SIR with a closure event": sir,
    "Bergman minimal model (rate rules)": bergman_minimal,
    "Gardner toggle switch with inducer": toggle_switch,
}
TIMES = {"goldbeter1991": np.linspace(0, 100, 401), "michaelis_menten": np.linspace(0, 30, 121),
         "sir": np.linspace(0.5, 150.5, 151), "bergman_minimal": np.linspace(0, 180, 181),
         "toggle": np.linspace(0.5, 50.5, 101)}


def compare_import(sbml: str) -> dict[str, float]:
    """Import ``sbml`` with mmw; max relative error of each state between mmw's simulation
    and libRoadRunner's of the same text."""
    import libsbml
    import roadrunner

    from mechanistic.formats.sbml_in import sbml_to_model

    imported = sbml_to_model(sbml)
    doc = libsbml.readSBMLFromString(sbml)
    t = TIMES[doc.getModel().getId()]
    names = {v: k for k, v in imported.renamed.items()}
    ids = []
    for state in imported.model.state_names:
        sid = names.get(state, state)
        species = doc.getModel().getSpecies(sid)
        concentration = species is not None and not species.getHasOnlySubstanceUnits()
        ids.append(f"[{sid}]" if concentration else sid)
    ours = simulate_mmw(imported.model, imported.values, t, imported.doses, imported.controls)
    rr = roadrunner.RoadRunner(sbml)
    rr.integrator.relative_tolerance = RR_RTOL
    rr.integrator.absolute_tolerance = RR_ATOL
    rr.integrator.maximum_num_steps = 1_000_000
    times = [0.0, *t] if t[0] > 0 else list(t)
    data = np.asarray(rr.simulate(times=times, selections=["time", *ids]))
    data = data[1:] if t[0] > 0 else data
    return {state: relative_error(ours[state], data[:, i + 1])
            for i, state in enumerate(imported.model.state_names)}
