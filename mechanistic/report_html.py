"""What every self-contained HTML page of mmw shares: escaping, the stylesheet and the CSP.

The review (``workbench/review``) and the bench report (``evals/report.py``) both write
pages that show untrusted strings (run files, task names, agent output). They must escape
them the same way and carry the same Content-Security-Policy, so the rule lives here,
below both of them: ``evals`` may not import ``workbench`` (docs/architecture.md,
"Packages and what each may import"). Nothing here imports anything heavy at import time;
pygments is loaded only when the stylesheet is first asked for.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["REPORT_CSP", "esc", "review_css"]

REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
              "base-uri 'none'; form-action 'none'")
"""The policy a one-file page carries in its ``<meta>``: no script, no fetches, inline
styles and ``data:`` images only."""


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too: the result may sit in an attribute)."""
    return html.escape("" if value is None else str(value), quote=True)


@cache
def review_css() -> str:
    """The package stylesheet plus pygments' classes for the code view."""
    from pygments.formatters import HtmlFormatter

    base = resources.files("mechanistic").joinpath("static/review.css").read_text()
    return base + "\n" + HtmlFormatter(style="default").get_style_defs(".highlight")
