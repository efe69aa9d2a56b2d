"""The SGNN: a small time-series encoder with heads on its pooled embedding.

Inputs are the observed channels on a signed-log scale, centred per series, plus their
missing-value masks: counts span orders of magnitude between outbreaks, and a network
that sees raw counts would spend its capacity on scale. The centre itself is fed to the
heads, because absolute level carries information (the reporting fraction, the size of
the population reached). A 1-d convolution picks up local shape (weekday wiggles, the
curvature of growth), a transformer encoder relates distant points (the peak against the
onset). The heads are :mod:`sgnn.heads` (by default forecast quantiles, parameter
posterior quantiles in each structure's unconstrained space, and structure logits); the
network builds, applies and weighs the ones its config names and knows none by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sgnn.heads import DEFAULT_HEADS, Head, make_head
from sgnn.layers import from_scaled, pinball_loss, scale_inputs, slog

if TYPE_CHECKING:
    from sgnn.corpus import Batch

__all__ = ["SGNN", "SGNNConfig", "from_scaled", "pinball_loss", "scale_inputs", "slog"]

_LEGACY_WEIGHTS = ("weight_forecast", "weight_params", "weight_structure")
"""Loss weights of checkpoints written before heads had an interface (one per built-in)."""


def _default_heads() -> dict[str, float]:
    return {name: make_head(name).default_weight for name in DEFAULT_HEADS}


@dataclass(frozen=True)
class SGNNConfig:
    """Shape of the network; the corpus fixes the first five fields.

    ``n_heads`` is the transformer's attention heads; ``heads`` the outputs
    (:mod:`sgnn.heads`), by name, each mapped to its weight in the loss, in the order
    they are built (which fixes the weights' initialisation). A sequence of names takes
    each head's ``default_weight``.
    """

    n_context: int
    horizon: int
    n_observables: int
    n_structures: int
    n_params: int
    quantiles: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    kernel: int = 5
    dropout: float = 0.0
    heads: Mapping[str, float] = field(default_factory=_default_heads)

    def __post_init__(self) -> None:
        for name in ("n_context", "horizon", "n_observables", "n_structures", "d_model",
                     "n_heads", "n_layers", "kernel"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"SGNNConfig.{name} must be an integer >= 1, "
                                 f"got {getattr(self, name)!r}")
        if not isinstance(self.n_params, int) or self.n_params < 0:
            raise ValueError("SGNNConfig.n_params must be an integer >= 0")
        if self.d_model % self.n_heads:
            raise ValueError(f"SGNNConfig.d_model={self.d_model} must be divisible by "
                             f"n_heads={self.n_heads}")
        q = tuple(float(x) for x in self.quantiles)
        if not q or any(not 0 < x < 1 for x in q) or list(q) != sorted(set(q)):
            raise ValueError(f"SGNNConfig.quantiles must be increasing values in (0, 1), "
                             f"got {self.quantiles!r}")
        object.__setattr__(self, "quantiles", q)
        if not 0 <= self.dropout < 1:
            raise ValueError("SGNNConfig.dropout must be in [0, 1)")
        object.__setattr__(self, "heads", _head_weights(self.heads))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["quantiles"] = list(self.quantiles)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SGNNConfig:
        known = set(cls.__dataclass_fields__)
        args = {k: v for k, v in data.items() if k in known}
        if "quantiles" in args:
            args["quantiles"] = tuple(args["quantiles"])
        if "heads" not in args and any(k in data for k in _LEGACY_WEIGHTS):
            args["heads"] = {k[len("weight_"):]: data.get(k, 1.0) for k in _LEGACY_WEIGHTS}
        return cls(**args)

    def interval(self, level: float) -> tuple[int, int]:
        """Indices of the quantiles bounding the central ``level`` interval."""
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        qs = self.quantiles
        for i, a in enumerate(qs):
            for j, b in enumerate(qs):
                if math.isclose(a, lo, abs_tol=1e-9) and math.isclose(b, hi, abs_tol=1e-9):
                    return i, j
        raise ValueError(f"the network has no {level:.0%} interval among quantiles {qs}")


def _head_weights(heads: Mapping[str, float] | Sequence[str]) -> dict[str, float]:
    """``SGNNConfig.heads`` checked: registered names, finite weights >= 0, distinct
    output keys and module attributes."""
    if isinstance(heads, str) or not isinstance(heads, Mapping | Sequence):
        raise ValueError(f"SGNNConfig.heads must map head names to loss weights, "
                         f"got {heads!r}")
    if not isinstance(heads, Mapping):
        heads = {name: make_head(name).default_weight for name in heads}
    if not heads:
        raise ValueError("SGNNConfig.heads: a network needs at least one head")
    out: dict[str, float] = {}
    keys, modules = {"embedding"}, set(_ENCODER_PARTS)
    for name, weight in heads.items():
        head = make_head(name)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
                math.isfinite(weight) and weight >= 0):
            raise ValueError(f"SGNNConfig.heads[{name!r}]: a loss weight is a number >= 0, "
                             f"got {weight!r}")
        if head.key in keys or head.module_name in modules:
            raise ValueError(f"SGNNConfig.heads: head {name!r} (output {head.key!r}, module "
                             f"{head.module_name!r}) clashes with another part")
        keys.add(head.key)
        modules.add(head.module_name)
        out[name] = float(weight)
    return out


_ENCODER_PARTS = ("conv", "position", "encoder", "pool", "quantiles", "config", "heads")
"""Attribute names of the network itself, which no head module may take."""


class SGNN(nn.Module):
    """Encoder + the configured heads; ``forward`` returns each head's output by key."""

    def __init__(self, config: SGNNConfig) -> None:
        super().__init__()
        self.config = config
        c, d, o = config, config.d_model, config.n_observables
        self.conv = nn.Sequential(
            nn.Conv1d(2 * o, d, c.kernel, padding=c.kernel // 2), nn.GELU(),
            nn.Conv1d(d, d, c.kernel, padding=c.kernel // 2), nn.GELU())
        self.position = nn.Parameter(torch.zeros(1, c.n_context, d))
        layer = nn.TransformerEncoderLayer(d, c.n_heads, 2 * d, c.dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.n_layers, enable_nested_tensor=False)
        self.pool = nn.Sequential(nn.Linear(2 * d + 2 * o + 1, d), nn.GELU(), nn.Linear(d, d))
        self.heads: list[Head] = [make_head(name) for name in c.heads]
        for head in self.heads:  # in config order: the order fixes the initialisation
            if hasattr(self, head.module_name):
                raise ValueError(f"head {head.name!r}: the network already has an attribute "
                                 f"{head.module_name!r}; give the head another `attribute`")
            self.add_module(head.module_name, head.build(c))
        self.register_buffer("quantiles", torch.tensor(c.quantiles), persistent=False)

    def encode(self, context: torch.Tensor, mask: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding ``[B, d]`` (used by attribution) and the per-series centre ``[B, O]``."""
        z, centre = scale_inputs(context, mask)
        x = torch.cat([z, mask], dim=-1).transpose(1, 2)         # [B, 2O, C]
        h = self.conv(x).transpose(1, 2) + self.position         # [B, C, d]
        present = mask.amax(dim=-1) > 0                          # [B, C]
        pad = torch.cumsum(present.int(), dim=1) == 0             # before the first point
        pad[:, -1] = False                                       # never mask every step
        h = self.encoder(h, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        mean = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        frac = mask.mean(dim=1)
        length = keep.mean(dim=1)
        feats = torch.cat([mean, h[:, -1], centre / 5.0, frac, length], dim=-1)
        return self.pool(feats), centre

    def forward(self, context: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each head's output under its key (built-ins: ``forecast [B, H, O, Q]`` on the
        slog scale, ``params [B, P, Q]``, ``logits [B, K]``), plus ``embedding``."""
        emb, centre = self.encode(context, mask)
        out = {head.key: head.forward(getattr(self, head.module_name), emb, centre,
                                      self.config) for head in self.heads}
        out["embedding"] = emb
        return out

    def loss(self, out: Mapping[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        """Every head's loss by name and their weighted sum, ``total`` (first)."""
        terms = {head.name: head.loss(out[head.key], batch, self) for head in self.heads}
        total: torch.Tensor | None = None
        for name, weight in self.config.heads.items():
            term = weight * terms[name]
            total = term if total is None else total + term
        assert total is not None  # SGNNConfig refuses a network without heads
        return {"total": total, **terms}
