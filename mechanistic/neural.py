"""Neural terms: small MLPs used inside a model's expressions (neural-integrated models).

A neural term starts as exactly zero (its last layer is zero-initialised), so a hybrid
model begins as its mechanistic skeleton and the network only learns what the mechanism
misses. Inputs and output are scaled by fixed buffers, because states may be in the
millions while an MLP wants inputs of order one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mechanistic.model import Model, NeuralTerm

__all__ = ["NeuralNet", "build_neural_modules"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "sigmoid": nn.Sigmoid,
}


class NeuralNet(nn.Module):
    """``out_scale * MLP(inputs / in_scale)``, a scalar function of its inputs."""

    def __init__(self, term: NeuralTerm, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        sizes = [len(term.inputs), *term.hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b, dtype=dtype), _ACTIVATIONS[term.activation]()]
        last = nn.Linear(sizes[-1], 1, dtype=dtype)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*layers, last)
        self.register_buffer("in_scale", torch.ones(len(term.inputs), dtype=dtype))
        self.register_buffer("out_scale", torch.ones((), dtype=dtype))

    def set_scales(self, in_scale: Sequence[float], out_scale: float) -> None:
        """Fix the typical magnitude of the inputs and of the term (from data or a fit)."""
        with torch.no_grad():
            self.in_scale.copy_(torch.as_tensor(in_scale, dtype=self.in_scale.dtype)
                                .clamp_min(1e-12))
            self.out_scale.fill_(max(float(out_scale), 1e-12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_scale * self.mlp(x / self.in_scale).squeeze(-1)


def build_neural_modules(
    model: Model, seed: int = 0, dtype: torch.dtype = torch.float64,
    scales: Mapping[str, tuple[Sequence[float], float]] | None = None,
) -> nn.ModuleDict:
    """One :class:`NeuralNet` per declared neural term, initialised from ``seed``."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        modules = nn.ModuleDict({name: NeuralNet(term, dtype) for name, term in
                                 model.neural_.items()})
    finally:
        torch.random.set_rng_state(generator_state)
    for name, (in_scale, out_scale) in (scales or {}).items():
        modules[name].set_scales(in_scale, out_scale)  # type: ignore[operator]
    return modules
