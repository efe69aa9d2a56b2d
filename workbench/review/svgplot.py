"""Tiny inline SVG line plots for counterfactual tables.

Counterfactual folders hold a CSV, not a picture. Drawing it with matplotlib would cost a
second of import and a PNG per view; a hand-written SVG polyline is a few hundred bytes,
needs no script, scales with the page, and carries no data except numbers we format.
"""

from __future__ import annotations

import csv
import html
import io
import math

__all__ = ["counterfactual_series", "line_plot_svg"]

_COLORS = {"baseline": "#4c72b0", "intervened": "#dd8452"}


def counterfactual_series(text: str, limit: int = 6) -> dict[str, dict[str, list[float]]]:
    """``{name: {"t", "baseline", "intervened", bands...}}`` from a counterfactual.csv's
    text (read by the caller through the run-folder gate), for names that have both a
    baseline and an intervened column (first ``limit``); ``{}`` for an unreadable table."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error:
        return {}
    if not rows:
        return {}

    def column(name: str) -> list[float]:
        out = []
        for row in rows:
            cell = row.get(name)  # None where a row is short
            try:
                out.append(float(cell) if isinstance(cell, str) else math.nan)
            except ValueError:
                out.append(math.nan)
        return out

    fields = [f for f in reader.fieldnames or [] if isinstance(f, str)]
    names = [f.removeprefix("baseline_") for f in fields if f.startswith("baseline_")
             and "_q" not in f and f"intervened_{f.removeprefix('baseline_')}" in fields]
    series: dict[str, dict[str, list[float]]] = {}
    for name in names[:limit]:
        entry = {"t": column("t"), "baseline": column(f"baseline_{name}"),
                 "intervened": column(f"intervened_{name}")}
        for side in ("baseline", "intervened"):
            lo, hi = f"{side}_{name}_q0.05", f"{side}_{name}_q0.95"
            if lo in fields and hi in fields:
                entry[f"{side}_lo"], entry[f"{side}_hi"] = column(lo), column(hi)
        series[name] = entry
    return series


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def line_plot_svg(title: str, t: list[float], lines: dict[str, list[float]],
                  bands: dict[str, tuple[list[float], list[float]]] | None = None,
                  width: int = 420, height: int = 220) -> str:
    """An SVG with one polyline per entry of ``lines`` (colour by key) and shaded bands."""
    bands = bands or {}
    values = [v for ys in [*lines.values(), *(b for pair in bands.values() for b in pair)]
              for v in ys if math.isfinite(v)]
    times = [v for v in t if math.isfinite(v)]
    if not values or not times:
        return f'<p class="muted">{html.escape(title)}: nothing finite to plot</p>'
    x0, x1 = min(times), max(times)
    y0, y1 = min(values), max(values)
    x1 = x1 if x1 > x0 else x0 + 1.0
    y1 = y1 if y1 > y0 else y0 + 1.0
    left, right, top, bottom = 52, 10, 22, 28
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1.0 - (y - y0) / (y1 - y0)) * ph

    def points(ys: list[float]) -> str:
        return " ".join(f"{_fmt(px(x))},{_fmt(py(y))}" for x, y in zip(t, ys, strict=False)
                        if math.isfinite(x) and math.isfinite(y))

    parts = [f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{html.escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{left}" y="14" font-size="12">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
             f'stroke="#bbb"/>']
    for key, (lo, hi) in bands.items():
        upper = [(x, y) for x, y in zip(t, hi, strict=False) if math.isfinite(x + y)]
        lower = [(x, y) for x, y in zip(t, lo, strict=False) if math.isfinite(x + y)]
        poly = " ".join(f"{_fmt(px(x))},{_fmt(py(y))}" for x, y in [*upper, *lower[::-1]])
        parts.append(f'<polygon points="{poly}" fill="{_COLORS.get(key, "#999")}" '
                     f'fill-opacity="0.15" stroke="none"/>')
    for i, (key, ys) in enumerate(lines.items()):
        color = _COLORS.get(key, "#555")
        parts.append(f'<polyline points="{points(ys)}" fill="none" stroke="{color}" '
                     f'stroke-width="1.6"/>')
        parts.append(f'<text x="{left + 8 + 110 * i}" y="{top + 14}" font-size="11" '
                     f'fill="{color}">{html.escape(key)}</text>')
    for value, y in ((y1, top + 4), (y0, top + ph)):
        parts.append(f'<text x="{left - 4}" y="{y}" font-size="10" text-anchor="end">'
                     f'{value:.4g}</text>')
    for value, anchor in ((x0, "start"), (x1, "end")):
        parts.append(f'<text x="{_fmt(px(value))}" y="{height - 10}" font-size="10" '
                     f'text-anchor="{anchor}">{value:.4g}</text>')
    parts.append("</svg>")
    return "".join(parts)
