"""A model as HTML for a notebook: its equations and parameter table.

``Model._repr_html_`` calls :func:`model_html`, so a model shows itself in Jupyter the way
``mmw show`` prints it. Every name and doc is escaped: a model read from a file is data.
"""

from __future__ import annotations

from html import escape

from mechanistic.model import Model
from mechanistic.review import equations_text, parameter_table

__all__ = ["model_html", "table_html"]


def table_html(header: list[str], rows: list[list[str]]) -> str:
    """A small HTML table of text cells (escaped)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def model_html(model: Model) -> str:
    """Equations (one a line, as ``mmw show``), then the parameters and their priors."""
    rows = [[r["name"], r["prior"], r["support"], r["unit"], "yes" if r["fixed"] else "",
             r["doc"]] for r in parameter_table(model)]
    return (f"<div class='mmw-model'><h4>{escape(model.name)} "
            f"<small>(time in {escape(model.time_unit)})</small></h4>"
            f"<pre class='mmw-equations'>{escape(equations_text(model))}</pre>"
            + table_html(["parameter", "prior", "support", "unit", "fixed", "doc"], rows)
            + "</div>")
