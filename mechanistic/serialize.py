"""Model JSON: the only form in which a model leaves the sandbox.

``model_from_dict`` rebuilds a :class:`Model` by replaying declarations, so everything a
model module could not do (undeclared symbols, duplicate names, disallowed functions) is
also refused when loading JSON, with a message naming the part of the document at fault.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from mechanistic.errors import ModelError, SerializationError, UntrustedDataError
from mechanistic.expr import EXPR_LIMITS, expr_from_json, expr_to_json
from mechanistic.model import Model
from mechanistic.noise import NOISE_KINDS
from mechanistic.priors import prior_from_dict
from mechanistic.untrusted import JsonLimits, check_tree, parse_json, shown

__all__ = ["FORMAT", "model_from_dict", "model_from_json", "model_to_dict", "model_to_json"]

FORMAT = "mmw.model/1"


def model_to_dict(model: Model) -> dict[str, Any]:
    neural = model.functions

    def enc(expr: Any) -> Any:
        return expr_to_json(expr, neural)

    return {
        "format": FORMAT,
        "name": model.name,
        "time_unit": model.time_unit,
        "doc": model.doc,
        "states": [{"name": s.name, "doc": s.doc, "unit": s.unit} for s in model.states_.values()],
        "params": [
            {"name": p.name, "prior": p.prior.to_dict(), "doc": p.doc, "unit": p.unit}
            for p in model.params_.values()
        ],
        "constants": [
            {"name": c.name, "value": c.value, "doc": c.doc, "unit": c.unit}
            for c in model.constants_.values()
        ],
        "controls": [
            {"name": c.name, "default": c.default, "doc": c.doc, "unit": c.unit}
            for c in model.controls_.values()
        ],
        "neural": [
            {
                "name": n.name,
                "inputs": [enc(x) for x in n.inputs],
                "hidden": list(n.hidden),
                "activation": n.activation,
                "doc": n.doc,
            }
            for n in model.neural_.values()
        ],
        "flows": [
            {"name": f.name, "source": f.source, "target": f.target, "rate": enc(f.rate)}
            for f in model.flows
        ],
        "rates": [{"state": r.state, "expr": enc(r.expr)} for r in model.rates],
        "init": {name: enc(value) for name, value in model.inits.items()},
        "observables": [
            {
                "name": o.name,
                "expr": enc(o.expr),
                "noise": {
                    "kind": o.noise.kind,
                    **{k: enc(v) for k, v in o.noise.arguments().items()},
                },
                "doc": o.doc,
                "unit": o.unit,
            }
            for o in model.observables_.values()
        ],
    }


def model_to_json(model: Model, indent: int | None = 2) -> str:
    return json.dumps(model_to_dict(model), indent=indent)


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if not isinstance(obj, dict):
        raise SerializationError(f"{where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        if default is ...:
            raise SerializationError(f"{where}: missing field {key!r}")
        return default
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
        names = "/".join(k.__name__ for k in _tuple(kind))
        raise SerializationError(f"{where}: field {key!r} must be {names}, got "
                                 f"{shown(value)}")
    return value


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _list(obj: Any, key: str) -> list[Any]:
    return _get(obj, key, list, "model", default=[])


def model_from_dict(data: Any) -> Model:
    """Rebuild a model from its JSON form; errors name the part that is malformed."""
    if isinstance(data, dict):
        try:  # a dict handed over in-process (an LLM's structured answer): the same bounds
            check_tree(data, "model JSON", MODEL_JSON_LIMITS)
        except UntrustedDataError as exc:
            raise SerializationError(str(exc)) from None
    return _from_bounded(data)


def _from_bounded(data: Any) -> Model:
    """:func:`model_from_dict` for data already checked against MODEL_JSON_LIMITS."""
    if not isinstance(data, dict):
        raise SerializationError(f"model JSON must be an object, got {type(data).__name__}")
    fmt = data.get("format")
    if fmt != FORMAT:
        raise SerializationError(f"model JSON has format {shown(fmt)}; this version "
                                 f"reads {FORMAT!r}")
    known = {"format", "name", "time_unit", "doc", "states", "params", "constants", "controls",
             "neural", "flows", "rates", "init", "observables"}
    extra = set(data) - known
    if extra:
        raise SerializationError(f"model JSON has unknown field(s) {sorted(extra)}")
    try:
        return _rebuild(data)
    except SerializationError:
        raise
    except ModelError as exc:
        raise SerializationError(f"model JSON is inconsistent: {exc}") from None


def _rebuild(data: dict[str, Any]) -> Model:
    model = Model(
        _get(data, "name", str, "model"),
        time_unit=_get(data, "time_unit", str, "model", "time"),
        doc=_get(data, "doc", str, "model", ""),
    )

    def text(obj: Any, key: str, where: str) -> str:
        return _get(obj, key, str, where, "")

    for i, s in enumerate(_list(data, "states")):
        where = f"states[{i}]"
        model.state(_get(s, "name", str, where), text(s, "doc", where), text(s, "unit", where))
    for i, p in enumerate(_list(data, "params")):
        where = f"params[{i}]"
        try:
            prior = prior_from_dict(_get(p, "prior", dict, where))
        except SerializationError:
            raise
        except ModelError as exc:  # name the parameter whose prior is bad
            raise SerializationError(f"{where}.prior: {exc}") from None
        model.param(_get(p, "name", str, where), prior, text(p, "doc", where),
                    text(p, "unit", where))
    for i, c in enumerate(_list(data, "constants")):
        where = f"constants[{i}]"
        model.constant(_get(c, "name", str, where), _get(c, "value", (int, float), where),
                       text(c, "doc", where), text(c, "unit", where))
    for i, c in enumerate(_list(data, "controls")):
        where = f"controls[{i}]"
        model.control(_get(c, "name", str, where), _get(c, "default", (int, float), where, 0.0),
                      text(c, "doc", where), text(c, "unit", where))

    def dec(node: Any, where: str) -> Any:
        return expr_from_json(node, model.symbols, model.functions, where)

    for i, n in enumerate(_list(data, "neural")):
        where = f"neural[{i}]"
        inputs = [dec(x, f"{where}.inputs") for x in _get(n, "inputs", list, where)]
        hidden = _get(n, "hidden", list, where, [16, 16])
        model.neural(_get(n, "name", str, where), inputs, tuple(hidden),
                     _get(n, "activation", str, where, "tanh"), text(n, "doc", where))
    for i, f in enumerate(_list(data, "flows")):
        where = f"flows[{i}]"
        model.flow(_get(f, "source", (str, type(None)), where),
                   _get(f, "target", (str, type(None)), where),
                   dec(_get(f, "rate", dict, where), f"{where}.rate"),
                   name=_get(f, "name", str, where))
    for i, r in enumerate(_list(data, "rates")):
        where = f"rates[{i}]"
        model.rate(_get(r, "state", str, where), dec(_get(r, "expr", dict, where), where))
    init = _get(data, "init", dict, "model", {})
    model.init({name: dec(value, f"init.{name[:64]}") for name, value in init.items()})
    for i, o in enumerate(_list(data, "observables")):
        where = f"observables[{i}]"
        noise_data = _get(o, "noise", dict, where)
        kind = noise_data.get("kind")
        cls = NOISE_KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise SerializationError(f"{where}.noise: unknown kind {shown(kind)}; "
                                     f"known: {sorted(NOISE_KINDS)}")
        args = {k: v for k, v in noise_data.items() if k != "kind"}
        expected = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        if set(args) != expected:
            raise SerializationError(f"{where}.noise: {kind!r} needs fields {sorted(expected)}, "
                                     f"got {sorted(args)}")
        noise = cls(**{k: dec(v, f"{where}.noise.{k}") for k, v in args.items()})
        model.observe(_get(o, "name", str, where), dec(_get(o, "expr", dict, where), where),
                      noise, text(o, "doc", where), text(o, "unit", where))
    return model


MODEL_JSON_LIMITS = JsonLimits(max_bytes=16 * 1024 * 1024, max_depth=2 * EXPR_LIMITS.max_depth + 8,
                               max_nodes=100_000, max_members=50_000, max_string=100_000)
"""Model JSON comes from the sandbox, an LLM or a file: read against these before anything
else (an expression nests two JSON levels per level, plus the document's own few)."""


def model_from_json(text: str | bytes) -> Model:
    """Parse model JSON (from a file or from the sandbox) into a :class:`Model`."""
    try:
        data = parse_json(text, "model JSON", MODEL_JSON_LIMITS)  # walks the bounds once
    except UntrustedDataError as exc:
        raise SerializationError(str(exc)) from None
    return _from_bounded(data)
