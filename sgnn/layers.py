"""The scales and quantile pieces the SGNN's encoder and its heads share.

Kept apart from :mod:`sgnn.network` (the encoder) and :mod:`sgnn.heads` (what is read
off it) so that both import them without importing each other: a head module needs the
signed-log scale and the pinball loss, never the encoder.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Monotone", "from_scaled", "pinball_loss", "scale_inputs", "slog"]


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


class Monotone(nn.Module):
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
