"""A model as SBML Level 3 Version 2, so the field's tools can simulate and fit it.

The mapping (docs/architecture.md, "Formats"):

* one compartment of size 1; each state a species with ``hasOnlySubstanceUnits`` (its
  symbol is the amount, as in mmw). A state that has direct rate terms (``m.rate``) is a
  boundary species with a rate rule holding its whole right-hand side, because SBML lets a
  species have either reactions or a rate rule change it, not both;
* each flow a reaction (source reactant, target product, stoichiometry 1) whose kinetic
  law is the flow's rate; species its rate reads are modifiers;
* parameters and constants are constant SBML parameters; controls are non-constant
  parameters, their schedule events at each change; doses are events ``X = X + amount``
  (``initialValue=false``, so a dose at the start time fires there, as in mmw);
* observables are parameters set by assignment rules.

What SBML has no place for (priors, noise, docs, units as text, the flow's own name) is
kept in an ``mmw:data`` annotation holding a small JSON object per element, which
:mod:`mechanistic.formats.sbml_in` reads back; other tools ignore it. Parameter values
are written with 15 significant digits (libsbml's printer); the annotation keeps the exact
value too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

import libsbml
import sympy as sp

from mechanistic.errors import ModelError
from mechanistic.expr import expr_to_json
from mechanistic.formats.mathml import number_ast, sympy_to_ast
from mechanistic.interventions import ControlSchedule, Dose, Intervention, validate_interventions
from mechanistic.model import Model

__all__ = ["NAMESPACE", "model_to_sbml"]

NAMESPACE = "urn:mmw:sbml:1"
_SID = re.compile(r"[^A-Za-z0-9_]")


class _Ids:
    """SBML ids for the elements mmw does not name with an identifier (the compartment,
    reactions, events), unique against every declared name."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = set(taken)

    def new(self, wish: str) -> str:
        base = _SID.sub("_", wish)[:60] or "id"
        if not base[0].isalpha():
            base = f"x_{base}"
        name, i = base, 1
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name


def _ok(code: int, what: str) -> None:
    if code != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise ModelError(f"SBML export: {what} failed "
                         f"({libsbml.OperationReturnValue_toString(code)})")


def _annotate(element: Any, data: Mapping[str, Any]) -> None:
    text = escape(json.dumps(dict(data), allow_nan=False, separators=(",", ":")))
    _ok(element.setAnnotation(f'<annotation><mmw:data xmlns:mmw="{NAMESPACE}">{text}'
                              "</mmw:data></annotation>"), "an annotation")


def _math(element: Any, expr: Any, names: Mapping[str, str], what: str) -> None:
    try:
        ast = sympy_to_ast(expr, names)
    except ModelError as exc:
        raise ModelError(f"SBML export: {what}: {exc}") from None
    _ok(element.setMath(ast), f"the math of {what}")


def _time_trigger(event: Any, time: float, initial_value: bool) -> None:
    trigger = event.createTrigger()
    trigger.setInitialValue(initial_value)
    trigger.setPersistent(True)
    geq = libsbml.ASTNode(libsbml.AST_RELATIONAL_GEQ)
    now = libsbml.ASTNode(libsbml.AST_NAME_TIME)
    now.setName("time")
    geq.addChild(now)
    geq.addChild(number_ast(float(time)))
    _ok(trigger.setMath(geq), f"the trigger of event {event.getId()}")
    event.setUseValuesFromTriggerTime(True)


def model_to_sbml(
    model: Model,
    *,
    params: Mapping[str, float] | None = None,
    controls: Mapping[str, ControlSchedule] | None = None,
    doses: Sequence[Intervention] = (),
    t0: float = 0.0,
) -> str:
    """The SBML L3V2 text of ``model``.

    ``params`` are the values written (default: each prior's typical value); ``controls``
    are schedules written as events (before ``t0`` folded into the start value); ``doses``
    are :class:`~mechanistic.interventions.Dose` items written as events. SBML time starts
    where the caller's simulation does, so pass the simulation's ``t0``.
    """
    if model.neural_:
        raise ModelError(f"SBML export: the model has neural term(s) {sorted(model.neural_)}, "
                         "which SBML cannot hold; distil them to closed forms first")
    items = list(doses)
    validate_interventions(model, items)
    others = sorted({i.kind for i in items if not isinstance(i, Dose)})
    if others:
        raise ModelError(f"SBML export: only doses are written as events, not {others}; "
                         "give schedules of controls as controls=")
    controls = dict(controls or {})
    unknown = set(controls) - set(model.controls_)
    if unknown:
        raise ModelError(f"SBML export: unknown control(s) {sorted(unknown)}")
    values = {n: float(p.prior.typical) for n, p in model.params_.items()}
    extra = set(params or {}) - set(values)
    if extra:
        raise ModelError(f"SBML export: unknown parameter(s) {sorted(extra)}")
    values.update({k: float(v) for k, v in (params or {}).items()})
    for name, value in values.items():
        if not math.isfinite(value):
            raise ModelError(f"SBML export: parameter {name!r} has the value {value}")

    doc = libsbml.SBMLDocument(3, 2)
    sbml = doc.createModel()
    ids = _Ids([*model.symbols, "time"])
    _ok(sbml.setId(ids.new(model.name)), "the model id")
    sbml.setName(model.name)
    _annotate(sbml, {"role": "model", "name": model.name, "time_unit": model.time_unit,
                     "doc": model.doc})
    compartment = sbml.createCompartment()
    compartment.setId(ids.new("default_compartment"))
    compartment.setSize(1.0)
    compartment.setConstant(True)
    compartment.setSpatialDimensions(3)

    rhs = model.rhs()
    with_rates = {r.state for r in model.rates}
    inits = model.initial_conditions()
    names: dict[str, str] = {}
    for state in model.states_.values():
        sp_ = sbml.createSpecies()
        sp_.setId(state.name)
        sp_.setCompartment(compartment.getId())
        sp_.setHasOnlySubstanceUnits(True)
        sp_.setBoundaryCondition(state.name in with_rates)
        sp_.setConstant(False)
        init = inits[state.name]
        exact = isinstance(init, sp.Number) and float(f"{float(init):.15g}") == float(init)
        sp_.setInitialAmount(float(init) if isinstance(init, sp.Number) else 0.0)
        if not exact:
            assignment = sbml.createInitialAssignment()
            assignment.setSymbol(state.name)
            _math(assignment, init, names, f"the initial condition of {state.name}")
        _annotate(sp_, {"role": "state", "doc": state.doc, "unit": state.unit})
    for p in model.params_.values():
        par = sbml.createParameter()
        par.setId(p.name)
        par.setConstant(True)
        par.setValue(values[p.name])
        _annotate(par, {"role": "param", "prior": p.prior.to_dict(), "value": values[p.name],
                        "doc": p.doc, "unit": p.unit})
    for c in model.constants_.values():
        par = sbml.createParameter()
        par.setId(c.name)
        par.setConstant(True)
        par.setValue(c.value)
        _annotate(par, {"role": "constant", "value": c.value, "doc": c.doc, "unit": c.unit})
    for c in model.controls_.values():
        par = sbml.createParameter()
        par.setId(c.name)
        par.setConstant(False)
        schedule = controls.get(c.name)
        start = schedule.value_at(t0, c.default) if schedule else c.default
        par.setValue(start)
        _annotate(par, {"role": "control", "default": c.default, "value": start, "doc": c.doc,
                        "unit": c.unit})

    states = set(model.states_)
    for flow in model.flows:
        reaction = sbml.createReaction()
        reaction.setId(ids.new(flow.name))
        reaction.setName(flow.name)
        reaction.setReversible(False)
        used = {s.name for s in flow.rate.free_symbols} & states
        for species, make in ((flow.source, reaction.createReactant),
                              (flow.target, reaction.createProduct)):
            if species is not None:
                ref = make()
                ref.setSpecies(species)
                ref.setStoichiometry(1.0)
                ref.setConstant(True)
        for species in sorted(used - {flow.source, flow.target}):
            reaction.createModifier().setSpecies(species)
        law = reaction.createKineticLaw()
        _math(law, flow.rate, names, f"flow {flow.name!r}")
        _annotate(reaction, {"role": "flow", "name": flow.name})
    for state in model.states_:
        if state in with_rates:
            rule = sbml.createRateRule()
            rule.setVariable(state)
            _math(rule, rhs[state], names, f"the rate of {state}")

    for obs in model.observables_.values():
        par = sbml.createParameter()
        par.setId(obs.name if obs.name not in ids.taken else ids.new(f"obs_{obs.name}"))
        ids.taken.add(par.getId())
        par.setName(obs.name)
        par.setConstant(False)
        par.setValue(0.0)
        rule = sbml.createAssignmentRule()
        rule.setVariable(par.getId())
        _math(rule, obs.expr, names, f"observable {obs.name!r}")
        neural = model.functions
        _annotate(par, {"role": "observable", "name": obs.name, "doc": obs.doc,
                        "unit": obs.unit, "noise": {
                            "kind": obs.noise.kind,
                            **{k: expr_to_json(v, neural)
                               for k, v in obs.noise.arguments().items()}}})

    for name, schedule in controls.items():
        for time, value in zip(schedule.times, schedule.values, strict=True):
            if time <= t0:
                continue  # folded into the start value
            event = sbml.createEvent()
            event.setId(ids.new(f"{name}_at_{time:g}"))
            _time_trigger(event, time, initial_value=True)
            assign = event.createEventAssignment()
            assign.setVariable(name)
            _ok(assign.setMath(number_ast(float(value))), f"event {event.getId()}")
    bolus: dict[tuple[str, float], float] = {}
    for dose in items:
        assert isinstance(dose, Dose)
        for time in dose.times:
            if time >= t0:
                key = (dose.state, float(time))
                bolus[key] = bolus.get(key, 0.0) + float(dose.amount)
    for (state, time), amount in sorted(bolus.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        event = sbml.createEvent()
        event.setId(ids.new(f"dose_{state}_at_{time:g}"))
        _time_trigger(event, time, initial_value=False)  # a dose at t0 fires at t0
        assign = event.createEventAssignment()
        assign.setVariable(state)
        _math(assign, sp.Add(sp.Symbol(state), sp.Float(amount), evaluate=False), names,
              f"the dose of {state} at {time:g}")
        _annotate(event, {"role": "dose", "state": state, "amount": amount, "time": time})
    return libsbml.writeSBMLToString(doc)
