"""Apply a trained SGNN to real observations: forecasts, parameter posteriors, structures.

How observations are fitted to what the network was trained on (documented behaviour,
each case either handled or a one-line error):

* times must sit on the corpus grid spacing ``dt`` (rows may be absent: absent rows and
  empty cells become missing points under the mask, as in training);
* a series longer than the trained context keeps its last ``n_context`` points; one with
  fewer than ``min_context`` grid points is an error (the network never saw so little);
* a data column the corpus lacks is an error naming the known observables; a corpus
  observable absent from the data is treated as entirely missing, but at least one must
  be present;
* a context window (the last ``n_context`` grid points) with no observed value at all is
  an error: the network would be guessing from nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mechanistic.data import ObservedData
from mechanistic.errors import DataError
from mechanistic.files import json_data
from sgnn.train import Checkpoint

__all__ = ["Prediction", "predict", "prepare"]


@dataclass
class Prediction:
    """Forecast quantiles per observable, structure probabilities, parameter quantiles.

    Parameter quantiles are read in each structure's unconstrained space and mapped back
    through its (monotone) transform, so they are quantiles of the natural parameter.
    Each field is what its head decodes (:meth:`sgnn.heads.Head.decode`), empty when the
    network lacks that head; other heads' decoded outputs are in ``heads``, by name.
    """

    times: np.ndarray
    quantiles: tuple[float, ...]
    forecast: dict[str, np.ndarray]                 # observable -> [H, Q]
    structures: dict[str, float]                    # name -> probability
    params: dict[str, dict[str, list[float]]]       # structure -> parameter -> quantiles
    notes: list[str] = field(default_factory=list)
    heads: dict[str, Any] = field(default_factory=dict)   # other heads' decoded outputs

    def to_dict(self) -> dict[str, Any]:
        out = {"times": self.times.tolist(), "quantiles": list(self.quantiles),
               "forecast": {k: v.tolist() for k, v in self.forecast.items()},
               "structures": self.structures, "params": self.params, "notes": self.notes}
        if self.heads:
            out["heads"] = json_data(self.heads)
        return out

    def frame(self) -> Any:
        """Forecast as a table: t, then ``<observable>_q<level>`` columns."""
        import pandas as pd

        data: dict[str, Any] = {"t": self.times}
        for name, values in self.forecast.items():
            for j, q in enumerate(self.quantiles):
                data[f"{name}_q{q:g}"] = values[:, j]
        return pd.DataFrame(data)


def prepare(checkpoint: Checkpoint, data: ObservedData
            ) -> tuple[torch.Tensor, torch.Tensor, float, list[str]]:
    """Context ``[1, C, O]``, mask, the last grid time, and notes on what was adapted."""
    corpus = checkpoint.corpus
    cfg = corpus.config
    where = data.source or "data"
    unknown = [c for c in data.columns if c not in corpus.observables]
    if unknown:
        raise DataError(f"{where}: column(s) {unknown} are not in the SGNN's corpus (it was "
                        f"trained on {corpus.observables}); drop or rename them")
    present = [o for o in corpus.observables if o in data.columns]
    if not present:  # pragma: no cover - ObservedData always has a column, caught above
        raise DataError(f"{where}: none of {corpus.observables} is in the data")
    notes = [f"observable {o!r} absent from the data: treated as missing"
             for o in corpus.observables if o not in present]
    steps = (data.t - data.t[0]) / cfg.dt
    index = np.rint(steps).astype(int)
    if not np.allclose(steps, index, atol=1e-6):
        raise DataError(f"{where}: times are not on the trained spacing dt={cfg.dt:g} "
                        f"(the SGNN was trained on a regular grid); resample the data")
    n = int(index[-1]) + 1
    grid = np.full((n, len(corpus.observables)), np.nan)
    for j, name in enumerate(corpus.observables):
        if name in data.values:
            grid[index, j] = data.values[name]
    if n < cfg.min_context:
        raise DataError(f"{where}: {n} time points; the SGNN needs at least {cfg.min_context} "
                        f"(its shortest training context)")
    if n > cfg.n_context:
        notes.append(f"{n} time points: using the last {cfg.n_context} (the trained context)")
        grid = grid[-cfg.n_context:]
    if np.isnan(grid).any():
        notes.append(f"{int(np.isnan(grid).sum())} missing value(s) masked")
    if np.isnan(grid).all():
        raise DataError(f"{where}: every value in the context window is missing")
    context = np.zeros((1, cfg.n_context, len(corpus.observables)))
    mask = np.zeros_like(context)
    m = grid.shape[0]
    observed = ~np.isnan(grid)
    context[0, -m:] = np.where(observed, grid, 0.0)
    mask[0, -m:] = observed
    last = float(data.t[0] + (n - 1) * cfg.dt)
    return (torch.as_tensor(context, dtype=torch.float32),
            torch.as_tensor(mask, dtype=torch.float32), last, notes)


_FIELDS = {"forecast": "forecast", "structure": "structures", "params": "params"}
"""The built-in heads whose decoded outputs are named fields of :class:`Prediction`."""


def predict(checkpoint: Checkpoint, data: ObservedData) -> Prediction:
    """One forward pass; no simulation, so it takes milliseconds."""
    context, mask, last, notes = prepare(checkpoint, data)
    net, corpus = checkpoint.network, checkpoint.corpus
    with torch.no_grad():
        out = net(context, mask)
    decoded = {head.name: head.decode(out[head.key][0], corpus, net.config)
               for head in net.heads}
    fields = {_FIELDS[name]: decoded.pop(name) for name in list(decoded) if name in _FIELDS}
    cfg = corpus.config
    times = last + cfg.dt * np.arange(1, cfg.horizon + 1)
    return Prediction(times, net.config.quantiles, fields.get("forecast", {}),
                      fields.get("structures", {}), fields.get("params", {}), notes,
                      heads=decoded)


def describe(prediction: Prediction) -> str:
    """A few lines for a terminal."""
    lines = []
    mid = len(prediction.quantiles) // 2
    if prediction.structures:
        best = max(prediction.structures, key=prediction.structures.get)
        lines.append(f"structure: {best} (p={prediction.structures[best]:.2f})")
        for name, values in prediction.params.get(best, {}).items():
            lo, hi = values[0], values[-1]
            lines.append(f"  {name}: {values[mid]:.4g} [{lo:.4g}, {hi:.4g}]")
    for name, values in prediction.forecast.items():
        lines.append(f"forecast {name}: median at t={prediction.times[-1]:g} is "
                     f"{values[-1, mid]:.4g}" if math.isfinite(values[-1, mid]) else name)
    for name, value in prediction.heads.items():
        lines.append(f"{name}: {str(json_data(value))[:200]}")
    return "\n".join(lines)
