"""An SBML document (untrusted) as a :class:`~mechanistic.model.Model`.

The file is read as data: at most :data:`MAX_BYTES`, no DTD (so no entity expansion), its
XML depth and element count measured by expat before libsbml builds anything, every count
of model elements bounded, and every math element walked node by node
(:mod:`mechanistic.formats.mathml`). Nothing is evaluated.

What maps (docs/architecture.md, "Formats"): species changed by reactions are states
(their symbol's meaning kept: an amount with ``hasOnlySubstanceUnits``, else a
concentration, the reaction's rate divided by the compartment size); a reaction of one
reactant and one product of equal stoichiometry 1 and scale is a flow, any other adds rate
terms; rate rules are rate terms (on a parameter, it becomes a state); assignment rules
and constant parameters with initial assignments are inlined where they are read, and each
assignment rule is also an observable (with the noise recorded in mmw's annotation, else
``Gaussian(1)``); constant parameters are parameters (the annotation's prior, else
log-uniform over a factor of ten around the value), compartments and constant species are
constants; events at a fixed time that add a constant to a state are doses, events at a
fixed time that set a parameter to a constant make it a control with a schedule.

What does not (each one line of :class:`SBMLImportError`, naming the element): algebraic
rules, fast reactions, delays, events of any other form, variable compartments,
conversion factors, variable stoichiometry, required packages, and math outside the model
language.
"""

from __future__ import annotations

import math
import re
import xml.parsers.expat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libsbml
import sympy as sp

from mechanistic.errors import ModelError, UntrustedDataError
from mechanistic.expr import expr_from_json
from mechanistic.formats.mathml import (
    TIME,
    MathError,
    ast_to_sympy,
    evaluate_number,
    function_definitions,
    substitute,
)
from mechanistic.formats.sbml_out import NAMESPACE
from mechanistic.interventions import ControlSchedule, Dose
from mechanistic.model import MAX_SYMBOLS, Model
from mechanistic.noise import NOISE_KINDS, Gaussian, Noise
from mechanistic.priors import Fixed, LogUniform, Prior, prior_from_dict
from mechanistic.untrusted import JsonLimits, parse_json, read_regular_file, shown

__all__ = ["MAX_BYTES", "ImportedModel", "SBMLImportError", "read_sbml", "sbml_to_model"]

MAX_BYTES = 16 * 1024 * 1024  # BioModels' largest curated files are a few MB
MAX_XML_DEPTH = 200
MAX_XML_ELEMENTS = 1_000_000
MAX_ITEMS = 10_000  # reactions, rules, events, initial assignments, each
MAX_EVENT_ASSIGNMENTS = 20_000
_ANNOTATION_LIMITS = JsonLimits(max_bytes=256 * 1024, max_depth=100, max_nodes=50_000,
                                max_string=20_000)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_RESERVED = {"t", "time", "nan", "inf"}


class SBMLImportError(ModelError):
    """An SBML file that cannot become a model: one line per element at fault."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = list(problems)
        shown_problems = "; ".join(self.problems[:12])
        more = f"; and {len(self.problems) - 12} more" if len(self.problems) > 12 else ""
        super().__init__(f"{source}: cannot import: {shown_problems}{more}")


@dataclass
class ImportedModel:
    """A model read from SBML, with what the file says beyond the model's structure: the
    parameter values, the doses and control schedules its events describe, the names that
    had to change, and notes on what was dropped without changing the dynamics."""

    model: Model
    values: dict[str, float]
    doses: list[Dose] = field(default_factory=list)
    controls: dict[str, ControlSchedule] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class _Names:
    """mmw names for SBML ids: valid identifiers, not reserved, unique."""

    def __init__(self) -> None:
        self.by_id: dict[str, str] = {}
        self.used: set[str] = set()

    def name(self, sid: str) -> str:
        if sid in self.by_id:
            return self.by_id[sid]
        base = re.sub(r"[^A-Za-z0-9_]", "_", sid)[:60] or "x"
        if not base[0].isalpha():
            base = f"x{base}"
        if base in _RESERVED or base.lower() in {"lambda", "def", "class", "and", "or",
                                                  "not", "if", "else", "in", "is", "for",
                                                  "from", "import", "return", "with", "as"}:
            base = f"{base}_"
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        self.by_id[sid] = name
        return name


def _precheck(data: bytes, source: str) -> None:
    """Refuse a DTD (entity expansion) and measure depth and size with expat, which
    never recurses, before libsbml's parser sees the bytes."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SBMLImportError(source, ["the XML declares a DTD or entities, which SBML never "
                                       "needs (refused: entity expansion)"])
    depth, count = [0], [0]
    parser = xml.parsers.expat.ParserCreate()

    def start(_name: str, _attrs: Any) -> None:
        depth[0] += 1
        count[0] += 1
        if depth[0] > MAX_XML_DEPTH:
            raise SBMLImportError(source, [f"the XML is nested more than {MAX_XML_DEPTH} deep"])
        if count[0] > MAX_XML_ELEMENTS:
            raise SBMLImportError(source, [f"the XML has more than {MAX_XML_ELEMENTS} "
                                           "elements"])

    def end(_name: str) -> None:
        depth[0] -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise SBMLImportError(source, [f"not well-formed XML (line {exc.lineno}, column "
                                       f"{exc.offset}): {xml.parsers.expat.ErrorString(exc.code)}"
                                       ]) from None


def read_sbml(path: str | Path) -> ImportedModel:
    """An SBML file: a regular file of at most MAX_BYTES, then :func:`sbml_to_model`."""
    data = read_regular_file(path, f"SBML file {path}", MAX_BYTES)
    return sbml_to_model(data, str(path))


def _annotation(element: Any) -> dict[str, Any]:
    """mmw's own JSON annotation of an element, parsed as bounded data ({} if none)."""
    node = element.getAnnotation() if element.isSetAnnotation() else None
    if node is None:
        return {}
    for i in range(node.getNumChildren()):
        child = node.getChild(i)
        if child.getURI() == NAMESPACE and child.getName() == "data":
            text = "".join(child.getChild(j).getCharacters() for j in range(child.getNumChildren())
                           if child.getChild(j).isText())
            try:
                data = parse_json(text, f"the mmw annotation of {element.getId()!r}",
                                  _ANNOTATION_LIMITS)
            except UntrustedDataError as exc:
                raise MathError(str(exc)) from None
            return data if isinstance(data, dict) else {}
    return {}


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    return value[:20_000] if isinstance(value, str) else ""


def sbml_to_model(data: bytes | str, source: str = "SBML") -> ImportedModel:
    """Import SBML text; raises :class:`SBMLImportError` listing what cannot be mapped."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_BYTES:
        raise SBMLImportError(source, [f"the file is larger than {MAX_BYTES} bytes"])
    _precheck(raw, source)
    doc = libsbml.readSBMLFromString(raw.decode("utf-8", errors="replace"))
    errors = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if errors:
        raise SBMLImportError(source, [f"line {e.getLine()}: {' '.join(e.getMessage().split())}"
                                       [:300] for e in errors[:5]])
    sbml = doc.getModel()
    if sbml is None:
        raise SBMLImportError(source, ["the document has no <model>"])
    return _Importer(doc, sbml, source).run()


class _Importer:
    def __init__(self, doc: Any, sbml: Any, source: str) -> None:
        self.doc, self.sbml, self.source = doc, sbml, source
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.names = _Names()
        self.kind: dict[str, str] = {}
        self.symbols: dict[str, sp.Symbol] = {}
        self.functions: dict[str, Any] = {}
        self._control_start: dict[str, float] = {}
        self._locals: dict[str, dict[str, sp.Basic]] = {}
        self._reaction_ids: dict[str, Any] = {}
        self._inlined: dict[str, sp.Basic] = {}
        self._inlining: set[str] = set()

    def problem(self, text: str) -> None:
        self.problems.append(text)

    # ----------------------------------------------------------------- structure
    def run(self) -> ImportedModel:
        m, doc = self.sbml, self.doc
        for i in range(doc.getNumPlugins() if doc.getLevel() >= 3 else 0):  # L2: none
            package = doc.getPlugin(i).getPackageName()
            if package == "l3v2extendedmath" or not doc.isPackageEnabled(package):
                continue  # l3v2extendedmath: libsbml's name for L3V2 core math
            if doc.getPackageRequired(package):
                self.problem(f"package {package!r} is required by the file and not supported")
            else:
                self.notes.append(f"package {package!r} ignored (not required for simulation)")
        counts = {"species, parameters and compartments": m.getNumSpecies()
                  + m.getNumParameters() + m.getNumCompartments(),
                  "reactions": m.getNumReactions(), "rules": m.getNumRules(),
                  "events": m.getNumEvents(), "initial assignments":
                  m.getNumInitialAssignments(), "function definitions":
                  m.getNumFunctionDefinitions()}
        for what, n in counts.items():
            limit = MAX_SYMBOLS if what.startswith("species") else MAX_ITEMS
            if n > limit:
                raise SBMLImportError(self.source, [f"the model has {n} {what}, more than "
                                                    f"{limit}"])
        if m.isSetConversionFactor():
            self.problem(f"model conversionFactor {m.getConversionFactor()!r} is not supported")
        try:
            self.functions = function_definitions(m)
        except MathError as exc:
            self.problem(str(exc))
            self.functions = {}

        self.assign_rules: dict[str, Any] = {}
        self.rate_rules: dict[str, Any] = {}
        for i in range(m.getNumRules()):
            rule = m.getRule(i)
            if rule.isAlgebraic():
                label = rule.getMetaId() or rule.getId() or f"#{i + 1}"
                self.problem(f"algebraic rule {label}: algebraic rules (DAEs) are not "
                             "supported")
            elif rule.isAssignment():
                self.assign_rules[rule.getVariable()] = rule
            elif rule.isRate():
                self.rate_rules[rule.getVariable()] = rule
        self.initial = {m.getInitialAssignment(i).getSymbol(): m.getInitialAssignment(i)
                        for i in range(m.getNumInitialAssignments())}
        event_targets: dict[str, list[str]] = {}
        n_assign = 0
        for i in range(m.getNumEvents()):
            event = m.getEvent(i)
            n_assign += event.getNumEventAssignments()
            for j in range(event.getNumEventAssignments()):
                event_targets.setdefault(event.getEventAssignment(j).getVariable(), []).append(
                    event.getId())
        if n_assign > MAX_EVENT_ASSIGNMENTS:
            raise SBMLImportError(self.source, [f"the events hold {n_assign} assignments, "
                                                f"more than {MAX_EVENT_ASSIGNMENTS}"])

        # What each id is: 'state', 'param', 'constant', 'control', 'rule' (inlined), and
        # the volume a concentration species is divided by.
        self.value: dict[str, float] = {}
        self.volume: dict[str, float] = {}
        self.compartment_of: dict[str, str] = {}
        for i in range(m.getNumCompartments()):
            c = m.getCompartment(i)
            cid = c.getId()
            size = c.getSize() if c.isSetSize() else math.nan
            if cid in self.rate_rules or cid in self.assign_rules or cid in event_targets or (
                    not c.getConstant() and m.getLevel() >= 3 and cid in self.initial):
                self.problem(f"compartment {cid!r}: a size that changes in time is not "
                             "supported")
            if cid in self.initial:
                size = self._initial_number(cid, size)
            if not math.isfinite(size):
                self.notes.append(f"compartment {cid!r} has no size; taken as 1")
                size = 1.0
            self.kind[cid], self.value[cid] = "constant", size
        for i in range(m.getNumParameters()):
            p = m.getParameter(i)
            pid = p.getId()
            self.value[pid] = p.getValue() if p.isSetValue() else math.nan
            if pid in self.assign_rules:
                self.kind[pid] = "rule"
            elif pid in self.rate_rules:
                self.kind[pid] = "state"
            elif pid in event_targets:
                self.kind[pid] = "control"
            elif pid in self.initial:
                self.kind[pid] = "rule"  # constant: inlined as its initial expression
            else:  # mmw's annotation says which (a control without a schedule, a constant)
                role = self._role(p)
                self.kind[pid] = role if role in ("control", "constant") else "param"
        for i in range(m.getNumSpecies()):
            s = m.getSpecies(i)
            sid = s.getId()
            self.compartment_of[sid] = s.getCompartment()
            if s.isSetConversionFactor():
                self.problem(f"species {sid!r}: conversionFactor is not supported")
            volume = self.value.get(s.getCompartment(), 1.0)
            amount_only = s.getHasOnlySubstanceUnits()
            self.volume[sid] = 1.0 if amount_only else volume
            if s.isSetInitialAmount():
                v = s.getInitialAmount()
                self.value[sid] = v if amount_only else v / volume
            elif s.isSetInitialConcentration():
                v = s.getInitialConcentration()
                self.value[sid] = v * volume if amount_only else v
            else:
                self.value[sid] = math.nan
            if sid in self.assign_rules:
                self.kind[sid] = "rule"
            elif sid in self.rate_rules:
                self.kind[sid] = "state"
            elif s.getConstant() or (s.getBoundaryCondition() and sid not in event_targets):
                self.kind[sid] = "constant"
                if sid in self.initial:
                    self.kind[sid] = "rule"
            else:
                self.kind[sid] = "state"
        for target, events in event_targets.items():
            kind = self.kind.get(target)
            if kind in ("rule",) or (kind == "constant" and target in self.compartment_of):
                self.problem(f"event {events[0]!r}: assigns {target!r}, which a rule or "
                             "constancy fixes")

        self._reaction_ids = {m.getReaction(i).getId(): m.getReaction(i)
                              for i in range(m.getNumReactions())}
        self.symbols.update({sid: sp.Symbol(self.names.name(sid))
                             for sid, kind in self.kind.items() if kind != "rule"})
        return self._build()

    def _role(self, element: Any) -> str:
        try:
            role = _annotation(element).get("role", "")
        except MathError as exc:
            self.problem(str(exc))
            return ""
        return role if isinstance(role, str) else ""

    def _initial_number(self, sid: str, fallback: float) -> float:
        try:
            expr = self._math(self.initial[sid].getMath(), f"initial assignment of {sid!r}")
            known = {s: v for s, v in ((self.symbols.get(k), self.value.get(k))
                                       for k in self.symbols)
                     if s is not None and v is not None and math.isfinite(v)}
            return evaluate_number(expr, known, f"initial assignment of {sid!r}")
        except MathError as exc:
            self.problem(f"initial assignment of {sid!r}: {exc}")
            return fallback

    # ----------------------------------------------------------------- math
    def _resolve(self, sid: str, local: dict[str, sp.Basic] | None = None) -> sp.Basic:
        if local and sid in local:
            return local[sid]
        if sid in self.symbols:
            return self.symbols[sid]
        if self.kind.get(sid) == "rule":
            if sid in self._inlined:
                return self._inlined[sid]
            if sid in self._inlining:
                raise MathError(f"the rules defining {sid!r} refer to each other in a cycle")
            self._inlining.add(sid)
            try:
                source = self.assign_rules.get(sid) or self.initial.get(sid)
                expr = self._math(source.getMath(), f"the rule for {sid!r}")
            finally:
                self._inlining.discard(sid)
            self._inlined[sid] = expr
            return expr
        if sid in self._reaction_ids:
            return self._rate(self._reaction_ids[sid])[0]
        raise MathError(f"refers to {sid!r}, which the model does not declare")

    def _math(self, ast: Any, where: str, local: dict[str, sp.Basic] | None = None,
              ) -> sp.Basic:
        resolver: Callable[[str], sp.Basic] = lambda sid: self._resolve(sid, local)  # noqa: E731
        try:
            return ast_to_sympy(ast, resolver, self.functions)
        except MathError as exc:
            raise MathError(f"{where}: {exc}") from None

    def _rate(self, reaction: Any) -> tuple[sp.Basic, dict[str, sp.Symbol]]:
        """A reaction's rate (amount per time) and the global names of its local
        parameters."""
        rid = reaction.getId()
        law = reaction.getKineticLaw()
        if law is None or law.getMath() is None:
            raise MathError(f"reaction {rid!r} has no kinetic law")
        local = self._locals.get(rid)
        if local is None:
            local = self._locals[rid] = {}
            for i in range(law.getNumParameters()):
                p = law.getParameter(i)
                gid, k = f"{rid}_{p.getId()}", 1
                while gid in self.kind or gid in self._reaction_ids:
                    k += 1
                    gid = f"{rid}_{p.getId()}_{k}"
                self.symbols[gid] = sp.Symbol(self.names.name(gid))
                self.kind[gid] = "param"
                self.value[gid] = p.getValue() if p.isSetValue() else math.nan
                local[p.getId()] = self.symbols[gid]
        return self._math(law.getMath(), f"reaction {rid!r} kinetic law", local), {}

    # ----------------------------------------------------------------- the model
    def _build(self) -> ImportedModel:
        m = self.sbml
        info = _annotation(m) if m.isSetAnnotation() else {}
        title = _text(info, "name") or m.getName() or m.getId() or "imported SBML model"
        model = Model(" ".join(title.split())[:200] or "imported SBML model",
                      time_unit=_text(info, "time_unit") or _time_unit(m),
                      doc=_text(info, "doc") or f"imported from {Path(self.source).name}")
        states = [sid for sid, k in self.kind.items() if k == "state"]
        values: dict[str, float] = {}

        def element_info(sid: str) -> dict[str, Any]:
            element = m.getElementBySId(sid)
            try:
                return _annotation(element) if element is not None else {}
            except MathError as exc:
                self.problem(str(exc))
                return {}

        def declare(what: str, sid: str, action: Callable[[], Any]) -> Any:
            try:
                return action()
            except MathError as exc:
                self.problem(str(exc))
            except ModelError as exc:
                self.problem(f"{what} {sid!r}: {exc}")
            return None

        for sid in states:
            meta = element_info(sid)
            declare("state", sid, lambda sid=sid, meta=meta: model.state(
                self.names.name(sid), _text(meta, "doc"), _text(meta, "unit")))
        # Reactions may add local parameters: read them before the parameters are declared.
        contributions: list[tuple[str, Any]] = []
        for rid, reaction in self._reaction_ids.items():
            if reaction.isSetFast() and reaction.getFast():
                self.problem(f"reaction {rid!r}: fast reactions (rapid equilibrium) are not "
                             "supported")
                continue
            try:
                rate, _ = self._rate(reaction)
            except MathError as exc:
                self.problem(str(exc))
                continue
            contributions.append((rid, (reaction, rate)))
        for sid, kind in list(self.kind.items()):
            if kind not in ("param", "constant", "control"):
                continue
            meta = element_info(sid)
            name = self.names.name(sid)
            value = self.value.get(sid, math.nan)
            if isinstance(meta.get("value"), int | float) and math.isfinite(value) and \
                    abs(meta["value"] - value) <= 1e-13 * max(abs(value), 1e-300):
                value = float(meta["value"])  # the exact value mmw wrote
            if not math.isfinite(value):
                self.notes.append(f"{sid!r} has no value; taken as 0")
                value = 0.0
            if kind == "constant":
                declare("constant", sid, lambda name=name, value=value, meta=meta:
                        model.constant(name, value, _text(meta, "doc"), _text(meta, "unit")))
            elif kind == "control":
                default = meta.get("default", value)
                default = float(default) if isinstance(default, int | float) else value
                declare("control", sid, lambda name=name, d=default, meta=meta:
                        model.control(name, d, _text(meta, "doc"), _text(meta, "unit")))
                self._control_start[sid] = value
            else:
                prior = self._prior(sid, meta, value)
                if prior is not None:
                    declare("parameter", sid, lambda name=name, prior=prior, meta=meta:
                            model.param(name, prior, _text(meta, "doc"), _text(meta, "unit")))
                    values[name] = value
        index = set(model.states_)
        for rid, (reaction, rate) in contributions:
            self._reaction(model, rid, reaction, rate, index)
        for sid, rule in self.rate_rules.items():
            if self.kind.get(sid) != "state":
                continue
            where = f"rate rule for {sid!r}"
            declare("rate rule for", sid, lambda sid=sid, rule=rule, where=where: model.rate(
                self.names.name(sid), self._math(rule.getMath(), where)))
        self._inits(model, states)
        self._observables(model, element_info, declare)
        doses, controls = self._events(model, values)
        if self.problems:
            raise SBMLImportError(self.source, self.problems)
        model = self._without_unused_compartments(model)
        renamed = {sid: name for sid, name in self.names.by_id.items() if sid != name}
        return ImportedModel(model, values, doses, controls, renamed, self.notes)

    def _without_unused_compartments(self, model: Model) -> Model:
        """Drop the constants made from compartments that no expression reads (a
        compartment of size 1 that only holds the species, as most tools write one)."""
        from mechanistic.serialize import model_from_dict, model_to_dict

        exprs = [f.rate for f in model.flows] + [r.expr for r in model.rates] + \
            list(model.inits.values()) + [o.expr for o in model.observables_.values()] + \
            [a for o in model.observables_.values() for a in o.noise.arguments().values()]
        read = {s.name for e in exprs for s in sp.sympify(e).free_symbols}
        compartments = {self.names.name(self.sbml.getCompartment(i).getId())
                        for i in range(self.sbml.getNumCompartments())}
        unused = (compartments & set(model.constants_)) - read
        if not unused:
            return model
        data = model_to_dict(model)
        data["constants"] = [c for c in data["constants"] if c["name"] not in unused]
        return model_from_dict(data)

    def _prior(self, sid: str, meta: dict[str, Any], value: float) -> Prior | None:
        if isinstance(meta.get("prior"), dict):
            try:
                return prior_from_dict(meta["prior"])
            except ModelError as exc:
                self.problem(f"parameter {sid!r}: its mmw prior annotation: {exc}")
                return None
        if value > 0 and value * 10 < 1e300:
            return LogUniform(value / 10, value * 10)
        return Fixed(value)

    def _reaction(self, model: Model, rid: str, reaction: Any, rate: sp.Basic,
                  states: set[str]) -> None:
        """Flow or rate terms for one reaction: d[X]/dt += stoichiometry * rate / volume."""
        def refs(n: int, get: Callable[[int], Any], sign: int) -> list[tuple[str, float]]:
            out = []
            for i in range(n):
                ref = get(i)
                sid = ref.getSpecies()
                if ref.isSetId() and ref.getId() and (
                        ref.getId() in self.assign_rules or ref.getId() in self.rate_rules
                        or ref.getId() in self.initial):
                    self.problem(f"reaction {rid!r}: the stoichiometry of {sid!r} changes "
                                 "(a rule or assignment sets it), which is not supported")
                    continue
                if hasattr(ref, "isSetStoichiometryMath") and ref.isSetStoichiometryMath():
                    self.problem(f"reaction {rid!r}: stoichiometryMath of {sid!r} is not "
                                 "supported")
                    continue
                n_ = ref.getStoichiometry() if ref.isSetStoichiometry() else 1.0
                if not math.isfinite(n_):
                    n_ = 1.0
                if self.kind.get(sid) == "state" and sid not in self.rate_rules:
                    out.append((sid, sign * n_))
            return out

        parts = refs(reaction.getNumReactants(), reaction.getReactant, -1) + \
            refs(reaction.getNumProducts(), reaction.getProduct, +1)
        net: dict[str, float] = {}
        for sid, n in parts:
            net[sid] = net.get(sid, 0.0) + n
        net = {k: v for k, v in net.items() if v != 0}
        label = " ".join((reaction.getName() or rid).split())[:200] or rid
        if any(f.name == label for f in model.flows):
            label = rid
        source = [k for k, v in net.items() if v < 0]
        target = [k for k, v in net.items() if v > 0]
        scale = {self.volume.get(k, 1.0) for k in net}
        simple = (len(source) <= 1 and len(target) <= 1 and all(abs(v) == 1 for v in
                                                                 net.values())
                  and len(scale) == 1 and (source or target))
        try:
            if simple:
                volume = scale.pop()
                flux = rate if volume == 1.0 else sp.Mul(
                    rate, sp.Pow(sp.Float(volume), sp.Integer(-1), evaluate=False),
                    evaluate=False)
                model.flow(self.names.name(source[0]) if source else None,
                           self.names.name(target[0]) if target else None, flux, name=label)
                return
            for sid, n in net.items():
                factor = n / self.volume.get(sid, 1.0)
                model.rate(self.names.name(sid),
                           rate if factor == 1.0 else sp.Mul(sp.Float(factor), rate,
                                                             evaluate=False))
        except ModelError as exc:
            self.problem(f"reaction {rid!r}: {exc}")

    def _inits(self, model: Model, states: list[str]) -> None:
        """Initial conditions: numbers, or initial assignments written in parameters (a
        state read by one is replaced by its own initial expression)."""
        exprs: dict[str, sp.Basic] = {}
        for sid in states:
            if sid in self.initial:
                try:
                    exprs[sid] = self._math(self.initial[sid].getMath(),
                                            f"initial assignment of {sid!r}")
                except MathError as exc:
                    self.problem(str(exc))
            else:
                value = self.value.get(sid, math.nan)
                if not math.isfinite(value):
                    self.notes.append(f"{sid!r} has no initial value; taken as 0")
                    value = 0.0
                exprs[sid] = sp.Float(value) if value != int(value) or abs(value) > 1e15 \
                    else sp.Integer(int(value))
        by_symbol = {self.symbols[sid]: e for sid, e in exprs.items()}
        for sid, expr in exprs.items():
            for _ in range(len(exprs) + 1):
                if not (expr.free_symbols & set(by_symbol)):
                    break
                try:
                    expr = substitute(expr, by_symbol)
                except MathError as exc:
                    self.problem(f"initial assignment of {sid!r}: {exc}")
                    break
            if TIME in expr.free_symbols or expr.free_symbols & set(by_symbol):
                self.problem(f"initial assignment of {sid!r}: depends on time or on states in "
                             "a cycle")
                continue
            start = self._control_values()
            if expr.free_symbols & set(start):
                expr = substitute(expr, start)
            try:
                model.init({self.names.name(sid): expr})
            except ModelError as exc:
                self.problem(f"initial assignment of {sid!r}: {exc}")

    def _control_values(self) -> dict[sp.Symbol, sp.Basic]:
        return {self.symbols[sid]: sp.Float(v) for sid, v in self._control_start.items()}

    def _observables(self, model: Model, element_info: Callable[[str], dict[str, Any]],
                     declare: Callable[..., Any]) -> None:
        """Each assignment rule is an observable; mmw's annotation gives its noise."""
        for sid in self.assign_rules:
            meta = element_info(sid)
            name = _text(meta, "name") if meta.get("role") == "observable" else ""
            if not _NAME.fullmatch(name or ""):
                name = self.names.name(sid)
            try:
                expr = self._resolve(sid)
            except MathError as exc:
                self.problem(str(exc))
                continue
            noise = self._noise(sid, meta, model)
            if noise is None:
                continue
            declare("observable", sid, lambda name=name, expr=expr, noise=noise, meta=meta:
                    model.observe(name, expr, noise, _text(meta, "doc"), _text(meta, "unit")))

    def _noise(self, sid: str, meta: dict[str, Any], model: Model) -> Noise | None:
        data = meta.get("noise")
        if not isinstance(data, dict):
            return Gaussian(1.0)
        cls = NOISE_KINDS.get(data.get("kind")) if isinstance(data.get("kind"), str) else None
        if cls is None:
            self.problem(f"observable {sid!r}: unknown noise kind {shown(data.get('kind'))}")
            return None
        symbols = {sid_: s for sid_, s in self.symbols.items()}
        symbols.update({s.name: s for s in self.symbols.values()})
        try:
            args = {k: expr_from_json(v, symbols, None, f"observable {sid!r} noise {k}")
                    for k, v in data.items() if k != "kind"}
            return cls(**args)
        except (ModelError, TypeError) as exc:
            self.problem(f"observable {sid!r}: its noise annotation: {exc}")
            return None

    def _events(self, model: Model, values: dict[str, float],
                ) -> tuple[list[Dose], dict[str, ControlSchedule]]:
        """Events at fixed times: doses (X = X + amount) and control changes (u = value)."""
        numbers = {self.symbols[sid]: v for sid, v in self.value.items()
                   if sid in self.symbols and self.kind.get(sid) in ("param", "constant")
                   and math.isfinite(v)}
        doses: dict[tuple[str, float], list[float]] = {}
        changes: dict[str, dict[float, float]] = {}
        for i in range(self.sbml.getNumEvents()):
            event = self.sbml.getEvent(i)
            eid = event.getId() or f"#{i + 1}"
            if event.isSetDelay():
                self.problem(f"event {eid!r}: delayed events are not supported")
                continue
            trigger = event.getTrigger()
            try:
                cond = self._math(trigger.getMath() if trigger else None, f"event {eid!r} trigger")
                time = _threshold(cond, numbers)
            except MathError as exc:
                self.problem(str(exc))
                continue
            if time is None:
                self.problem(f"event {eid!r}: the trigger {cond} is not 'time >= a constant', "
                             "the only form mmw maps (a dose or a scheduled change)")
                continue
            initial = trigger.getInitialValue() if trigger.isSetInitialValue() else True
            if initial and time <= 0:
                self.notes.append(f"event {eid!r} never fires (its trigger is true at the "
                                  "start and initialValue is true)")
                continue
            for j in range(event.getNumEventAssignments()):
                assignment = event.getEventAssignment(j)
                target = assignment.getVariable()
                try:
                    expr = self._math(assignment.getMath(), f"event {eid!r} assignment")
                except MathError as exc:
                    self.problem(str(exc))
                    continue
                kind = self.kind.get(target)
                symbol = self.symbols.get(target)
                try:
                    if kind == "state" and symbol is not None:
                        amount = evaluate_number(sp.Add(expr, -symbol), numbers, "")
                        doses.setdefault((self.names.name(target), amount), []).append(time)
                        continue
                    if kind == "control":
                        changes.setdefault(target, {})[time] = evaluate_number(expr, numbers,
                                                                               "")
                        continue
                except MathError:
                    pass
                self.problem(f"event {eid!r}: the assignment {target} = {expr} is neither a "
                             "dose (a state plus a constant) nor a control set to a constant")
        out_doses = [Dose(state, amount, tuple(sorted(times)))
                     for (state, amount), times in doses.items()]
        schedules = {}
        for sid, at in changes.items():
            times = sorted(at)
            schedules[self.names.name(sid)] = ControlSchedule(
                (-math.inf, *times), (self._control_start[sid], *(at[t] for t in times)))
        return out_doses, schedules


def _threshold(cond: sp.Basic, numbers: dict[sp.Symbol, float]) -> float | None:
    """The time of a trigger ``time >= c`` (or ``>``, or written the other way round)."""
    if isinstance(cond, sp.GreaterThan | sp.StrictGreaterThan):
        lhs, rhs = cond.lhs, cond.rhs
    elif isinstance(cond, sp.LessThan | sp.StrictLessThan):
        lhs, rhs = cond.rhs, cond.lhs
    else:
        return None
    if lhs != TIME or TIME in rhs.free_symbols or not rhs.free_symbols <= set(numbers):
        return None
    return evaluate_number(rhs, numbers, "event time")


def _time_unit(m: Any) -> str:
    unit = m.getTimeUnits() if m.isSetTimeUnits() else ""
    return unit if unit and len(unit) <= 100 else "time"
