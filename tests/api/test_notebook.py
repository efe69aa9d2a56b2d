"""The example notebook runs headless (nbclient) and shows what it says it shows: the model's
equations, a fit with its plot, ranked candidates, bands, a what-if and the SBML round trip."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebooks" / "main_job.ipynb"


def _outputs(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts.append(data.get("text/html", "") + data.get("text/plain", ""))
    return "\n".join(parts)


def test_the_main_job_notebook_runs_and_shows_its_results():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    model_cell, fit_cell = _outputs(code[1]), _outputs(code[2])
    assert "dH/dt = -H*L*beta + H*alpha" in model_cell  # the rendered model's equations
    assert "Lotka-Volterra hare and lynx" in model_cell
    assert "fitted parameters" in fit_cell and "data:image/png;base64," in fit_cell
    assert "alpha" in _outputs(code[3])
    assert "Hare_fit" in _outputs(code[4])
    run_cell = _outputs(code[5])
    assert "verdict" in run_cell or "adequate" in run_cell
    assert "<img" in run_cell  # the best candidate's fit plot
    ranked = _outputs(code[6])
    assert ranked.count(" ok") + ranked.count(">ok<") >= 1
    assert "_q0.95" in _outputs(code[7]) and "1945" in _outputs(code[7])
    assert "intervened_" in _outputs(code[8])
    sbml_cell = _outputs(code[9])
    assert "model *" in sbml_cell and "dH/dt" in sbml_cell  # Antimony text, then the model
