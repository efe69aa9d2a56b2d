"""The JSON Schemas of the structured channel: a model specification, and interventions.

The schema is what the server is asked to constrain its sampling to (OpenAI's, vLLM's,
Ollama's and llama.cpp's ``response_format`` all take a JSON Schema), so it is written
for small models as much as for the validator: flat objects, short field names, enums
for every choice, a pattern for names, and bounds on every list and string. The schema
is a request, not a guarantee: :mod:`agent.structured.spec` validates the answer again on
the host, and only that validation is trusted.

Priors are given by a plausible range for every kind, so "lower > upper" means the same
thing whatever the kind: ``LogUniform``/``Uniform`` take it as their bounds, ``Normal``
and ``LogNormal`` as their central 95% interval, ``HalfNormal`` its 95% point
(``upper``), ``Fixed`` the value (``lower``, equal to ``upper``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "INTERVENTION_SCHEMA",
    "MAX_FLOWS",
    "MAX_INPUTS",
    "MAX_OBSERVABLES",
    "MAX_PARAMETERS",
    "MAX_STATES",
    "NAME_PATTERN",
    "NOISE_KINDS",
    "PRIOR_KINDS",
    "SPEC_SCHEMA",
]

MAX_STATES = 12
MAX_PARAMETERS = 40
MAX_INPUTS = 8
MAX_FLOWS = 40
MAX_OBSERVABLES = 16
NAME_PATTERN = "^[A-Za-z][A-Za-z0-9_]{0,31}$"
PRIOR_KINDS = ("LogUniform", "Uniform", "Normal", "LogNormal", "HalfNormal", "Fixed")
NOISE_KINDS = ("Gaussian", "LogNormal", "Poisson", "NegBinomial")

_NAME: dict[str, Any] = {"type": "string", "pattern": NAME_PATTERN}
_EXPR: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 300}
_STATE_OR_NONE: dict[str, Any] = {"anyOf": [_NAME, {"type": "null"}]}


def _object(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties,
            "required": [k for k in properties if k not in optional],
            "additionalProperties": False}


SPEC_SCHEMA: dict[str, Any] = _object({
    "structure": {"type": "string", "minLength": 1, "maxLength": 80},
    "states": {"type": "array", "minItems": 1, "maxItems": MAX_STATES, "items": _object({
        "name": _NAME, "initial": _EXPR})},
    "inputs": {"type": "array", "maxItems": MAX_INPUTS, "items": _object({
        "name": _NAME, "default": {"type": "number"}})},
    "parameters": {"type": "array", "minItems": 1, "maxItems": MAX_PARAMETERS,
                   "items": _object({
                       "name": _NAME, "prior": {"enum": list(PRIOR_KINDS)},
                       "lower": {"type": "number"}, "upper": {"type": "number"}})},
    "flows": {"type": "array", "maxItems": MAX_FLOWS, "items": _object({
        "name": _NAME, "from": _STATE_OR_NONE, "to": _STATE_OR_NONE, "rate": _EXPR})},
    "rates": {"type": "array", "maxItems": MAX_FLOWS, "items": _object({
        "state": _NAME, "expression": _EXPR})},
    "observables": {"type": "array", "minItems": 1, "maxItems": MAX_OBSERVABLES,
                    "items": _object({
                        "column": _NAME, "expression": _EXPR,
                        "noise": {"enum": list(NOISE_KINDS)},
                        "noise_parameter": _STATE_OR_NONE})},
})
"""A model specification: what one structured answer holds."""

_INTERVENTION_KINDS = ("set", "scale", "dose", "infusion", "transfer")
INTERVENTION_SCHEMA: dict[str, Any] = _object({
    "interventions": {"type": "array", "maxItems": 16, "items": _object({
        "kind": {"enum": list(_INTERVENTION_KINDS)},
        "target": _STATE_OR_NONE,
        "state": _STATE_OR_NONE,
        "source": _STATE_OR_NONE,
        "value": {"type": "number"},
        "factor": {"type": "number"},
        "amount": {"type": "number"},
        "rate": {"type": "number"},
        "times": {"type": "array", "maxItems": 64, "items": {"type": "number"}},
        "start": {"type": "number"},
        "end": {"anyOf": [{"type": "number"}, {"type": "null"}]},
    }, optional=("target", "state", "source", "value", "factor", "amount", "rate", "times",
                 "start", "end"))},
    "unmappable": {"anyOf": [{"type": "string", "maxLength": 300}, {"type": "null"}]},
})
"""What-if answers: the intervention list of :mod:`mechanistic.interventions`, or why not."""
