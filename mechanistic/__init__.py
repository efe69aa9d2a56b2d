"""The model language: declare mechanistic models as symbolic (sympy) objects.

This package imports without torch, so the sandbox image can load DSL modules with only
numpy, scipy and sympy. The torch parts (compiled simulator, likelihoods, fitting) live in
``mechanistic.simulate``, ``mechanistic.observation`` and ``mechanistic.fit``.
"""

from sympy import Heaviside, Max, Min, Piecewise, cos, exp, log, sin, sqrt, tanh

from mechanistic.checks import CheckResult, run_checks
from mechanistic.errors import DataError, ModelError, SerializationError
from mechanistic.model import Model
from mechanistic.noise import Gaussian, LogNormalNoise, NegBinomial, Noise, Poisson, PropAdd
from mechanistic.priors import Fixed, HalfNormal, LogNormal, LogUniform, Normal, Prior, Uniform
from mechanistic.review import (
    equations_latex,
    equations_text,
    parameter_table,
    render_parameter_table,
    render_review,
    review_dict,
)
from mechanistic.serialize import model_from_dict, model_from_json, model_to_dict, model_to_json

__all__ = [
    "CheckResult",
    "DataError",
    "Fixed",
    "Gaussian",
    "HalfNormal",
    "Heaviside",
    "LogNormal",
    "LogNormalNoise",
    "LogUniform",
    "Max",
    "Min",
    "Model",
    "ModelError",
    "NegBinomial",
    "Noise",
    "Normal",
    "Piecewise",
    "Poisson",
    "Prior",
    "PropAdd",
    "SerializationError",
    "Uniform",
    "cos",
    "equations_latex",
    "equations_text",
    "exp",
    "log",
    "model_from_dict",
    "model_from_json",
    "model_to_dict",
    "model_to_json",
    "parameter_table",
    "render_parameter_table",
    "render_review",
    "review_dict",
    "run_checks",
    "sin",
    "sqrt",
    "tanh",
]
