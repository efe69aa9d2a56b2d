"""A plugin from outside the mmw packages: an SGNN head, registered on import.

The ``peak`` head reads, off the network's embedding, how high the first observable's
expected reported value gets over the whole window (context and horizon), on the signed
log scale: a target no built-in head has, cut from each corpus draw. It imports only
``sgnn.heads``, ``sgnn.layers`` and torch, what docs/architecture.md allows a head. The
tests name it in ``MMW_PLUGINS`` and train, calibrate and predict with it through
``mmw sgnn``.
"""

from __future__ import annotations

import numpy as np
from torch import nn
from torch.nn import functional as F

from sgnn.heads import Head, register_head
from sgnn.layers import from_scaled


class PeakHead(Head):
    """The window's peak expected report of the first observable (slog scale)."""

    name = "peak"
    default_weight = 0.5
    arrays = ("peak",)

    def build(self, config):
        return nn.Linear(config.d_model, 1)

    def forward(self, module, embedding, centre, config):
        return module(embedding)[:, 0] + centre[:, 0]     # relative to the series' level

    def targets(self, draw):
        peak = draw.clean[:, :, 0].max(axis=1)
        return {"peak": np.sign(peak) * np.log1p(np.abs(peak))}

    def loss(self, output, batch, net):
        return F.mse_loss(output, batch.targets["peak"])

    def metrics(self, output, batch):
        return {"peak_abs_error": float((output - batch.targets["peak"]).abs().sum())}

    def decode(self, output, corpus, config):
        return {"observable": corpus.observables[0], "peak": float(from_scaled(output))}

    def calibrate(self, output, batch, config, corpus):
        error = output - batch.targets["peak"]
        return {"peak_rmse_slog": float(error.pow(2).mean().sqrt())}


register_head(PeakHead, replace=True)
