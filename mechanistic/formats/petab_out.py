"""A fitting problem as PEtab v1: SBML model, measurement, condition, observable and
parameter tables, and the problem YAML that pyPESTO, AMICI, COPASI and Data2Dynamics read.

What maps:

* **time.** PEtab simulates from time 0; mmw from the fit's ``t0`` (for the hare-lynx
  records, 1845). Times are written as time since ``t0`` (``t0`` is in the YAML's
  ``mmw`` section and in the SBML's annotation); a model that reads ``t`` itself cannot be
  shifted and is refused unless ``t0`` is 0.
* **parameters.** Every parameter is a row: free ones ``estimate=1`` with the prior's
  bounds (log-uniform priors on ``log10`` scale), fixed ones ``estimate=0``; the prior is
  the objective prior (``uniform``, ``parameterScaleUniform``, ``normal``,
  ``logNormal``; a half-normal is ``normal`` on ``[0, inf)``); the nominal value is the fit.
* **noise.** What each kind's :meth:`mechanistic.noise.Noise.petab` says: Gaussian is
  ``normal``; LogNormalNoise is ``normal`` on the ``log`` transformed observable; PropAdd
  is ``normal`` with ``sqrt(a^2 + (b*f)^2)``. PEtab v1 has no count distributions:
  Poisson and NegBinomial are written as ``normal`` with their variance (``f``,
  ``f + f^2/phi``), and :attr:`PetabExport.notes` says so; the SBML annotation keeps the
  exact noise. A kind with no PEtab form is refused.
* **data.** One measurement row per observed value; ``datasetId`` is ``train`` or
  ``validation`` (after ``train_until``). One condition, ``c0``; known inputs are events in
  the SBML model (control schedules), as they are for mmw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from mechanistic.data import ObservedData
from mechanistic.errors import ModelError
from mechanistic.files import write_atomic
from mechanistic.formats.sbml_out import model_to_sbml
from mechanistic.interventions import ControlSchedule
from mechanistic.model import Model
from mechanistic.priors import Fixed, HalfNormal, LogNormal, LogUniform, Normal, Prior, Uniform

__all__ = ["PetabExport", "write_petab"]

FILES = {"sbml": "model.xml", "measurement": "measurements.tsv", "condition": "conditions.tsv",
         "observable": "observables.tsv", "parameter": "parameters.tsv",
         "yaml": "problem.yaml"}


@dataclass
class PetabExport:
    """What :func:`write_petab` wrote, and what it had to approximate."""

    folder: Path
    files: dict[str, Path]
    rows: int
    notes: list[str] = field(default_factory=list)


def _formula(expr: Any, names: Mapping[str, str]) -> str:
    """A formula as PEtab text: sympy's printer, with symbols renamed to SBML ids."""
    expr = sp.sympify(expr)
    mapping = {s: sp.Symbol(names[s.name]) for s in expr.free_symbols if s.name in names}
    return sp.sstr(expr.xreplace(mapping) if mapping else expr, full_prec=True)


def _number(value: float) -> str:
    return repr(float(value))


def _parameter_row(name: str, prior: Prior, value: float, free: bool) -> dict[str, Any]:
    """A parameter table row: scale, bounds from the prior's support, and the prior."""
    row: dict[str, Any] = {"parameterId": name, "parameterName": name, "nominalValue": value,
                           "estimate": int(free and not isinstance(prior, Fixed))}
    if isinstance(prior, LogUniform):
        row.update(parameterScale="log10", lowerBound=prior.low, upperBound=prior.high,
                   objectivePriorType="parameterScaleUniform",
                   objectivePriorParameters=f"{_number(math.log10(prior.low))};"
                                            f"{_number(math.log10(prior.high))}")
    elif isinstance(prior, Uniform):
        row.update(parameterScale="lin", lowerBound=prior.low, upperBound=prior.high,
                   objectivePriorType="uniform",
                   objectivePriorParameters=f"{_number(prior.low)};{_number(prior.high)}")
    elif isinstance(prior, Normal):
        row.update(parameterScale="lin", lowerBound=-math.inf, upperBound=math.inf,
                   objectivePriorType="normal",
                   objectivePriorParameters=f"{_number(prior.mean)};{_number(prior.sd)}")
    elif isinstance(prior, LogNormal):
        row.update(parameterScale="log", lowerBound=0.0, upperBound=math.inf,
                   objectivePriorType="logNormal",
                   objectivePriorParameters=f"{_number(prior.mu)};{_number(prior.sigma)}")
    elif isinstance(prior, HalfNormal):
        row.update(parameterScale="lin", lowerBound=0.0, upperBound=math.inf,
                   objectivePriorType="normal",
                   objectivePriorParameters=f"0.0;{_number(prior.scale)}")
    else:  # Fixed, or a prior kind PEtab has no name for: not estimated
        row.update(parameterScale="lin", lowerBound=value, upperBound=value, estimate=0)
    if row["estimate"] == 0:
        row.update(objectivePriorType="", objectivePriorParameters="")
    return row


def write_petab(
    folder: str | Path,
    model: Model,
    data: ObservedData,
    *,
    params: Mapping[str, float],
    free: list[str] | None = None,
    controls: Mapping[str, ControlSchedule] | None = None,
    t0: float | None = None,
    train_until: float | None = None,
) -> PetabExport:
    """Write the PEtab problem of fitting ``model`` to ``data`` into ``folder``.

    ``params`` are the nominal values (a fit's estimates); ``free`` the estimated ones
    (default: every parameter without a Fixed prior); ``t0`` the simulation start (default:
    the first data time).
    """
    import pandas as pd

    out = Path(folder)
    start = float(data.t[0]) if t0 is None else float(t0)
    if start != 0.0 and _reads_time(model):
        raise ModelError(f"PEtab export: the model reads the time t itself and starts at "
                         f"{start:g}; PEtab simulates from 0, so it cannot be shifted")
    observed = [n for n in model.observable_names if n in data.values]
    if not observed:
        raise ModelError(f"PEtab export: none of the model's observables "
                         f"{model.observable_names} is a column of the data")
    notes: list[str] = []
    shifted = {name: ControlSchedule(tuple(t - start for t in s.times), s.values)
               for name, s in (controls or {}).items()}
    sbml = model_to_sbml(model, params=params, controls=shifted, t0=0.0)
    ids = _observable_ids(sbml)
    names = {n: ids.get(n, n) for n in model.observable_names}
    taken = set(model.symbols) | set(ids.values())
    obs_ids: dict[str, str] = {}
    for name in observed:
        oid, i = f"obs_{name}", 1
        while oid in taken:
            i += 1
            oid = f"obs_{name}_{i}"
        taken.add(oid)
        obs_ids[name] = oid

    observables = []
    for name in observed:
        obs = model.observables_[name]
        f = names[name]
        noise = obs.noise
        form = noise.petab(f, lambda expr: _formula(expr, names))
        if form is None:
            raise ModelError(f"PEtab export: observable {name!r} has noise {noise.kind!r}, "
                             "which has no PEtab form")
        formula, transformation, note = form
        if note is not None:
            notes.append(f"{name}: {note}")
        observables.append({"observableId": obs_ids[name], "observableName": name,
                            "observableFormula": f, "observableTransformation": transformation,
                            "noiseFormula": formula, "noiseDistribution": "normal"})

    rows = []
    for name in observed:
        for time, value in zip(data.t, np.asarray(data.values[name], dtype=float), strict=True):
            if not math.isfinite(value) or time < start:
                continue
            dataset = "train" if train_until is None or time <= train_until else "validation"
            rows.append({"observableId": obs_ids[name], "simulationConditionId": "c0",
                         "time": float(time) - start, "measurement": float(value),
                         "datasetId": dataset})
    if not rows:
        raise ModelError("PEtab export: the data hold no observed values")

    free_set = set(model.free_param_names if free is None else free)
    parameters = [_parameter_row(n, p.prior, float(params.get(n, p.prior.typical)),
                                 n in free_set) for n, p in model.params_.items()]

    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / v for k, v in FILES.items()}
    write_atomic(files["sbml"], sbml)
    table = pd.DataFrame(rows)
    write_atomic(files["measurement"], table.to_csv(sep="\t", index=False))
    write_atomic(files["condition"], pd.DataFrame([{"conditionId": "c0",
                                                    "conditionName": "as observed"}])
                 .to_csv(sep="\t", index=False))
    write_atomic(files["observable"], pd.DataFrame(observables).to_csv(sep="\t", index=False))
    write_atomic(files["parameter"], pd.DataFrame(parameters).to_csv(sep="\t", index=False))
    write_atomic(files["yaml"], "\n".join([
        "format_version: 1",
        f"parameter_file: {FILES['parameter']}",
        "problems:",
        f"  - sbml_files: [{FILES['sbml']}]",
        f"    measurement_files: [{FILES['measurement']}]",
        f"    condition_files: [{FILES['condition']}]",
        f"    observable_files: [{FILES['observable']}]",
        "",
    ]))
    notes.append(f"times are time since t0 = {start:g} {model.time_unit} (PEtab starts at 0)")
    return PetabExport(out, files, len(rows), notes)


def _reads_time(model: Model) -> bool:
    exprs = [f.rate for f in model.flows] + [r.expr for r in model.rates] + \
        [o.expr for o in model.observables_.values()]
    return any(sp.Symbol("t") in sp.sympify(e).free_symbols for e in exprs)


def _observable_ids(sbml: str) -> dict[str, str]:
    """The SBML id of each observable's assignment-rule parameter (by observable name)."""
    import libsbml

    model = libsbml.readSBMLFromString(sbml).getModel()
    out = {}
    for i in range(model.getNumRules()):
        rule = model.getRule(i)
        if rule.isAssignment():
            par = model.getParameter(rule.getVariable())
            if par is not None:
                out[par.getName() or par.getId()] = par.getId()
    return out
