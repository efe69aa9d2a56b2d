"""``mmw review RUN --html OUT.html``: the whole run as one self-contained HTML file.

One file because it gets mailed, attached to a ticket and opened years later: CSS is
inlined, plots are ``data:`` URIs, equations are MathML, and there is no script at all
(its ``<meta>`` Content-Security-Policy forbids scripts and every network fetch).
"""

from __future__ import annotations

from pathlib import Path

from mechanistic.files import write_atomic
from workbench.review.candidate import anchor, candidate_section
from workbench.review.render import esc, page, run_sections
from workbench.review.runs import RunView, load_run

__all__ = ["render_report", "write_report"]


def render_report(run: RunView) -> str:
    """The report as a string: task, tree, extras, then every candidate, best first."""

    def link(candidate_id: str) -> str:
        return "#" + anchor(candidate_id)

    toc = "".join(f'<li><a href="#{esc(anchor(n["id"]))}">{esc(n.get("structure"))}</a> '
                  f'<code>{esc(n["id"])}</code></li>'
                  for n in run.nodes if n["id"] in run.candidates)
    body = [f"<h1>Run {esc(run.name)}</h1>", run_sections(run, link),
            f'<nav class="toc"><h2>Candidates</h2><ol>{toc}</ol></nav>']
    body += [candidate_section(run, run.candidates[n["id"]], link)
             for n in run.nodes if n["id"] in run.candidates]
    return page(f"mmw review: {run.name}", "".join(body), inline_css=True,
                crumbs=f'<span class="crumb">{esc(run.name)}</span>')


def write_report(run_dir: str | Path, out: str | Path) -> tuple[Path, int]:
    """Render ``run_dir`` into ``out`` (written atomically); returns the path and how many
    files of the run could not be used (the report names each, with its reason)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run = load_run(run_dir)
    write_atomic(out, render_report(run))
    return out, run.unread
