"""The candidate view: what one generated simulator is, how it fits, what its repair
changed. Shared by the report (one section per candidate) and the app (one page).
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from workbench.review.render import (
    Link,
    _dl,
    _table,
    badge,
    error_block,
    esc,
    fmt,
    image_tag,
    problems_block,
)
from workbench.review.runs import CandidateView, RunView

__all__ = ["anchor", "candidate_section", "diff_html", "highlight_python"]


def anchor(candidate_id: str) -> str:
    """An id attribute for a candidate section (ids are hashes or slugs; anything else
    is reduced to safe characters, and the result is escaped where used anyway)."""
    return "cand-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in candidate_id)


HIGHLIGHT_LIMIT = 50_000  # characters of one module coloured (pygments: ~0.2 MB/s)
DIFF_LIMIT = 100_000  # characters of each side of a diff


def highlight_python(source: str, budget: list[int] | None = None) -> str:
    """Source with pygments' classes (pygments escapes every token). A module longer than
    HIGHLIGHT_LIMIT, or one past what ``budget`` (characters left for the whole page)
    allows, is plain escaped text: no candidate, nor a thousand of them, holds the page
    for minutes."""
    if len(source) > HIGHLIGHT_LIMIT or (budget is not None and len(source) > budget[0]):
        return f'<pre class="code-plain">{esc(source)}</pre>'
    if budget is not None:
        budget[0] -= len(source)

    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return highlight(source, PythonLexer(), HtmlFormatter(linenos="table", wrapcode=True))


def diff_html(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff, one escaped line per ``<span>``, coloured by CSS class."""
    if len(old) > DIFF_LIMIT or len(new) > DIFF_LIMIT:
        return f'<p class="muted">not compared: a module over {DIFF_LIMIT} characters</p>'
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name,
                                      lineterm="", n=3))
    if not lines:
        return '<p class="muted">no change in the code</p>'
    out = []
    for line in lines:
        if line.startswith(("+++", "---")):
            cls = "meta"
        elif line.startswith("@@"):
            cls = "hunk"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        else:
            cls = "ctx"
        out.append(f'<span class="{cls}">{esc(line)}</span>')
    return f'<pre class="diff">{"".join(out)}</pre>'  # spans are blocks: one per line


def _model(cand: CandidateView) -> tuple[Any, str | None]:
    if not cand.model_json:
        return None, "no model.json (the code did not run to a model)"
    from mechanistic.serialize import model_from_json

    try:
        return model_from_json(cand.model_json), None
    except Exception as exc:  # a broken file is shown, not raised
        return None, f"model.json could not be read: {exc}"


def _equations(model: Any) -> str:
    from workbench.review.mathml import model_equations

    equations = model_equations(model)
    rows = []
    for row in equations:
        rows.append(f'<tr class="eq-{esc(row.kind)}"><td class="lhs">{row.lhs}</td>'
                    f'<td class="rel">{esc(row.rel)}</td><td class="rhs">{row.rhs}</td></tr>')
    text = "\n".join(r.text for r in equations)
    return (f'<table class="equations">{"".join(rows)}</table>'
            f'<details><summary>equations as text</summary><pre class="eq-plain">'
            f"{esc(text)}</pre></details>")


def _parameters(model: Any, fit: dict[str, Any] | None) -> str:
    from mechanistic.review import parameter_table

    fitted = (fit or {}).get("params", {}) or {}
    free = set((fit or {}).get("free_params", []) or [])
    rows = []
    for p in parameter_table(model):
        value = fitted.get(p["name"])
        rows.append([f"<code>{esc(p['name'])}</code>",
                     f"<strong>{fmt(value, 5)}</strong>" if value is not None else "-",
                     esc(p["prior"]), esc(p["support"]), esc(p["unit"]),
                     "fixed" if p["fixed"] else ("free" if p["name"] in free else ""),
                     esc(p["doc"])])
    return _table(["parameter", "fitted", "prior", "support", "unit", "", "meaning"], rows,
                  "params")


def _fit_summary(fit: dict[str, Any]) -> str:
    facts = [(k, fmt(fit.get(k), 6)) for k in ("log_likelihood", "aic", "bic",
                                               "validation_error", "n_obs", "n_validation")
             if k in fit]
    facts.append(("converged", fmt(fit.get("converged"))))
    if fit.get("message"):
        facts.append(("optimiser", esc(fit["message"])))
    rows = []
    for window in ("train_residuals", "validation_residuals"):
        for name, r in (fit.get(window) or {}).items():
            if isinstance(r, dict):
                rows.append([esc(window.split("_")[0]), esc(name), fmt(r.get("n")),
                             fmt(r.get("rmse")), fmt(r.get("nrmse")), fmt(r.get("bias"))])
    return _dl(facts) + _table(["window", "observable", "n", "RMSE", "NRMSE", "bias"], rows,
                               "compact")


def _checks(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return '<p class="muted">no checks recorded</p>'
    rows = []
    for c in checks:
        state = "passed" if c.get("passed") else (
            "failed" if c.get("severity", "error") == "error" else "warning")
        cls = {"passed": "good", "failed": "bad", "warning": "warn"}[state]
        rows.append([f'<span class="badge {cls}">{state}</span>', esc(c.get("name")),
                     esc(c.get("message"))])
    return _table(["", "check", "message"], rows, "checks")


def _numbers(values: list[float | None]) -> list[float]:
    """Numbers for a plot, a gap (None) as NaN (distill.json's shape guarantees numbers)."""
    return [math.nan if v is None else v for v in values]


def _distillation(cand: CandidateView, link: Link) -> str:
    """A distilled candidate: its neural parent, the rate the network learned along the
    fitted trajectory against the closed form that replaced it (``distill.json``, read
    against its shape in agent/runfiles.py)."""
    data = cand.distill
    if data is None:
        return ""
    learned, distilled = data["learned"], data["distilled"]
    axes = {k: v for k, v in (data["grid"] or {}).items() if v}
    parent = data["distilled_from"]
    head = "<h3>Distillation</h3>"
    if parent:
        head += (f'<p>distilled from the hybrid <a href="{esc(link(parent))}">{esc(parent)}'
                 f"</a>: {esc(data['expression'] or '')} (R<sup>2</sup> "
                 f"{fmt(data['r2'])} against the learned rate)</p>")
    if not learned or not distilled or len(learned) != len(distilled) or len(learned) > 500:
        return head + '<p class="muted">no learned curve recorded</p>'
    from workbench.review.svgplot import line_plot_svg

    learned, distilled = _numbers(learned), _numbers(distilled)
    name, x = "point", [float(i) for i in range(len(learned))]
    if len(axes) == 1:
        name, values = next(iter(axes.items()))
        xs = _numbers(values)
        if len(xs) == len(learned):
            order = sorted(range(len(xs)), key=lambda i: (math.isnan(xs[i]), xs[i]))
            x = [xs[i] for i in order]
            learned = [learned[i] for i in order]
            distilled = [distilled[i] for i in order]
    plot = line_plot_svg(f"{data['rate'] or 'rate'} against {name}", x,
                         {"learned (network)": learned, "distilled": distilled})
    return head + f'<div class="plots">{plot}</div>'


def candidate_section(run: RunView, cand: CandidateView, link: Link, *,
                      heading: str = "h2") -> str:
    """Everything about one candidate, in the order a reviewer asks: what is it, is it
    well formed, how does it fit, what does the code say, what changed from its parent."""
    node = cand.node
    review = run.reviews.get(cand.id)
    facts = [("id", f"<code>{esc(cand.id)}</code>"), ("status", badge(node.get("status"))),
             ("origin", esc(node.get("origin"))),
             ("proposer", esc(node.get("proposer"))),
             ("validation error", fmt(node.get("validation_error"))),
             ("repairs", esc(node.get("repairs", 0)))]
    if cand.parent:
        facts.append(("parent", f'<a href="{esc(link(cand.parent))}">{esc(cand.parent)}</a>'))
    if review:
        facts.append(("review", f"{badge(review.get('decision'))} "
                                f"<span class=\"muted\">{esc(review.get('time'))}</span>"
                                f"<div class=\"note\">{esc(review.get('note'))}</div>"))
    parts = [f'<section class="candidate" id="{esc(anchor(cand.id))}">'
             f"<{heading}>{esc(cand.structure)}</{heading}>{_dl(facts)}",
             problems_block(cand.problems, "files of this candidate that could not be used")]
    if node.get("note"):
        parts.append(f'<h3>Agent note</h3><pre class="prose">{esc(node["note"])}</pre>')
    if node.get("error"):
        parts.append(f"<h3>Error</h3>{error_block(node['error'])}")
    model, problem = _model(cand)
    parts.append("<h3>Equations</h3>")
    if model is None:
        parts.append(f'<p class="muted">{esc(problem)}</p>')
    else:
        try:
            shown = (f'<p class="muted">model {esc(model.name)} '
                     f"(time in {esc(model.time_unit)})</p>{_equations(model)}"
                     f"<h3>Parameters</h3>{_parameters(model, cand.fit)}")
        except Exception as exc:  # a model the printers cannot show is named, not raised
            shown = f'<p class="muted">the equations could not be shown: {esc(exc)}</p>'
        parts.append(shown)
    parts.append(f"<h3>Checks</h3>{_checks(cand.checks)}")
    if cand.fit:
        parts.append(f"<h3>Fit</h3>{_fit_summary(cand.fit)}")
    parts.append(_distillation(cand, link))
    if cand.images:
        parts.append('<div class="plots">' + "".join(
            image_tag(run.root, p, f"{cand.structure}: {Path(p).stem}") for p in cand.images)
            + "</div>")
    if cand.source is not None:
        parts.append(f'<h3>Code</h3><div class="code">'
                     f"{highlight_python(cand.source, run.highlight_budget)}</div>")
    parent = run.candidates.get(cand.parent) if cand.parent else None
    if parent is not None and parent.source is not None and cand.source is not None:
        parts.append(f"<h3>Changes from parent {esc(parent.id)}</h3>"
                     + diff_html(parent.source, cand.source, f"{parent.id}/simulator.py",
                                 f"{cand.id}/simulator.py"))
    elif cand.parent:
        parts.append(f'<p class="muted">parent {esc(cand.parent)} has no code in this run</p>')
    parts.append("</section>")
    return "".join(parts)
