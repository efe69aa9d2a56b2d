"""Symbolic distillation against independent truth: four systems with a known saturation.

    python benchmarks/distillation.py --json [--system michaelis-menten] [--neural-steps 400]

Each system is simulated with scipy's ``solve_ivp`` from its true equations (never with
mmw's simulator), observed with noise, and modelled by a *misspecified* mechanistic model
that has mass action (or no regulation) where the truth saturates:

* ``michaelis-menten``: elimination ``dC/dt = -Vmax C/(Km + C)``, an initial amount; model
  ``k*C``. Counterfactual: the dose doubled (C0 = 200, training saw C <= 100).
* ``holling-ii``: Rosenzweig-MacArthur predator-prey (damped cycles), predation
  ``(1/h) H P/(1/(a h) + H)`` feeding predator births; model ``beta*H*P`` and
  ``delta*H*P``. Counterfactual: the prey start at 150 (training saw H <= ~70).
* ``hill-repression``: a gene circuit, ``dm/dt = a/(1 + (p/K)^2) - d m``, ``dp/dt = b m -
  g p``; model non-cooperative repression ``alpha/(1 + p/Kr)`` (the exponent fixed at 1,
  the saturation in the wrong shape). Counterfactual: the protein starts at 40 (training
  saw p <= 15).
* ``monod``: batch growth ``mu S X/(Ks + S)`` with substrate uptake ``1/Y`` of it; model
  ``mu*S*X``. Counterfactual: the substrate doubled (S0 = 40).

The pipeline is the search's: :func:`agent.distill.sites.hybrid_of` on the suspect rate, a
fit of the hybrid (:func:`mechanistic.fit.fit_model`, networks trained jointly), then
:meth:`agent.distill.distiller.Distiller.refine` on the fitted hybrid node, whose child's
module runs in the sandbox and is fitted like any candidate. Reported per system: whether the
distilled form is the true one, the relative error of its constants (from the regression on
the learned rate, and after refitting the distilled model), the counterfactual error of the
fitted hybrid and of the fitted distilled model against the truth under the intervention
(RMSE over the observed states, each divided by the std of its true counterfactual
trajectory, averaged), and wall times. Used by ``tests/agent/test_distill.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.core import Candidate, Task
from agent.distill.distiller import Distiller
from agent.distill.sites import hybrid_of
from agent.evaluate import Node
from mechanistic import Gaussian, LogNormalNoise, LogUniform, Model
from mechanistic.data import ObservedData
from mechanistic.fit import FitConfig, FitResult, fit_model
from mechanistic.interventions import Dose
from mechanistic.serialize import model_from_json
from mechanistic.simulate import RK4
from mechanistic.to_source import model_to_source
from sandbox.spec import Sandbox

# Fits: the hybrid's networks get ``neural_steps`` joint Adam steps from the skeleton fit,
# then an L-BFGS polish (which is what brings the learned rate close to the truth).
HYBRID_FIT = FitConfig(starts=4, adam_steps=150, lbfgs_steps=40, polish_starts=2,
                       neural_steps=300, neural_lr=0.01, neural_lbfgs_steps=100, patience=80)
MECHANISTIC_FIT = FitConfig(starts=4, adam_steps=200, lbfgs_steps=60, polish_starts=2)
TOLERANCE = 0.10  # constants within 10% of the truth


@dataclass(frozen=True)
class System:
    """One ground truth, its misspecified model, and the question that tests extrapolation.

    ``truth(t, y)`` is the right-hand side for ``solve_ivp`` over ``states`` (in the model's
    order). ``expected`` is the distilled form's term (kind, variables) and its true
    constants: ``coefficient`` (of the term as the library writes it), ``K`` and ``n``.
    ``counterfactual`` adds ``amount`` to ``state`` at t = 0.
    """

    name: str
    states: tuple[str, ...]
    truth: Callable[[float, np.ndarray], list[float]]
    y0: tuple[float, ...]
    t_end: float
    n_obs: int
    noise: str  # "lognormal" (relative sd) or "gaussian" (sd per state)
    noise_sd: tuple[float, ...]
    misspecified: Callable[[], Model]
    site: str
    expected_kind: str
    expected_variables: tuple[str, ...]
    expected: dict[str, float]
    cf_state: str
    cf_amount: float
    cf_t_end: float
    dt: float  # RK4 step of every fit (the data spacing or half of it)
    seed: int = 0

    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.t_end, self.n_obs)

    def solve(self, t: np.ndarray, y0: tuple[float, ...]) -> np.ndarray:
        """The true states on ``t``, ``[len(t), len(states)]`` (scipy, tight tolerances)."""
        from scipy.integrate import solve_ivp

        sol = solve_ivp(self.truth, (float(t[0]), float(t[-1])), list(y0), t_eval=t,
                        method="LSODA", rtol=1e-9, atol=1e-11)
        if not sol.success:  # pragma: no cover - the truths are well behaved
            raise RuntimeError(f"{self.name}: solve_ivp failed: {sol.message}")
        return sol.y.T

    def data(self) -> ObservedData:
        t = self.times()
        y = self.solve(t, self.y0)
        rng = np.random.default_rng(self.seed)
        cols = {}
        for j, name in enumerate(self.states):
            sd = self.noise_sd[j]
            if self.noise == "lognormal":
                cols[name] = y[:, j] * np.exp(rng.normal(0.0, sd, t.size))
            else:
                cols[name] = y[:, j] + rng.normal(0.0, sd, t.size)
        return ObservedData(t, cols)

    def cf_y0(self) -> tuple[float, ...]:
        i = self.states.index(self.cf_state)
        return tuple(v + self.cf_amount if j == i else v for j, v in enumerate(self.y0))


# ------------------------------------------------------------------ the four systems
def _mm_model() -> Model:
    m = Model("linear elimination", time_unit="hour")
    C = m.state("C")
    k = m.param("k", LogUniform(0.01, 10.0), doc="elimination rate constant")
    C0 = m.param("C0", LogUniform(10.0, 1000.0), doc="initial amount")
    s = m.param("s", LogUniform(0.005, 1.0))
    m.flow(C, None, k * C, name="elimination")
    m.init(C=C0)
    m.observe("C", C, noise=LogNormalNoise(s))
    return m


def _holling_model() -> Model:
    m = Model("logistic prey, mass-action predation", time_unit="year")
    H, P = m.states("H P")
    r = m.param("r", LogUniform(0.1, 5.0), doc="prey growth rate")
    Kc = m.param("Kc", LogUniform(10.0, 1000.0), doc="prey carrying capacity")
    beta = m.param("beta", LogUniform(1e-4, 1.0), doc="predation rate")
    delta = m.param("delta", LogUniform(1e-4, 1.0), doc="predator growth per prey eaten")
    mu = m.param("mu", LogUniform(0.01, 5.0), doc="predator death rate")
    H0 = m.param("H0", LogUniform(1.0, 500.0))
    P0 = m.param("P0", LogUniform(0.1, 100.0))
    s = m.param("s", LogUniform(0.005, 1.0))
    m.flow(None, H, r * H, name="prey_births")
    m.flow(H, None, r * H * H / Kc, name="crowding")
    m.flow(H, None, beta * H * P, name="predation")
    m.flow(None, P, delta * H * P, name="predator_births")
    m.flow(P, None, mu * P, name="predator_deaths")
    m.init(H=H0, P=P0)
    m.observe("H", H, noise=LogNormalNoise(s))
    m.observe("P", P, noise=LogNormalNoise(s))
    return m


def _gene_model() -> Model:
    m = Model("non-cooperative repression", time_unit="hour")
    mrna, p = m.states("m p")
    alpha = m.param("alpha", LogUniform(0.1, 100.0), doc="maximal transcription rate")
    Kr = m.param("Kr", LogUniform(0.1, 1000.0), doc="repression threshold")
    d = m.param("d", LogUniform(0.01, 10.0), doc="mRNA decay rate")
    b = m.param("b", LogUniform(0.01, 10.0), doc="translation rate")
    g = m.param("g", LogUniform(0.01, 10.0), doc="protein decay rate")
    s_m = m.param("s_m", LogUniform(0.001, 10.0))
    s_p = m.param("s_p", LogUniform(0.001, 10.0))
    m.flow(None, mrna, alpha / (1 + p / Kr), name="transcription")
    m.flow(mrna, None, d * mrna, name="mrna_decay")
    m.flow(None, p, b * mrna, name="translation")
    m.flow(p, None, g * p, name="protein_decay")
    m.init(m=0, p=0)
    m.observe("m", mrna, noise=Gaussian(s_m))
    m.observe("p", p, noise=Gaussian(s_p))
    return m


def _monod_model() -> Model:
    m = Model("mass-action batch growth", time_unit="hour")
    S, X = m.states("S X")
    mu = m.param("mu", LogUniform(1e-3, 10.0), doc="growth rate per substrate")
    Y = m.param("Y", LogUniform(0.05, 2.0), doc="biomass yield")
    S0 = m.param("S0", LogUniform(1.0, 100.0))
    X0 = m.param("X0", LogUniform(0.01, 10.0))
    s_S = m.param("s_S", LogUniform(0.001, 10.0))
    s_X = m.param("s_X", LogUniform(0.001, 10.0))
    m.flow(None, X, mu * S * X, name="growth")
    m.flow(S, None, mu * S * X / Y, name="uptake")
    m.init(S=S0, X=X0)
    m.observe("S", S, noise=Gaussian(s_S))
    m.observe("X", X, noise=Gaussian(s_X))
    return m


def _mm_truth(t: float, y: np.ndarray) -> list[float]:
    return [-5.0 * y[0] / (10.0 + y[0])]


_A, _H, _E, _M, _R, _KC = 0.05, 0.5, 0.5, 0.4, 1.0, 80.0


def _holling_truth(t: float, y: np.ndarray) -> list[float]:
    h, p = y
    eaten = _A * h * p / (1 + _A * _H * h)
    return [_R * h * (1 - h / _KC) - eaten, _E * eaten - _M * p]


def _gene_truth(t: float, y: np.ndarray) -> list[float]:
    m, p = y
    return [10.0 / (1 + (p / 10.0) ** 2) - 1.0 * m, 2.0 * m - 0.5 * p]


def _monod_truth(t: float, y: np.ndarray) -> list[float]:
    s, x = y
    growth = 0.8 * s * x / (5.0 + s)
    return [-growth / 0.5, growth]


SYSTEMS: dict[str, System] = {s.name: s for s in (
    System("michaelis-menten", ("C",), _mm_truth, (100.0,), 30.0, 61, "lognormal", (0.03,),
           _mm_model, "elimination", "saturating", ("C",),
           {"coefficient": 5.0, "K": 10.0}, "C", 100.0, 60.0, dt=0.25),
    System("holling-ii", ("H", "P"), _holling_truth, (60.0, 5.0), 40.0, 81, "lognormal",
           (0.03, 0.03), _holling_model, "predation", "saturating_product", ("H", "P"),
           {"coefficient": 1 / _H, "K": 1 / (_A * _H)}, "H", 90.0, 40.0, dt=0.25),
    System("hill-repression", ("m", "p"), _gene_truth, (0.0, 0.0), 8.0, 41, "gaussian",
           (0.1, 0.3), _gene_model, "transcription", "hill_repression", ("p",),
           {"coefficient": 10.0, "K": 10.0, "n": 2.0}, "p", 40.0, 12.0, dt=0.1),
    System("monod", ("S", "X"), _monod_truth, (20.0, 0.5), 7.0, 57, "gaussian",
           (0.1, 0.05), _monod_model, "growth", "saturating_product", ("S", "X"),
           {"coefficient": 0.8, "K": 5.0}, "S", 20.0, 10.0, dt=0.125),
)}


# ------------------------------------------------------------------------ pipeline
@contextmanager
def _timed(out: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        out[key] = round(time.perf_counter() - started, 2)


def cf_error(system: System, fit: FitResult) -> float:
    """Counterfactual error of a fitted model against the truth: per observed state, the
    RMSE over the counterfactual window divided by the std of the true trajectory; mean."""
    t = np.linspace(0.0, system.cf_t_end, 121)
    truth = system.solve(t, system.cf_y0())
    sim = fit.simulate(t, interventions=[Dose(system.cf_state, system.cf_amount, (0.0,))])
    errors = []
    for j, name in enumerate(system.states):
        pred = sim.state(name)[0].detach().numpy()
        if not np.isfinite(pred).all():
            return math.inf
        errors.append(float(np.sqrt(np.mean((pred - truth[:, j]) ** 2)) / np.std(truth[:, j])))
    return float(np.mean(errors))


def _rel(value: float | None, truth: float) -> float | None:
    return None if value is None else abs(value - truth) / abs(truth)


def _constants(system: System, terms: list[dict[str, Any]]) -> dict[str, Any]:
    """The expected term among the distilled ones, its constants and their errors."""
    match = [t for t in terms if t["kind"] == system.expected_kind
             and tuple(t["variables"]) == system.expected_variables]
    form_ok = len(terms) == 1 and len(match) == 1
    if not match:
        return {"form_correct": False, "constants": {}, "errors": {}}
    term = match[0]
    got = {"coefficient": term["coefficient"], "K": term["K"], "n": term["n"]}
    errors = {k: _rel(got[k], v) for k, v in system.expected.items()}
    return {"form_correct": form_ok, "constants": {k: got[k] for k in system.expected},
            "errors": errors}


def run_system(system: System, sandbox: Sandbox | None = None, *,
               hybrid_fit: FitConfig = HYBRID_FIT,
               mechanistic_fit: FitConfig = MECHANISTIC_FIT) -> dict[str, Any]:
    """The whole pipeline on one system; a JSON-ready result (see the module docstring)."""
    from sandbox.runner import run_model_module

    times: dict[str, float] = {}
    hybrid_fit = replace(hybrid_fit, solver=RK4(dt=system.dt))
    mechanistic_fit = replace(mechanistic_fit, solver=RK4(dt=system.dt))
    data = system.data()
    task = Task(f"{system.name} (synthetic)", data, train_until=system.t_end)
    model = system.misspecified()
    with _timed(times, "fit_misspecified"):
        fit_m = fit_model(model, data, mechanistic_fit)
    hybrid = hybrid_of(model, system.site)
    with _timed(times, "fit_hybrid"):
        fit_h = fit_model(hybrid, data, hybrid_fit)
    source = model_to_source(hybrid)
    node = Node(Candidate("hybrid", source, f"{model.name} + neural on {system.site}"),
                "ok", model=hybrid, fit_result=fit_h, fit=fit_h.to_dict(),
                model_json=hybrid.to_json())
    with _timed(times, "distill"):
        children = Distiller().refine(task, node, 1)
    out: dict[str, Any] = {
        "system": system.name, "misspecified": model.name, "site": system.site,
        "expected": {"kind": system.expected_kind, "variables": list(system.expected_variables),
                     **system.expected},
        "loglik": {"misspecified": fit_m.log_likelihood, "hybrid": fit_h.log_likelihood},
        "cf_error": {"misspecified": cf_error(system, fit_m), "hybrid": cf_error(system, fit_h)},
        "seconds": times,
    }
    if not children:
        out.update(distilled=None, form_correct=False)
        return out
    child = children[0]
    details = dict(child.details)
    run = run_model_module(child.source, filename="simulator.py", sandbox=sandbox)
    if not run.ok or run.model_json is None:  # pragma: no cover - rendered modules run
        out.update(distilled={"error": run.error.to_dict() if run.error else "no model"},
                   form_correct=False)
        return out
    distilled = model_from_json(run.model_json)
    with _timed(times, "fit_distilled"):
        fit_d = fit_model(distilled, data, mechanistic_fit)
    regression = _constants(system, details["terms"])
    refit = _refit_constants(system, fit_d, details)
    out["cf_error"]["distilled"] = cf_error(system, fit_d)
    out["loglik"]["distilled"] = fit_d.log_likelihood
    out.update(
        distilled={"expression": details["expression"], "formula": details["formula"],
                   "r2": details["r2"], "structure": child.structure,
                   "alternatives": details["alternatives"]},
        form_correct=regression["form_correct"],
        constants=regression["constants"], constant_errors=regression["errors"],
        refit_constants=refit["constants"], refit_constant_errors=refit["errors"],
        constants_within_tolerance=bool(regression["form_correct"] and all(
            e is not None and e <= TOLERANCE for e in regression["errors"].values())),
        cf_distilled_not_worse=out["cf_error"]["distilled"] <= out["cf_error"]["hybrid"],
    )
    return out


def _refit_constants(system: System, fit: FitResult,
                     details: dict[str, Any]) -> dict[str, Any]:
    """The constants of the refitted distilled model, for a one-term distillation: the
    coefficient is the leading scale parameter times its number, K and n the new
    ``K_*``/``n_*`` parameters."""
    if len(details["terms"]) != 1:
        return {"constants": {}, "errors": {}}
    params = fit.params
    scale = details["scale"]
    got: dict[str, float | None] = {
        "coefficient": params[scale["param"]] * scale["factor"],
        "K": next((params[n] for n in details["params"] if n.startswith("K_")), None),
        "n": next((params[n] for n in details["params"] if n.startswith("n_")), None)}
    return {"constants": {k: got[k] for k in system.expected},
            "errors": {k: _rel(got[k], v) for k, v in system.expected.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--system", action="append", choices=sorted(SYSTEMS),
                        help="run only these systems (repeatable)")
    parser.add_argument("--neural-steps", type=int, default=HYBRID_FIT.neural_steps,
                        help="joint Adam steps of the hybrid fit")
    args = parser.parse_args(argv)
    from sandbox.auto import SandboxSettings, open_sandbox

    hybrid_fit = replace(HYBRID_FIT, neural_steps=args.neural_steps)
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    sandbox = open_sandbox(SandboxSettings.from_env(warm=True))
    try:
        results = {name: run_system(SYSTEMS[name], sandbox, hybrid_fit=hybrid_fit)
                   for name in args.system or list(SYSTEMS)}
    finally:
        sandbox.close()
    out = {"hybrid_fit": hybrid_fit.to_dict(), "mechanistic_fit": MECHANISTIC_FIT.to_dict(),
           "tolerance": TOLERANCE, "systems": results,
           "summary": {"form_correct": sum(bool(r["form_correct"]) for r in results.values()),
                       "constants_within_tolerance": sum(bool(r.get(
                           "constants_within_tolerance")) for r in results.values()),
                       "cf_distilled_not_worse": sum(bool(r.get("cf_distilled_not_worse"))
                                                     for r in results.values()),
                       "systems": len(results)},
           "wall_seconds": round(time.perf_counter() - started, 1),
           "load_average_before": load_before,
           "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    if args.json:
        print(json.dumps(out, indent=2, default=_json_default))
        return 0
    for name, r in results.items():
        cf = r["cf_error"]
        print(f"{name}: form {'right' if r['form_correct'] else 'WRONG'} "
              f"({(r.get('distilled') or {}).get('expression')}); constant errors "
              f"{r.get('constant_errors')}; cf error hybrid {cf['hybrid']:.3f} vs distilled "
              f"{cf.get('distilled', math.nan):.3f}; {r['seconds']}")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)



if __name__ == "__main__":
    raise SystemExit(main())
