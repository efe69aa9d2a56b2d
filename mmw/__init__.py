"""mmw for notebooks: the model language and the workbench's jobs as Python calls.

``import mmw`` gives the model language (``mmw.Model``, priors, noise kinds, the sympy
functions a model may use) and the calls that mirror the command line, returning pandas
objects and rendering in Jupyter::

    import mmw
    m = mmw.load_model("examples/models/hare_lynx.py")     # mmw show
    fit = mmw.fit(m, "examples/data/hare_lynx.csv", train_until=1915)   # mmw fit
    run = mmw.model("hare and lynx", "data.csv", out="run")  # mmw model
    run = mmw.load_run("run")
    run.forecast(until=1940)                                 # mmw predict
    run.counterfactual([{"kind": "scale", "target": "beta", "factor": 0.5}])

Importing this package runs nothing and loads no torch; the heavy parts are imported by
the calls that need them (mmw/api.py).
"""

from mechanistic import (
    Fixed,
    Gaussian,
    HalfNormal,
    Heaviside,
    LogNormal,
    LogNormalNoise,
    LogUniform,
    Max,
    Min,
    Model,
    ModelError,
    NegBinomial,
    Normal,
    Piecewise,
    Poisson,
    PropAdd,
    Uniform,
    cos,
    exp,
    log,
    sin,
    sqrt,
    tanh,
)
from mmw.api import (
    Fit,
    Run,
    counterfactual,
    fit,
    forecast,
    from_sbml,
    load_data,
    load_model,
    load_run,
    model,
    to_antimony,
    to_sbml,
)

__all__ = [
    "Fit",
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
    "Normal",
    "Piecewise",
    "Poisson",
    "PropAdd",
    "Run",
    "Uniform",
    "cos",
    "counterfactual",
    "exp",
    "fit",
    "forecast",
    "from_sbml",
    "load_data",
    "load_model",
    "load_run",
    "log",
    "model",
    "sin",
    "sqrt",
    "tanh",
    "to_antimony",
    "to_sbml",
]
