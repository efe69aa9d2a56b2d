"""``mmw review RUN --html OUT.html``: one self-contained file with every view, and
generated text that can never become markup."""

from __future__ import annotations

import json
import re
from pathlib import Path

from review_helpers import IMG, SCRIPT, assert_injection_inert, audit
from typer.testing import CliRunner

from workbench.cli import app
from workbench.review.mathml import safe_mathml
from workbench.review.report import render_report
from workbench.review.runs import load_run


def _report(run: Path, tmp_path: Path) -> str:
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(app, ["review", str(run), "--html", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8")


def test_report_holds_every_view_in_one_file(built_run: Path, tmp_path: Path) -> None:
    page = _report(built_run, tmp_path)
    tree = json.loads((built_run / "tree.json").read_text())
    ids = [n["id"] for n in tree["nodes"]]
    problems, text = audit(page)
    assert problems == []
    assert "Not shown:" not in text  # every file mmw model wrote fits its shape
    # Task, tree and every candidate section, linked from the tree.
    assert "a tracer washes out of a tank" in text and "Data: 30 rows" in text
    for node_id in ids:
        assert f'href="#cand-{node_id}"' in page and f'id="cand-{node_id}"' in page
    repair = next(n for n in tree["nodes"] if n["origin"] == "repair")
    assert f'<a href="#cand-{repair["parent"]}">{repair["parent"]}</a>' in page
    # Equations as MathML from the model, fitted parameters, checks, code, diff, plots.
    assert page.count("<math>") >= 4 and "<mfrac>" in page
    assert "dx/dt = -k*x" in text
    fitted = json.loads((built_run / "candidates" / ids[0] / "fit.json").read_text())
    assert f"{fitted['params']['k']:.5g}" in text
    assert "non_negativity" in text
    assert '<div class="highlight">' in page and 'class="k"' in page  # pygments tokens
    assert '<span class="del">-raise RuntimeError(' in page.replace("&quot;", '"')
    assert '<span class="add">+# fixed: no more raising' in page
    assert page.count('src="data:image/png;base64,') >= 2  # fit.png of both fitted models
    assert '<svg class="plot"' in page and "what if we dose at day 25?" in text  # counterfactual
    assert "sgnn/metrics.json" in text and "coverage_90" in text
    # Self-contained: no fetch of anything, and a policy that would block one anyway.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "default-src 'none'" in page


def test_report_shows_injection_as_text(built_run: Path, tmp_path: Path) -> None:
    page = _report(built_run, tmp_path)
    assert_injection_inert(page)
    _, text = audit(page)
    assert f"evil {SCRIPT} {IMG}" in text  # the structure name, verbatim
    assert f"RuntimeError: broken {SCRIPT} {IMG}" in text  # the error of the first try
    assert f"loss {SCRIPT}" in text  # a parameter's doc, from model.json


def test_mathml_is_rebuilt_from_an_allow_list() -> None:
    ok = safe_mathml("<mrow><mi>k</mi><mo>&InvisibleTimes;</mo><mi>x</mi></mrow>", "k*x")
    assert ok.startswith("<math><mrow><mi>k</mi>") and "<mi>x</mi>" in ok
    bad = safe_mathml(f"<mi>{IMG}</mi>", f"name {IMG}")
    assert bad == '<code class="eq-text">name &lt;img src=x onerror=alert(1)&gt;</code>'
    dropped = safe_mathml('<mi href="javascript:alert(1)" mathvariant="bold">k</mi>', "k")
    assert dropped == '<math><mi mathvariant="bold">k</mi></math>'


def test_a_run_in_progress_still_renders(tmp_path: Path) -> None:
    run = tmp_path / "half"
    (run / "candidates" / "abc").mkdir(parents=True)
    (run / "task.json").write_text(json.dumps({"description": "started", "train_until": 3}))
    (run / "candidates" / "abc" / "simulator.py").write_text("x = 1\n")
    page = render_report(load_run(run))
    problems, text = audit(page)
    assert problems == [] and "(search not finished)" in text
    assert "no model.json" in text and "Data: 0 rows" in text


def test_links_in_a_run_are_not_followed(run_copy: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    (run_copy / "sgnn" / "leak.txt").symlink_to(secret)
    folder = next((run_copy / "candidates").iterdir())
    (folder / "simulator.py").unlink()
    (folder / "simulator.py").symlink_to(secret)
    page = render_report(load_run(run_copy))
    assert "TOP-SECRET-CONTENT" not in page
    _, text = audit(page)  # the links are named as refused, their targets never read
    assert "sgnn/leak.txt is a symbolic link; not shown" in text
    assert "simulator.py is a symbolic link" in text


def test_review_command_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["review", str(tmp_path), "--html",
                                      str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "not a run folder" in result.output
    result = CliRunner().invoke(app, ["review"])
    assert result.exit_code == 2 and "run folder" in result.output


def test_a_distilled_candidate_shows_its_learned_and_distilled_rate(run_copy: Path,
                                                                    tmp_path: Path) -> None:
    """distill.json (written by the store for a distilled child) becomes a section with
    the neural parent's link and both curves; a malformed one is named, not a crash."""
    tree = json.loads((run_copy / "tree.json").read_text())
    child, parent = tree["nodes"][0]["id"], tree["nodes"][-1]["id"]
    folder = run_copy / "candidates" / child
    c = [0.5 * i for i in range(20)]
    (folder / "distill.json").write_text(json.dumps({
        "distilled_from": parent, "rate": "loss", "expression": "2*C/(C + 3)",
        "r2": 0.99, "grid": {"C": c}, "learned": [2 * x / (x + 3) + 0.01 for x in c],
        "distilled": [2 * x / (x + 3) for x in c]}))
    page = _report(run_copy, tmp_path)
    section = page[page.index(f'id="{child}"') if f'id="{child}"' in page else 0:]
    assert "<h3>Distillation</h3>" in section
    assert "2*C/(C + 3)" in section and "loss against C" in section
    assert f">{parent}</a>" in section and "<svg" in section
    (folder / "distill.json").write_text(json.dumps({"learned": ["x"], "distilled": {}}))
    page = _report(run_copy, tmp_path)
    assert "distill.json: learned[0] must be a number or null, not the string" in page
