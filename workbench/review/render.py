"""HTML for the review views, shared by the one-file report and the web app.

Rule of this module: every string that came from a run (code, LLM notes, structure names,
errors, check messages, file names, the task description) goes through ``esc`` or through
a library that escapes (pygments, difflib lines we escape ourselves, the MathML
allow-list). No view emits a script, an inline event handler or a ``style`` attribute, so
the app can forbid all three with its Content-Security-Policy and the report with a
``<meta>`` policy.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mechanistic.errors import UntrustedDataError
from mechanistic.report_html import REPORT_CSP, esc, review_css
from mechanistic.untrusted import MiB, parse_json
from workbench.review.runs import RunView, read_file

# esc, REPORT_CSP and review_css live in mechanistic.report_html (the bench report uses
# them too); they are re-exported for the review's own modules.
__all__ = ["REPORT_CSP", "esc", "fmt", "image_tag", "page", "problems_block", "review_css",
           "run_sections", "tree_section"]

Link = Callable[[str], str]
IMAGE_LIMIT = 8 * 1024 * 1024
TEXT_PREVIEW = 20_000
TRAJECTORY_LIMIT = 64 * MiB
TRAJECTORY_LINES = 100_000
CSV_LIMIT = 16 * MiB
_PNG = b"\x89PNG\r\n\x1a\n"

def fmt(value: Any, digits: int = 4) -> str:
    """Numbers for tables: ``-`` for missing or non-finite, else ``digits`` significant."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:.{digits}g}" if math.isfinite(value) else "-"
    return esc(value)


def page(title: str, body: str, *, inline_css: bool, crumbs: str = "") -> str:
    """A whole HTML document. The report inlines its CSS and carries a CSP ``<meta>``;
    the app links ``/static/review.css`` and sends its CSP as a header."""
    if inline_css:
        head = (f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
                f"<style>{review_css()}</style>")
    else:
        head = '<link rel="stylesheet" href="/static/review.css">'
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)}</title><link rel="icon" href="data:,">{head}</head><body>'
            f'<header class="top"><span class="brand">mmw review</span>{crumbs}</header>'
            f"<main>{body}</main></body></html>\n")


def image_tag(root: Path, relative: str, alt: str) -> str:
    """A PNG of the run embedded as a ``data:`` URI (a regular file inside the run, checked
    to be a PNG, size-capped), so the report is one file and the app needs no file route
    that could be walked out of the run."""
    name = Path(relative).name
    raw, problem = read_file(root, relative, IMAGE_LIMIT)
    if raw is None:
        return f'<p class="muted">{esc(name)}: {esc(problem or "missing")}</p>'
    if not raw.startswith(_PNG):
        return f'<p class="muted">{esc(name)}: not a PNG, not shown</p>'
    data = base64.b64encode(raw).decode("ascii")
    return f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def error_line(error: Any) -> str:
    """One line for a node's error: the agent stores a dict (type, message, line) for
    exceptions and a string for other failures."""
    if isinstance(error, dict):
        where = f" (line {error['lineno']})" if error.get("lineno") else ""
        head = ": ".join(str(error[k]) for k in ("type", "message") if error.get(k))
        return (head or str(error.get("kind", "error"))) + where
    return str(error)


def error_block(error: Any) -> str:
    """The error line, and the traceback when there is one, escaped."""
    trace = error.get("traceback") if isinstance(error, dict) else None
    out = f'<pre class="error">{esc(error_line(error))}</pre>'
    if trace:
        out += f'<details><summary>traceback</summary><pre class="error">{esc(trace)}</pre>' \
               f"</details>"
    return out


def problems_block(problems: list[str], what: str) -> str:
    """Files that could not be used, each with its reason: the page says what it left out
    rather than failing or silently showing less."""
    if not problems:
        return ""
    items = "".join(f"<li>{esc(p)}</li>" for p in problems[:100])
    more = f"<li>and {len(problems) - 100} more</li>" if len(problems) > 100 else ""
    return (f'<section class="problems"><h3>Not shown: {esc(what)}</h3>'
            f'<ul class="error">{items}{more}</ul></section>')


def badge(status: Any) -> str:
    text = str(status or "unknown")
    kind = {"ok": "good", "approved": "good", "rejected": "bad"}.get(text)
    if kind is None:
        kind = "bad" if any(w in text for w in ("fail", "error", "invalid")) else "warn"
    return f'<span class="badge {kind}">{esc(text)}</span>'


def _dl(items: list[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="facts">{rows}</dl>'


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table; cells are HTML already (callers escape)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# ------------------------------------------------------------------------- verdict
def verdict_section(run: RunView) -> str:
    """The adequacy verdict, first thing on the page: whether the best candidate beats the
    naive baselines (agent/verdict.py), and what to try when it does not."""
    from agent.verdict import Verdict

    verdict = Verdict.from_dict(run.tree.get("verdict") if isinstance(run.tree, dict) else None)
    if verdict is None:
        return ('<section id="verdict" class="verdict unknown"><h2>Verdict: not judged</h2>'
                '<p class="prose">This run has no adequacy verdict (an older run, or the '
                'search has not finished).</p></section>')
    kind = {True: "adequate", False: "inadequate", None: "unknown"}[verdict.adequate]
    rows = [[esc(name), fmt(value)] for name, value in verdict.baselines.items()]
    rows.insert(0, [f"best candidate {esc(verdict.best or '-')}", fmt(verdict.best_error)])
    advice = "".join(f"<li>{esc(a)}</li>" for a in verdict.advice)
    return (f'<section id="verdict" class="verdict {kind}"><h2>Verdict: '
            f'{esc(verdict.label)}</h2><p class="prose">{esc(verdict.message)}</p>'
            f"{_table(['forecast on the validation window', 'pooled error'], rows, 'compact')}"
            + (f"<p>Try:</p><ul>{advice}</ul>" if advice else "") + "</section>")


# ---------------------------------------------------------------------------- task
def _trajectory_counts(run: RunView) -> tuple[dict[str, int], str | None]:
    """Events by kind (a line that is not a JSON object with a text ``kind`` counts as
    ``?``), and why the file was not read when it was refused."""
    raw, problem = read_file(run.root, "trajectory.jsonl", TRAJECTORY_LIMIT)
    counts: dict[str, int] = {}
    lines = (raw or b"").decode("utf-8", "replace").splitlines()
    if len(lines) > TRAJECTORY_LINES:  # a glance, not an audit: bounded host time
        counts[f"(first {TRAJECTORY_LINES} of {len(lines)} lines)"] = 0
    for line in lines[:TRAJECTORY_LINES]:
        if not line.strip():
            continue
        try:
            event = parse_json(line, "trajectory line")
        except UntrustedDataError:
            event = None
        kind = event.get("kind") if isinstance(event, dict) else None
        key = kind[:40] if isinstance(kind, str) else "?"
        counts[key] = counts.get(key, 0) + 1
        if len(counts) > 50:
            break
    return counts, problem


def task_section(run: RunView) -> str:
    """What was asked: description, windows, who searched, the data at a glance."""
    task, tree = run.task, run.tree
    facts = [("train until", fmt(task.get("train_until"), 8)),
             ("validate until", fmt(task.get("validate_until"), 8)),
             ("time unit", esc(task.get("time_unit", ""))),
             ("agent", esc(" ".join(str(task.get(k) or "") for k in ("agent", "llm")).strip())),
             ("seed", esc(task.get("seed", ""))),
             ("stop reason", esc(tree.get("stop_reason", "(search not finished)"))),
             ("best", esc(tree.get("best") or "-"))]
    if task.get("objectives"):
        facts.append(("objectives", esc(task["objectives"])))
    usage = tree.get("usage") or {}
    if usage:
        facts.append(("usage", esc(", ".join(f"{k} {v}" for k, v in usage.items()))))
    counts, problem = _trajectory_counts(run)
    if counts:
        facts.append(("trajectory", esc(", ".join(f"{k} {v}" if v else k
                                                  for k, v in counts.items()))))
    elif problem:
        facts.append(("trajectory", f'<span class="muted">{esc(problem)}</span>'))
    summary = run.data_summary
    rows = [[esc(c["name"]) + (" (time)" if c["time"] else ""), str(c["count"]),
             str(c["missing"]), fmt(c["min"]), fmt(c["max"])] for c in summary["columns"]]
    more = (f'<p class="muted">and {summary["more_columns"]} more columns</p>'
            if summary.get("more_columns") else "")
    return (f'<section id="task"><h2>Task</h2>'
            f'<pre class="prose">{esc(task.get("description", ""))}</pre>{_dl(facts)}'
            f"<h3>Data: {summary['rows']} rows</h3>"
            f"{_table(['column', 'values', 'missing', 'min', 'max'], rows, 'compact')}{more}"
            f"</section>")


# ---------------------------------------------------------------------------- tree
def _decision(run: RunView, node_id: str) -> str:
    entry = run.reviews.get(node_id)
    return badge(entry.get("decision")) if entry else '<span class="muted">-</span>'


def tree_section(run: RunView, link: Link) -> str:
    """The search as a ranked table and as the parent/child tree of repairs and refines."""
    rows = []
    rank = 0
    for n in run.nodes:
        ok = n.get("status") == "ok"
        rank += ok
        failed = n.get("failed_checks") or []
        rows.append([str(rank) if ok else "-",
                     f'<a href="{esc(link(n["id"]))}">{esc(n["id"])}</a>',
                     esc(n.get("structure")), esc(n.get("origin")),
                     f'<a href="{esc(link(n["parent"]))}">{esc(n["parent"])}</a>'
                     if n.get("parent") else "-",
                     badge(n.get("status")), fmt(n.get("validation_error")),
                     fmt(n.get("aic"), 6), esc(len(failed)) if failed else "-",
                     esc(n.get("repairs", 0)), _decision(run, n["id"])])
    table = _table(["rank", "id", "structure", "origin", "parent", "status",
                    "validation error", "AIC", "failed checks", "repairs", "review"], rows,
                   "tree")
    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {n["id"] for n in run.nodes}
    for n in run.nodes:
        parent = n.get("parent") if n.get("parent") in ids else None
        children.setdefault(parent, []).append(n)

    def branch(parent: str | None, depth: int) -> str:
        items = []
        for n in children.get(parent, []):
            note = f'<div class="note">{esc(n.get("note"))}</div>' if n.get("note") else ""
            error = (f'<div class="error">{esc(error_line(n["error"])[:400])}</div>'
                     if n.get("error") else "")
            sub = branch(n["id"], depth + 1) if depth < 50 else ""
            items.append(f'<li><a href="{esc(link(n["id"]))}">{esc(n.get("structure"))}</a> '
                         f'<code>{esc(n["id"])}</code> {badge(n.get("status"))} '
                         f'<span class="muted">{esc(n.get("origin"))}, validation error '
                         f'{fmt(n.get("validation_error"))}</span> {_decision(run, n["id"])}'
                         f"{note}{error}{sub}</li>")
        return f"<ul>{''.join(items)}</ul>" if items else ""

    return (f'<section id="tree"><h2>Search tree ({len(run.nodes)} candidates, best first)'
            f"</h2>{table}<h3>Lineage (repairs and refinements under their parent)</h3>"
            f'<div class="lineage">{branch(None, 0)}</div></section>')


# ------------------------------------------------------------------- run-level extras
def counterfactual_section(run: RunView) -> str:
    from workbench.review.svgplot import counterfactual_series, line_plot_svg

    if not run.counterfactuals:
        return ""
    parts = ['<section id="counterfactuals"><h2>Counterfactuals</h2>']
    for cf in run.counterfactuals:
        plots = []
        raw, problem = read_file(run.root, cf["csv"], CSV_LIMIT)
        series = counterfactual_series(raw.decode("utf-8", "replace") if raw else "")
        if problem:
            plots.append(f'<p class="muted">{esc(problem)}</p>')
        for name, s in series.items():
            bands = {side: (s[f"{side}_lo"], s[f"{side}_hi"]) for side in
                     ("baseline", "intervened") if f"{side}_lo" in s}
            plots.append(line_plot_svg(name, s["t"], {"baseline": s["baseline"],
                                                      "intervened": s["intervened"]}, bands))
        rows = [[esc(name), fmt(_total(s["baseline"])), fmt(_total(s["intervened"]))]
                for name, s in series.items()]
        plots += [image_tag(run.root, p, Path(p).name) for p in cf["images"]]
        parts.append(
            f"<article><h3>{esc(cf['name'])}</h3>"
            f'<p class="prose">{esc(cf["question"])}</p>'
            f'<pre class="json">{esc(json.dumps(cf["interventions"], indent=1))}</pre>'
            f"{_table(['series', 'baseline total', 'intervened total'], rows, 'compact')}"
            f'<div class="plots">{"".join(plots)}</div></article>')
    parts.append("</section>")
    return "".join(parts)


def _total(values: list[float]) -> float:
    return sum(v for v in values if math.isfinite(v))


def sgnn_section(run: RunView) -> str:
    """What an SGNN step left in ``sgnn/``: listed, pictures shown, small text files
    previewed (the SGNN writes its own summaries; this view does not interpret them)."""
    if not run.sgnn_files:
        return ""
    items = []
    for rel, size in run.sgnn_files[:200]:
        suffix = Path(rel).suffix
        body = ""
        if suffix == ".png":
            body = image_tag(run.root, rel, rel)
        elif suffix in (".json", ".csv", ".txt", ".md") and size <= TEXT_PREVIEW:
            raw, problem = read_file(run.root, rel, TEXT_PREVIEW)
            body = (f'<pre class="json">{esc(raw.decode("utf-8", "replace"))}</pre>'
                    if raw is not None else f'<p class="muted">{esc(problem or "missing")}</p>')
        items.append(f"<li><code>{esc(rel)}</code> <span class=\"muted\">{size} bytes</span>"
                     f"{body}</li>")
    return f'<section id="sgnn"><h2>SGNN results</h2><ul class="files">{"".join(items)}</ul>' \
           f"</section>"


def run_sections(run: RunView, link: Link) -> str:
    """Task, tree and the run-level extras, in reading order."""
    return problems_block(run.problems, "files of this run that could not be used") + \
        verdict_section(run) + task_section(run) + tree_section(run, link) + \
        counterfactual_section(run) + sgnn_section(run)
