"""What the SGNN reads off its embedding: one :class:`Head` per output, in one registry.

A head is everything one output of the network needs, in one class: the module on the
pooled embedding (``build``, ``forward``), the arrays it learns from, cut from each corpus
draw (``targets``), its term of the loss (``loss``) and any held-out metrics
(``metrics``), how a prediction reads it (``decode``), its part of the calibration
report (``calibrate``), and what it answers for the counterfactuals
(``structure_probabilities``, ``parameter_quantiles``). The network, the corpus, the
trainer, the Ray shards, the predictor, the calibration and the counterfactuals loop over
the configured heads (``SGNNConfig.heads``, names mapped to loss weights) and know none
by name, so a new head is one module that subclasses :class:`Head` and calls
:func:`register_head`; a plugin (``MMW_PLUGINS``, see :mod:`mechanistic.plugins`) can do
it from outside mmw.

The built-in heads are ``forecast`` (quantiles of the future of every observable),
``params`` (posterior quantiles of every structure's parameters, unconstrained) and
``structure`` (logits over the corpus's structures). ``docs/architecture.md`` ("SGNN
head") says what a head may import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sgnn.layers import Monotone, from_scaled, pinball_loss, slog

if TYPE_CHECKING:
    from sgnn.corpus import Batch, Corpus
    from sgnn.network import SGNN, SGNNConfig

__all__ = ["DEFAULT_HEADS", "HEADS", "Draw", "ForecastHead", "Head", "ParamsHead",
           "StructureHead", "head_names", "make_head", "register_head"]


@dataclass(frozen=True)
class Draw:
    """Windows of one structure just simulated, before they become inputs and targets.

    What a head's :meth:`Head.targets` may read. ``m`` windows of ``L = n_context +
    horizon`` points; reported series are the corpus's observables in order. Targets are
    computed after every random number of the draw is taken (a head draws none), so the
    corpus's stream, and every other array, do not depend on which heads are configured.
    """

    structure: int                      # index of the structure in the corpus
    theta: np.ndarray                   # [m, P] every structure's parameters, unconstrained,
                                        # NaN outside this one's
    params: Mapping[str, np.ndarray]    # this structure's free parameters, natural, [m] each
    values: np.ndarray                  # [m, L, O] reported values (noise; missing hold 0)
    observed: np.ndarray                # [m, L, O] bool: present (not missing, finite)
    clean: np.ndarray                   # [m, L, O] expected reported values, before noise
    latent: np.ndarray                  # [m, grid, O] the simulator's observables, whole grid
    n_context: int                      # the forecast origin: values[:, n_context:] is ahead
    context_len: np.ndarray             # [m] points of context the network sees
    delay: np.ndarray                   # [m] reporting delay in steps


class Head:
    """One output of the SGNN. Subclass, set ``name``, implement ``build`` and ``loss``.

    Class attributes: ``name`` (the loss term, the key in ``SGNNConfig.heads`` and in
    ``Prediction.heads``); ``output`` (the key in ``SGNN.forward``'s dict, default
    ``name``); ``attribute`` (the network's attribute for the module, hence the prefix of
    its weights in ``weights.safetensors``; default ``<name>_head``); ``default_weight``
    (its loss weight when a config lists it by name only); ``arrays`` (the names of the
    arrays ``targets`` returns, read back as ``batch.targets[name]``).

    Optional methods: ``forward``, ``targets``, ``metrics``, ``decode``, ``calibrate``;
    and the answers other parts ask any head for, ``structure_probabilities`` and
    ``parameter_quantiles`` (``None`` from a head that does not give them).
    """

    name: ClassVar[str] = ""
    output: ClassVar[str] = ""
    attribute: ClassVar[str] = ""
    default_weight: ClassVar[float] = 1.0
    arrays: ClassVar[tuple[str, ...]] = ()

    @property
    def key(self) -> str:
        """The head's key in the network's output dict."""
        return self.output or self.name

    @property
    def module_name(self) -> str:
        """The network's attribute holding this head's module."""
        return self.attribute or f"{self.name}_head"

    def build(self, config: SGNNConfig) -> nn.Module:
        """The module on the pooled embedding ``[B, config.d_model]``."""
        raise NotImplementedError(f"head {self.name!r} does not implement build")

    def forward(self, module: nn.Module, embedding: torch.Tensor, centre: torch.Tensor,
                config: SGNNConfig) -> torch.Tensor:
        """The output for a batch; ``centre [B, O]`` is each series' level (slog scale)."""
        return module(embedding)

    def targets(self, draw: Draw) -> dict[str, np.ndarray]:
        """The arrays named in ``arrays`` for a draw's ``m`` windows (first axis ``m``).
        Floating arrays reach the batch as float32, integer and boolean ones unchanged."""
        return {}

    def loss(self, output: torch.Tensor, batch: Batch, net: SGNN) -> torch.Tensor:
        """This head's loss on a batch, a scalar; ``net`` gives the config and quantiles."""
        raise NotImplementedError(f"head {self.name!r} does not implement loss")

    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Held-out metrics as *sums over the batch's rows* (training divides by the
        number of windows), e.g. a count of correct answers."""
        return {}

    def decode(self, output: torch.Tensor, corpus: Corpus, config: SGNNConfig) -> Any:
        """One series' output (the batch axis dropped) as JSON-ready data for predictions."""
        return output.tolist()

    def calibrate(self, output: torch.Tensor, batch: Batch, config: SGNNConfig,
                  corpus: Corpus) -> dict[str, Any]:
        """This head's entries in the calibration report on held-out simulations
        (:func:`sgnn.diagnostics.calibration`): how far its answers can be trusted.
        None by default."""
        return {}

    # What other parts read off a head by what it answers, not by its name: the SGNN's
    # counterfactuals (sgnn/counterfactual.py) draw structures and parameters from the
    # first configured head that gives each. ``None``: this head does not answer that.
    def structure_probabilities(self, output: torch.Tensor) -> np.ndarray | None:
        """One series' probability of each of the corpus's structures, ``[K]`` float64."""
        return None

    def parameter_quantiles(self, output: torch.Tensor) -> np.ndarray | None:
        """One series' posterior quantiles of every structure's parameters side by side,
        in each one's unconstrained space, ``[P, Q]`` float64 (``corpus.offsets`` slice
        them per structure; ``config.quantiles`` are the levels)."""
        return None


class ForecastHead(Head):
    """Quantiles of the next ``horizon`` points of every observable, on the slog scale,
    relative to the series' level; learnt by pinball loss on the observed future."""

    name = "forecast"
    arrays = ("target", "target_mask")

    def build(self, config: SGNNConfig) -> nn.Module:
        return Monotone(config.d_model, config.horizon * config.n_observables,
                        len(config.quantiles))

    def forward(self, module: nn.Module, embedding: torch.Tensor, centre: torch.Tensor,
                config: SGNNConfig) -> torch.Tensor:
        forecast = module(embedding).reshape(-1, config.horizon, config.n_observables,
                                             len(config.quantiles))
        return forecast + centre[:, None, :, None]

    def targets(self, draw: Draw) -> dict[str, np.ndarray]:
        return {"target": draw.values[:, draw.n_context:],
                "target_mask": draw.observed[:, draw.n_context:].astype(np.float32)}

    def loss(self, output: torch.Tensor, batch: Batch, net: SGNN) -> torch.Tensor:
        return pinball_loss(output, slog(batch.targets["target"]), net.quantiles,
                            batch.targets["target_mask"])

    def decode(self, output: torch.Tensor, corpus: Corpus,
               config: SGNNConfig) -> dict[str, np.ndarray]:
        """Observable -> ``[H, Q]`` on the data's scale; count series floored at zero."""
        forecast = from_scaled(output).numpy()                   # [H, O, Q]
        return {o: np.maximum(forecast[:, j], 0.0) if _counts(corpus, o) else forecast[:, j]
                for j, o in enumerate(corpus.observables)}

    def calibrate(self, output: torch.Tensor, batch: Batch, config: SGNNConfig,
                  corpus: Corpus) -> dict[str, Any]:
        """How often the 50% and 90% intervals hold the noisy future points (what a
        forecast interval promises), over the observed ones."""
        target_mask = batch.targets["target_mask"]
        z = slog(batch.targets["target"])
        report: dict[str, Any] = {}
        for level in (0.5, 0.9):
            lo, hi = config.interval(level)
            inside = ((z >= output[..., lo]) & (z <= output[..., hi])).float() * target_mask
            report[f"forecast_coverage_{int(level * 100)}"] = float(
                inside.sum() / target_mask.sum())
        return report


def _counts(corpus: Corpus, observable: str) -> bool:
    """Count noise never goes below zero (the noise kind says whether it counts)."""
    return corpus.models[0].observables_[observable].noise.counts


class ParamsHead(Head):
    """Posterior quantiles of every structure's free parameters side by side, in each
    one's unconstrained space; only the sample's own structure's columns are learnt."""

    name = "params"
    attribute = "param_head"

    def build(self, config: SGNNConfig) -> nn.Module:
        return Monotone(config.d_model, max(config.n_params, 1), len(config.quantiles))

    def forward(self, module: nn.Module, embedding: torch.Tensor, centre: torch.Tensor,
                config: SGNNConfig) -> torch.Tensor:
        return module(embedding)[:, :config.n_params]

    def loss(self, output: torch.Tensor, batch: Batch, net: SGNN) -> torch.Tensor:
        if not net.config.n_params:
            return output.new_zeros(())
        known = torch.isfinite(batch.theta)
        return pinball_loss(output, torch.nan_to_num(batch.theta), net.quantiles, known.float())

    def decode(self, output: torch.Tensor, corpus: Corpus,
               config: SGNNConfig) -> dict[str, dict[str, list[float]]]:
        """Structure -> parameter -> quantiles of the natural value (the transforms are
        monotone, so quantiles map to quantiles)."""
        q = output.double()                                      # [P, Q]
        params: dict[str, dict[str, list[float]]] = {}
        for k, name in enumerate(corpus.names):
            lo = corpus.offsets[k]
            params[name] = {pname: [float(v) for v in tr.forward(q[lo + i])]
                            for i, (pname, tr) in enumerate(zip(corpus.param_names[k],
                                                                corpus.transforms[k],
                                                                strict=True))}
        return params

    def calibrate(self, output: torch.Tensor, batch: Batch, config: SGNNConfig,
                  corpus: Corpus) -> dict[str, Any]:
        """Coverage of the 50% and 90% intervals of the sample's own structure's
        parameters (unconstrained), and the median's RMSE per structure and parameter."""
        known = torch.isfinite(batch.theta)
        theta = torch.nan_to_num(batch.theta)
        report: dict[str, Any] = {}
        for level in (0.5, 0.9):
            lo, hi = config.interval(level)
            inside = ((theta >= output[..., lo]) & (theta <= output[..., hi])) & known
            report[f"param_coverage_{int(level * 100)}"] = float(inside.sum() / known.sum())
        mid = len(config.quantiles) // 2
        recovery: dict[str, dict[str, float]] = {}
        for k, name in enumerate(corpus.names):
            rows = batch.structure == k
            if not rows.any():
                continue
            entry = {}
            for i, pname in enumerate(corpus.param_names[k]):
                j = corpus.offsets[k] + i
                err = output[rows, j, mid] - batch.theta[rows, j]
                entry[pname] = float(err.pow(2).mean().sqrt())
            recovery[name] = entry
        report["param_rmse_unconstrained"] = recovery
        return report

    def parameter_quantiles(self, output: torch.Tensor) -> np.ndarray:
        return output.double().numpy()


class StructureHead(Head):
    """Logits over the corpus's structures; cross-entropy against the simulated one."""

    name = "structure"
    output = "logits"

    def build(self, config: SGNNConfig) -> nn.Module:
        return nn.Linear(config.d_model, config.n_structures)

    def loss(self, output: torch.Tensor, batch: Batch, net: SGNN) -> torch.Tensor:
        return F.cross_entropy(output, batch.structure)

    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        return {"accuracy": int((output.argmax(-1) == batch.structure).sum())}

    def decode(self, output: torch.Tensor, corpus: Corpus,
               config: SGNNConfig) -> dict[str, float]:
        """Structure -> probability."""
        probs = torch.softmax(output, -1).numpy()
        return {n: float(p) for n, p in zip(corpus.names, probs, strict=True)}

    def calibrate(self, output: torch.Tensor, batch: Batch, config: SGNNConfig,
                  corpus: Corpus) -> dict[str, Any]:
        """The share of held-out simulations whose structure is the most probable one."""
        return {"structure_accuracy": float(
            (output.argmax(-1) == batch.structure).float().mean())}

    def structure_probabilities(self, output: torch.Tensor) -> np.ndarray:
        return torch.softmax(output.double(), -1).numpy()


DEFAULT_HEADS = ("forecast", "params", "structure")
"""The heads a network has unless its config names others (and their order)."""

HEADS: dict[str, type[Head]] = {cls.name: cls for cls in (ForecastHead, ParamsHead,
                                                          StructureHead)}
"""Head classes by name; add to it with :func:`register_head`."""

_NAME = re.compile(r"[a-z][a-z0-9_]*")


def register_head(cls: type[Head], *, replace: bool = False) -> type[Head]:
    """Add a head class under its ``name`` (usable as a decorator); a taken name needs
    ``replace``. The name must be a Python identifier in lower case: it becomes a loss
    key, a history column (``val_<name>``) and, by default, a module attribute."""
    if not (isinstance(cls, type) and issubclass(cls, Head)):
        raise ValueError(f"register_head needs a Head subclass, got {cls!r}")
    if not isinstance(cls.name, str) or not _NAME.fullmatch(cls.name):
        raise ValueError(f"a head name is lower-case letters, digits and '_', starting with "
                         f"a letter; got {cls.name!r}")
    if cls.name in HEADS and not replace:
        raise ValueError(f"a head called {cls.name!r} is already registered")
    HEADS[cls.name] = cls
    return cls


def head_names() -> list[str]:
    """Every registered head, plugins' included (see :mod:`mechanistic.plugins`)."""
    from mechanistic.plugins import load_plugins

    load_plugins()
    return list(HEADS)


def make_head(name: str) -> Head:
    """The head called ``name``; ValueError naming the choices for an unknown one."""
    if name not in HEADS:
        head_names()  # a plugin may register it on import
    cls = HEADS.get(name)
    if cls is None:
        raise ValueError(f"unknown SGNN head {name!r}; choose from {', '.join(HEADS)}")
    return cls()
