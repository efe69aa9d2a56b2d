"""Models and helpers shared by the format tests: mmw models exported to SBML, SBML files
written from published equations, and both simulators under tight tolerances.

Run as a script (``python tests/formats/sbml_cases.py``) it prints the largest relative
difference between mmw and libRoadRunner for every case: the figures in the closing note.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechanistic import (
    Gaussian,
    LogNormalNoise,
    LogUniform,
    Model,
    NegBinomial,
    PropAdd,
    Uniform,
)
from mechanistic.interventions import ControlSchedule, Dose, Intervention

RTOL = 1e-6  # the agreement the issue asks for
SOLVER_RTOL, SOLVER_ATOL = 1e-11, 1e-16  # mmw's dopri5
RR_RTOL, RR_ATOL = 1e-12, 1e-18  # libRoadRunner's CVODE


@dataclass
class Case:
    """An mmw model with what it is simulated under."""

    name: str
    model: Model
    params: dict[str, float]
    t: np.ndarray
    doses: list[Intervention] = field(default_factory=list)
    controls: dict[str, ControlSchedule] = field(default_factory=dict)


def seir() -> Case:
    m = Model("SEIR", time_unit="day")
    S, E, I, R = m.states("S E I R")
    beta = m.param("beta", LogUniform(0.05, 3.0))
    sigma = m.param("sigma", Uniform(1 / 7, 1 / 2))
    gamma = m.param("gamma", Uniform(1 / 14, 1 / 3))
    rho = m.param("rho", Uniform(0.05, 1.0))
    phi = m.param("phi", LogUniform(1, 100))
    u = m.control("contact_reduction", default=0.0)
    N = S + E + I + R
    m.flow(S, E, (1 - u) * beta * S * I / N, name="infection")
    m.flow(E, I, sigma * E, name="onset")
    m.flow(I, R, gamma * I, name="recovery")
    m.init(S=1e6 - 10, E=0, I=10, R=0)
    m.observe("cases", rho * sigma * E, noise=NegBinomial(phi))
    return Case("SEIR", m, {"beta": 0.6, "sigma": 0.25, "gamma": 0.2, "rho": 0.4, "phi": 20},
                np.linspace(0, 120, 121))


def lotka_volterra() -> Case:
    m = Model("Lotka-Volterra", time_unit="year")
    H, L = m.states("H L")
    alpha = m.param("alpha", LogUniform(0.05, 3.0))
    beta = m.param("beta", LogUniform(1e-3, 0.5))
    delta = m.param("delta", LogUniform(1e-3, 0.5))
    gamma = m.param("gamma", LogUniform(0.05, 3.0))
    H0 = m.param("H0", LogUniform(1.0, 200.0))
    L0 = m.param("L0", LogUniform(1.0, 200.0))
    s = m.param("s", LogUniform(0.01, 3.0))
    m.flow(None, H, alpha * H, name="hare births")
    m.flow(H, None, beta * H * L, name="predation")
    m.flow(None, L, delta * H * L, name="lynx births")
    m.flow(L, None, gamma * L, name="lynx deaths")
    m.init(H=H0, L=L0)
    m.observe("Hare", H, noise=LogNormalNoise(s))
    m.observe("Lynx", L, noise=LogNormalNoise(s))
    return Case("Lotka-Volterra", m, {"alpha": 0.55, "beta": 0.028, "delta": 0.024,
                                      "gamma": 0.8, "H0": 30.0, "L0": 4.0, "s": 0.2},
                np.linspace(0, 40, 161))


def pk_repeated_doses() -> Case:
    m = Model("Two-compartment PK, oral dosing", time_unit="hour")
    gut, central, peripheral = m.states("gut central peripheral")
    ka = m.param("ka", LogUniform(0.1, 5.0))
    CL = m.param("CL", LogUniform(0.5, 20.0))
    V1 = m.param("V1", LogUniform(5.0, 100.0))
    Q = m.param("Q", LogUniform(0.5, 20.0))
    V2 = m.param("V2", LogUniform(5.0, 200.0))
    a = m.param("a", LogUniform(0.001, 1.0))
    b = m.param("b", LogUniform(0.01, 0.5))
    m.flow(gut, central, ka * gut, name="absorption")
    m.flow(central, None, CL / V1 * central, name="elimination")
    m.flow(central, peripheral, Q / V1 * central, name="distribution")
    m.flow(peripheral, central, Q / V2 * peripheral, name="redistribution")
    m.init(gut=0, central=0, peripheral=0)
    m.observe("conc", central / V1, noise=PropAdd(a, b))
    # Output times fall between the doses, where both simulators agree on what they mean.
    return Case("two-compartment PK, doses every 12 h", m,
                {"ka": 1.3, "CL": 4.0, "V1": 20.0, "Q": 3.0, "V2": 60.0, "a": 0.05, "b": 0.1},
                np.arange(0.5, 96.0, 1.0),
                doses=[Dose("gut", 100.0, (0.0, 12.0, 24.0, 36.0, 48.0, 60.0))])


def input_schedule() -> Case:
    """Glucose under a feed schedule (an input), with a direct rate term (a rate rule)."""
    m = Model("glucose under a feed schedule", time_unit="minute")
    G, X = m.states("G X")
    p1 = m.param("p1", LogUniform(0.01, 0.1))
    Gb = m.param("Gb", LogUniform(50, 150))
    k = m.param("k", LogUniform(0.01, 1.0))
    feed = m.control("feed", default=0.0, unit="mg/dL/min")
    m.rate(G, -p1 * (G - Gb) - X * G + feed)
    m.flow(None, X, k * feed / 100, name="response")
    m.flow(X, None, k * X, name="decay")
    m.init(G=Gb, X=0)
    m.observe("glucose", G, noise=Gaussian(m.param("sd", LogUniform(0.1, 10))))
    return Case("glucose with a feed schedule", m,
                {"p1": 0.03, "Gb": 90.0, "k": 0.2, "sd": 2.0}, np.linspace(0.25, 120.25, 121),
                controls={"feed": ControlSchedule((10.0, 30.0, 60.0), (5.0, 1.5, 0.0))})


MMW_CASES = (seir, lotka_volterra, pk_repeated_doses, input_schedule)


def simulate_mmw(model: Model, params: Mapping[str, float], t: Sequence[float],
                 doses: Sequence[Intervention] = (),
                 controls: Mapping[str, ControlSchedule] | None = None) -> dict[str, np.ndarray]:
    """States and observables from mmw's simulator (dopri5, tight tolerances), from 0."""
    from mechanistic.simulate import Dopri5, compile_model

    sim = compile_model(model).simulate(
        {k: float(v) for k, v in params.items()}, np.asarray(t, dtype=float),
        solver=Dopri5(rtol=SOLVER_RTOL, atol=SOLVER_ATOL, max_steps=1_000_000),
        interventions=list(doses), controls=dict(controls or {}), t0=0.0)
    assert bool(sim.ok.all()), f"mmw's simulation failed: status {sim.status.tolist()}"
    out = {n: sim.state(n)[0].numpy() for n in model.state_names}
    out.update({f"obs:{n}": sim.observable(n)[0].numpy() for n in model.observable_names})
    return out


def simulate_roadrunner(sbml: str, ids: Sequence[str], t: Sequence[float]) -> dict[str, Any]:
    """The same quantities from libRoadRunner (CVODE, tight tolerances)."""
    import roadrunner

    rr = roadrunner.RoadRunner(sbml)
    rr.integrator.relative_tolerance = RR_RTOL
    rr.integrator.absolute_tolerance = RR_ATOL
    rr.integrator.maximum_num_steps = 1_000_000
    times = [0.0, *[float(x) for x in t]] if float(t[0]) > 0 else [float(x) for x in t]
    result = rr.simulate(times=times, selections=["time", *ids])
    data = np.asarray(result)
    start = 1 if float(t[0]) > 0 else 0
    return {sid: data[start:, i + 1] for i, sid in enumerate(ids)}


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / |b| over the series, where |b| is floored at 1e-9 of the series' scale
    (a state passing through zero has no relative error there)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-9 * scale)))


def observable_ids(sbml: str) -> dict[str, str]:
    """SBML parameter id of each observable, from the assignment rules mmw writes."""
    import libsbml

    doc = libsbml.readSBMLFromString(sbml)
    m = doc.getModel()
    out = {}
    for i in range(m.getNumRules()):
        rule = m.getRule(i)
        if rule.isAssignment():
            par = m.getParameter(rule.getVariable())
            out[par.getName() or par.getId()] = par.getId()
    return out


def compare_export(case: Case) -> dict[str, float]:
    """Export ``case`` to SBML; the max relative error of each state and observable between
    mmw's simulation of the model and libRoadRunner's of the file."""
    from mechanistic.formats.sbml_out import model_to_sbml

    sbml = model_to_sbml(case.model, params=case.params, controls=case.controls,
                         doses=case.doses)
    ours = simulate_mmw(case.model, case.params, case.t, case.doses, case.controls)
    obs = observable_ids(sbml)
    ids = [*case.model.state_names, *(obs[n] for n in case.model.observable_names)]
    theirs = simulate_roadrunner(sbml, ids, case.t)
    keys = [*case.model.state_names, *(f"obs:{n}" for n in case.model.observable_names)]
    return {key: relative_error(ours[key], theirs[sid]) for key, sid in zip(keys, ids,
                                                                            strict=True)}


def main() -> None:  # pragma: no cover - measurement script
    from literature_sbml import LITERATURE, compare_import

    print("mmw model -> SBML, mmw vs libRoadRunner, max relative error")
    for make in MMW_CASES:
        case = make()
        errors = compare_export(case)
        print(f"  {case.name:40s} {max(errors.values()):.2e}  ({len(errors)} series)")
    print("published equations written as SBML -> mmw, mmw vs libRoadRunner")
    for name, make in LITERATURE.items():
        errors = compare_import(make())
        print(f"  {name:40s} {max(errors.values()):.2e}  ({len(errors)} series)")


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    main()
