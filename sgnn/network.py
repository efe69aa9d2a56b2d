"""The SGNN: a small time-series encoder with three heads.

Inputs are the observed channels on a signed-log scale, centred per series, plus their
missing-value masks: counts span orders of magnitude between outbreaks, and a network
that sees raw counts would spend its capacity on scale. The centre itself is fed to the
heads, because absolute level carries information (the reporting fraction, the size of
the population reached). A 1-d convolution picks up local shape (weekday wiggles, the
curvature of growth), a transformer encoder relates distant points (the peak against the
onset). Heads: forecast quantiles (pinball loss), parameter posterior quantiles in each
structure's unconstrained space, and structure logits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SGNN", "SGNNConfig", "from_scaled", "pinball_loss", "scale_inputs", "slog"]


@dataclass(frozen=True)
class SGNNConfig:
    """Shape of the network; the corpus fixes the first five fields."""

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
    weight_forecast: float = 1.0
    weight_params: float = 1.0
    weight_structure: float = 1.0

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


def slog(x: torch.Tensor) -> torch.Tensor:
    """Signed log1p: counts become additive-scale, negatives stay allowed."""
    return torch.sign(x) * torch.log1p(x.abs())


def from_scaled(z: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`slog` (monotone, so quantiles map to quantiles)."""
    return torch.sign(z) * torch.expm1(z.abs())


def scale_inputs(context: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-series centre (masked mean of slog values, ``[B, O]``) and centred values."""
    z = slog(context) * mask
    count = mask.sum(dim=1).clamp_min(1.0)
    centre = z.sum(dim=1) / count
    return (z - centre[:, None, :]) * mask, centre


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean pinball (quantile) loss; ``pred [..., Q]``, ``target [...]``, mask over target.

    Minimised by the true quantiles, so the heads learn calibrated intervals, not means.
    """
    diff = target.unsqueeze(-1) - pred
    loss = torch.maximum(quantiles * diff, (quantiles - 1) * diff)
    if mask is None:
        return loss.mean()
    weight = mask.unsqueeze(-1).expand_as(loss)
    return (loss * weight).sum() / weight.sum().clamp_min(1.0)


class _Monotone(nn.Module):
    """Linear head giving ``n`` monotone quantile vectors: a median plus softplus gaps."""

    def __init__(self, d: int, n: int, q: int) -> None:
        super().__init__()
        self.n, self.q = n, q
        self.linear = nn.Linear(d, n * q)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        raw = self.linear(h).reshape(h.shape[0], self.n, self.q)
        mid = self.q // 2
        centre = raw[..., mid:mid + 1]
        up = torch.cumsum(F.softplus(raw[..., mid + 1:]), dim=-1)
        down = torch.flip(torch.cumsum(torch.flip(F.softplus(raw[..., :mid]), [-1]), -1), [-1])
        return torch.cat([centre - down, centre, centre + up], dim=-1)


class SGNN(nn.Module):
    """Encoder + heads; ``forward`` returns forecast, parameter and structure outputs."""

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
        nq = len(c.quantiles)
        self.forecast_head = _Monotone(d, c.horizon * o, nq)
        self.param_head = _Monotone(d, max(c.n_params, 1), nq)
        self.structure_head = nn.Linear(d, c.n_structures)
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
        """``forecast [B, H, O, Q]`` on the slog scale, ``params [B, P, Q]``, ``logits``."""
        c = self.config
        emb, centre = self.encode(context, mask)
        forecast = self.forecast_head(emb).reshape(-1, c.horizon, c.n_observables,
                                                   len(c.quantiles))
        forecast = forecast + centre[:, None, :, None]
        return {"forecast": forecast, "params": self.param_head(emb)[:, :c.n_params],
                "logits": self.structure_head(emb), "embedding": emb}

    def loss(self, out: Mapping[str, torch.Tensor], target: torch.Tensor,
             target_mask: torch.Tensor, theta: torch.Tensor, structure: torch.Tensor
             ) -> dict[str, torch.Tensor]:
        """The three losses and their weighted total."""
        c = self.config
        f = pinball_loss(out["forecast"], slog(target), self.quantiles, target_mask)
        known = torch.isfinite(theta)
        p = pinball_loss(out["params"], torch.nan_to_num(theta), self.quantiles,
                         known.float()) if c.n_params else f * 0
        s = F.cross_entropy(out["logits"], structure)
        total = c.weight_forecast * f + c.weight_params * p + c.weight_structure * s
        return {"total": total, "forecast": f, "params": p, "structure": s}
