"""``mmw bench report DIR``: the benchmark as one self-contained HTML file.

Like the review report (workbench/review/report.py) the file is mailed and archived, so
it stands alone: inline CSS, PNG plots as ``data:`` URIs (matplotlib's Agg canvas, no
pyplot state), a ``<meta>`` Content-Security-Policy that forbids scripts and fetches, and
no script at all. Every string that came from a task or a result (names, descriptions,
questions, failure reasons) goes through ``esc``.

Per task it shows the data with the train / validation / test windows shaded, the
noise-free truth and each agent's forecast; per counterfactual question the true
intervened trajectory against each agent's answer. The y-axis spans the data and truth
with half their range to spare: a runaway forecast leaves the panel rather than squash
the others. Plots use the lowest seed that has
series; the tables cover every seed.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evals.bench_files import SUMMARY, read_bench_json, read_manifest, read_results_checked
from evals.leaderboard import (
    COMPACT,
    METRIC_BY_KEY,
    METRICS,
    STATUSES,
    cell_text,
    write_leaderboard,
)
from mechanistic.files import write_atomic
from mechanistic.report_html import REPORT_CSP, esc, review_css

__all__ = ["render_report", "write_report"]

MAX_PANELS = 6
_STYLE = """
.legend { color: #555; font-size: 0.9em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
span.ci { color: #666; font-size: 0.8em; }
div.scroll { overflow-x: auto; max-width: 100%; }
img.plot { max-width: 100%; height: auto; }
"""


def _mpl_text(value: Any) -> str:
    """Text safe for matplotlib: no mathtext from '$', no legend-hiding leading '_'."""
    return str(value).replace("$", r"\$").lstrip("_")[:80] or "?"


# --------------------------------------------------------------------------- plots
def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _figure(panels: int) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 0.8 + 2.3 * panels), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]


def _arr(values: Any, n: int) -> np.ndarray | None:
    if not isinstance(values, list) or len(values) != n:
        return None
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _frame(ax: Any, reference: Sequence[np.ndarray | None]) -> None:
    """Y-limits from the data and truth (with room to spare), so one agent's runaway
    forecast does not flatten everyone else's curves; lines beyond are cut at the edge."""
    values = np.concatenate([r[np.isfinite(r)] for r in reference if r is not None] or
                            [np.array([])])
    if values.size == 0:
        return
    lo, hi = float(values.min()), float(values.max())
    span = (hi - lo) or abs(hi) or 1.0
    bottom = lo - 0.05 * span if lo >= 0 else lo - 0.5 * span  # counts stay above zero
    ax.set_ylim(bottom, hi + 0.5 * span)


def _columns(series: Mapping[str, Any]) -> list[str]:
    cols = list((series.get("observed") or {}) or (series.get("truth") or {}))
    return cols[:MAX_PANELS]


def forecast_plot(series: Mapping[str, Any], agents: Mapping[str, Mapping[str, Any]],
                  colors: Mapping[str, str]) -> str | None:
    """Observed data, windows, truth and each agent's forecast: one panel per column."""
    t = np.asarray(series.get("t") or [], dtype=float)
    cols = _columns(series)
    if t.size == 0 or not cols:
        return None
    windows = series.get("windows") or {}
    train, validate = windows.get("train_until"), windows.get("validate_until")
    fig, axes = _figure(len(cols))
    for ax, col in zip(axes, cols, strict=True):
        if train is not None:
            ax.axvspan(train, validate if validate is not None else t[-1], color="C1",
                       alpha=0.08, lw=0, label="validation window")
        if validate is not None:
            ax.axvspan(validate, t[-1], color="C3", alpha=0.08, lw=0, label="test window")
        y = _arr((series.get("observed") or {}).get(col), t.size)
        if y is not None:
            ax.plot(t, y, "o", ms=3, color="0.35", label="observed")
        truth = _arr((series.get("truth") or {}).get(col), t.size)
        if truth is not None:
            ax.plot(t, truth, "-", lw=2.2, color="black", alpha=0.6, label="truth")
        for agent, agent_series in agents.items():
            f = _arr((agent_series.get("forecast") or {}).get(col), t.size)
            if f is not None:
                ax.plot(t, f, "-", lw=1.4, color=colors[agent], label=_mpl_text(agent))
        _frame(ax, [y, truth])
        ax.set_title(_mpl_text(col), loc="left", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left", ncol=3)
    return _png(fig)


def counterfactual_plot(series: Mapping[str, Any], index: int,
                        agents: Mapping[str, Mapping[str, Any]],
                        colors: Mapping[str, str]) -> str | None:
    """The true intervened trajectory (and the factual one) against each agent's answer."""
    t = np.asarray(series.get("t") or [], dtype=float)
    cfs = series.get("counterfactuals") or []
    if t.size == 0 or index >= len(cfs):
        return None
    cf = cfs[index] or {}
    cols = list(cf.get("truth") or {})[:MAX_PANELS]
    if not cols:
        return None
    fig, axes = _figure(len(cols))
    for ax, col in zip(axes, cols, strict=True):
        factual = _arr((series.get("truth") or {}).get(col), t.size)
        if factual is not None:
            ax.plot(t, factual, "--", lw=1.2, color="0.5", label="truth, no intervention")
        truth = _arr((cf.get("truth") or {}).get(col), t.size)
        if truth is not None:
            ax.plot(t, truth, "-", lw=2.2, color="black", alpha=0.6, label="truth, intervened")
        for agent, agent_series in agents.items():
            theirs = agent_series.get("counterfactuals") or []
            entry = theirs[index] if index < len(theirs) and theirs[index] else {}
            a = _arr((entry.get("agent") or {}).get(col), t.size)
            if a is None:
                continue
            if entry.get("answered", True):
                ax.plot(t, a, "-", lw=1.4, color=colors[agent], label=_mpl_text(agent))
            else:  # scored as its unchanged forecast: it could not pose the question
                ax.plot(t, a, ":", lw=1.4, color=colors[agent],
                        label=_mpl_text(f"{agent} (no answer)"))
        start = cf.get("from")
        if isinstance(start, int | float):
            ax.axvline(start, color="0.3", ls=":", lw=1, label="scored from")
        _frame(ax, [factual, truth])
        ax.set_title(_mpl_text(col), loc="left", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left", ncol=3)
    return _png(fig)


# --------------------------------------------------------------------------- HTML
def _score_table(rows: Mapping[str, Mapping[str, Any]], keys: Sequence[str],
                 counts: bool = False) -> str:
    head = ["agent"] + (["jobs", *STATUSES] if counts else []) + [METRIC_BY_KEY[k].label
                                                                     for k in keys]
    out = ["<div class=\"scroll\"><table class=\"compact\"><thead><tr>"
           + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for agent, summary in rows.items():
        cells = [f"<td>{esc(agent)}</td>"]
        if counts:
            cells += [f'<td class="num">{esc(summary["jobs"])}</td>'] + [
                f'<td class="num">{esc(summary["status"].get(s, 0))}</td>' for s in STATUSES]
        cells += [f'<td class="num">{_html_cell(summary["metrics"].get(k), k)}</td>'
                  for k in keys]
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</tbody></table></div>"


def _html_cell(summary: Mapping[str, Any] | None, key: str) -> str:
    """The mean, and under it the interval and n in small print (keeps tables narrow)."""
    if summary is not None and None in (summary["mean"], summary["lo"], summary["hi"]):
        summary = None  # a mean that overflowed was stored as null
    text = cell_text(summary, METRIC_BY_KEY[key])
    if summary is None:
        return esc(text)
    mean, _, rest = text.partition(" [")
    return f'{esc(mean)}<br><span class="ci">[{esc(rest)}</span>'


def _budget_text(budget: Mapping[str, Any]) -> str:
    fit = budget.get("fit") or {}
    parts = [f"{budget.get('max_seconds', '?')} s search", f"{budget.get('max_nodes', '?')} "
             f"nodes"] + [f"fit {k} {fit[k]}" for k in ("starts", "adam_steps", "lbfgs_steps")
                          if k in fit]
    return ", ".join(parts)


def _img(uri: str | None, alt: str) -> str:
    if uri is None:
        return '<p class="muted">no series to plot</p>'
    return f'<img class="plot" alt="{esc(alt)}" src="{uri}">'


def _plot_results(results: Sequence[Mapping[str, Any]], task: str
                  ) -> tuple[int | None, dict[str, Mapping[str, Any]]]:
    """The lowest seed of ``task`` with series, and each agent's series for it."""
    seeds = sorted({r["seed"] for r in results if r["task"] == task and r.get("series")})
    if not seeds:
        return None, {}
    return seeds[0], {r["agent"]: r["series"] for r in results
                      if r["task"] == task and r["seed"] == seeds[0] and r.get("series")}


def _task_section(task: str, info: Mapping[str, Any], rows: Mapping[str, Any],
                  results: Sequence[Mapping[str, Any]], colors: Mapping[str, str]) -> str:
    facts = [(k, info.get(k)) for k in ("domain", "difficulty", "variant", "time_unit")]
    facts += [("tags", ", ".join(map(str, info.get("tags") or []))),
              ("observed", ", ".join(map(str, info.get("observed") or []))),
              ("hidden", ", ".join(map(str, info.get("hidden") or [])))]
    parts = [f'<section id="task-{esc(task)}"><h2>{esc(task)}</h2><dl class="facts">'
             + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts if v)
             + "</dl>"]
    if info.get("description"):
        parts.append(f'<details><summary>description (what the agents read)</summary>'
                     f'<pre class="prose">{esc(info["description"])}</pre></details>')
    parts.append(_score_table(rows, COMPACT, counts=True))
    seed, by_agent = _plot_results(results, task)
    if seed is not None:
        base = next(iter(by_agent.values()))
        parts.append(f"<h3>Forecast (seed {esc(seed)})</h3>")
        parts.append(_img(forecast_plot(base, by_agent, colors), f"{task}: forecasts"))
        for i, cf in enumerate(base.get("counterfactuals") or []):
            parts.append(f"<h3>Counterfactual {i + 1}</h3>"
                         f'<p class="note">{esc((cf or {}).get("question") or "")}</p>')
            parts.append(_img(counterfactual_plot(base, i, by_agent, colors),
                              f"{task}: counterfactual {i + 1}"))
    failed = [r for r in results if r["task"] == task and r["status"] != "ok"]
    if failed:
        parts.append("<h3>Jobs without a valid simulator</h3><ul>" + "".join(
            f"<li><code>{esc(r['agent'])}</code> seed {esc(r['seed'])}: "
            f"{esc(r['status'])}, {esc(str(r.get('reason', ''))[:400])}</li>"
            for r in failed) + "</ul>")
    return "".join(parts) + "</section>"


def render_report(summary: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
                  skipped: Sequence[str] = ()) -> str:
    """The report for ``results.json``'s content and the full results (with series), both
    already checked against their shapes (evals/bench_files.py); ``skipped`` names the
    result files left out and why."""
    manifest = summary.get("manifest") or {}
    scores = summary["scores"]
    agents = list(scores["overall"])
    colors = {a: f"C{i % 10}" for i, a in enumerate(agents)}
    groups: dict[str, list[str]] = {}
    for m in METRICS:
        groups.setdefault(m.group, []).append(m.key)
    body = ["<h1>mmw bench</h1>",
            f'<p class="muted">{esc(len(results))} jobs; agents {esc(", ".join(agents))}; '
            f"seeds {esc(', '.join(map(str, manifest.get('seeds', []))))}; budget per job "
            f"{esc(_budget_text(manifest.get('budget') or {}))}</p>",
            '<p class="legend">Cells: mean [95% bootstrap interval over (task, seed) jobs] '
            "(jobs with a value); lower is better except the valid rates. Forecast skill is "
            "the test-window RMSE over that of naive persistence (below 1 beats it).</p>"]
    if skipped:
        body.append('<section class="problems"><h2>Result files left out</h2><ul class="error">'
                    + "".join(f"<li>{esc(s)}</li>" for s in skipped[:100]) + "</ul></section>")
    for i, (group, keys) in enumerate(groups.items()):
        body.append(f"<section><h2>{esc(group)}</h2>"
                    f"{_score_table(scores['overall'], keys, counts=i == 0)}</section>")
    timing = (summary.get("timing") or {}).get("overall")
    if timing:
        body.append(f"<section><h2>Wall time (s)</h2>"
                    f"{_score_table(timing, ['wall_s', 'job_wall_s'])}</section>")
    body.append("<section><h2>By domain</h2>" + "".join(
        f"<h3>{esc(d)}</h3>{_score_table(rows, COMPACT)}"
        for d, rows in scores["by_domain"].items()) + "</section>")
    toc = "".join(f'<li><a href="#task-{esc(t)}">{esc(t)}</a></li>' for t in scores["by_task"])
    body.append(f'<nav class="toc"><h2>Tasks</h2><ol>{toc}</ol></nav>')
    tasks = manifest.get("tasks", {})
    body += [_task_section(t, tasks.get(t, {}), rows, results, colors)
             for t, rows in scores["by_task"].items()]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>mmw bench</title><link rel=\"icon\" href=\"data:,\">"
            f"<style>{review_css()}{_STYLE}</style></head><body>"
            f'<header class="top"><span class="brand">mmw bench</span></header>'
            f"<main>{''.join(body)}</main></body></html>\n")


def write_report(out: str | Path, html_path: str | Path | None = None) -> Path:
    """(Re)aggregate ``OUT`` (results.json, leaderboard.md, timing.md) and write
    ``OUT/report.html``; returns the report's path.

    The folder is read as untrusted data (evals/bench_files.py): a result file that is a
    link, a FIFO or of the wrong shape is left out and named in the report; a bad
    bench.json is one clear error.
    """
    folder = Path(out)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a benchmark run folder")
    manifest = read_manifest(folder)
    results, skipped = read_results_checked(folder)
    write_leaderboard(folder, manifest=manifest, results=results)
    summary = read_bench_json(folder, "results.json", SUMMARY)
    target = Path(html_path) if html_path is not None else folder / "report.html"
    return write_atomic(target, render_report(summary, results, skipped))
