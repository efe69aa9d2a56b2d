"""Figures for the command line: data against fitted observables, simulated trajectories.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, never
through ``pyplot``: no global backend is switched, no window can open on a headless
machine, and nothing happens at import time (matplotlib itself is imported inside the
functions so that ``mmw --help`` stays fast).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["plot_fit", "plot_trajectories"]


def _figure(rows: int, width: float = 8.0, height_per_row: float = 2.6) -> object:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, max(2.8, height_per_row * rows + 0.6)), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_fit(
    path: str | Path,
    data_t: np.ndarray,
    data: Mapping[str, np.ndarray],
    fit_t: np.ndarray,
    fitted: Mapping[str, np.ndarray],
    *,
    train_until: float | None = None,
    validation: Mapping[str, float] | None = None,
    title: str = "",
    time_label: str = "t",
) -> Path:
    """One panel per observable: data points, fitted curve, the train/validation split.

    ``validation`` maps an observable to its validation error (shown in the panel title),
    so a reader sees at a glance how well the forecast window is matched.
    """
    names = [n for n in fitted if n in data] or list(fitted)
    fig = _figure(len(names))
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, names, strict=True):
        if name in data:
            y = np.asarray(data[name], dtype=float)
            x = np.asarray(data_t, dtype=float)
            train = np.ones_like(x, dtype=bool) if train_until is None else x <= train_until
            ax.plot(x[train], y[train], "o", ms=3.5, color="C0", label="data (train)")
            if (~train).any():
                ax.plot(x[~train], y[~train], "o", ms=3.5, mfc="none", color="C1",
                        label="data (validation)")
        ax.plot(fit_t, fitted[name], "-", lw=1.6, color="C3", label="fitted model")
        if train_until is not None:
            ax.axvline(train_until, color="0.4", ls="--", lw=1, label="train | validation")
        label = name
        if validation and name in validation and np.isfinite(validation[name]):
            label += f"   (validation RMSE {validation[name]:.3g})"
        ax.set_title(label, loc="left", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right", ncol=2)
    axes[-1].set_xlabel(time_label)
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def plot_trajectories(
    path: str | Path,
    t: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    title: str = "",
    time_label: str = "t",
) -> Path:
    """All series of one simulation on a shared time axis (states and observables)."""
    fig = _figure(1, height_per_row=3.6)
    ax = fig.subplots()
    for name, values in series.items():
        ax.plot(t, values, lw=1.5, label=name)
    ax.set_xlabel(time_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=11)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
