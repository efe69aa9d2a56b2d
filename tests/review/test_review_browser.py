"""The review app and report in a real headless Chromium (Debian's, driven by Playwright;
no browser download). A reviewer's path: open a run, read a candidate's equations and
code, approve it with a note, reload, find the decision kept in review.json. Screenshots
of the main pages go to ``$MMW_ARTIFACTS/review`` (CI) or a temporary folder.

These run in CI: there (``CI=true`` or ``MMW_REQUIRE_BROWSER=1``, which .ci/run sets) a
missing Chromium or Playwright fails the test; elsewhere it skips.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from review_helpers import IMG, SCRIPT
from typer.testing import CliRunner

from workbench.cli import app
from workbench.review.app import candidate_url, serve_in_thread

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true" or os.environ.get("MMW_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests must run in CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = os.environ.get("MMW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        _unavailable("no chromium (apt-get install chromium)")
    return path


@pytest.fixture
def browser_page(chromium: str, tmp_path: Path) -> Iterator[Any]:
    """A page in a fresh headless Chromium profile; fails the test on any page dialog
    (an ``alert`` would mean injected script ran) or page error."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    events: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.on("dialog", lambda d: (events.append(f"dialog: {d.message}"), d.dismiss()))
            page.on("pageerror", lambda e: events.append(f"page error: {e}"))
            page.set_default_timeout(10_000)
            yield page
        finally:
            context.close()
    assert events == []


def test_review_a_candidate_in_the_app(browser_page: Any, run_copy: Path,
                                       artifacts_dir: Path) -> None:
    page = browser_page
    tree = json.loads((run_copy / "tree.json").read_text())
    decay = next(n["id"] for n in tree["nodes"] if n["structure"] == "first-order decay")
    server, thread = serve_in_thread(run_copy.parent)
    try:
        page.goto(server.url)
        page.screenshot(path=str(artifacts_dir / "app-runs.png"))
        page.click(f"text={run_copy.name}")
        page.wait_for_selector("table.tree")
        page.screenshot(path=str(artifacts_dir / "app-run.png"), full_page=True)
        # The injected structure name is plain text in the tree, not an element.
        assert SCRIPT in page.inner_text("table.tree")
        assert page.locator("img[src='x']").count() == 0
        page.click(f"table.tree a[href='{candidate_url(run_copy.name, decay)}']")
        page.wait_for_selector("table.equations")

        # Equations: laid out as MathML (a real box, a fraction), and readable as text.
        first = page.locator("table.equations td.rhs math").first
        box = first.bounding_box()
        assert box is not None and box["width"] > 10 and box["height"] > 5
        assert page.locator("table.equations mfrac").count() >= 1
        assert "dx/dt = -k*x" in page.text_content("pre.eq-plain")
        # Code: highlighted, and says what the equations say.
        code = page.inner_text(".code")
        assert 'm.flow(x, None, k * x, name="loss")' in code
        assert page.locator(".code .highlight span.kn").count() > 0  # pygments: keywords
        page.screenshot(path=str(artifacts_dir / "app-candidate.png"))

        page.fill("#note", "decay rate plausible; <b>checked</b> against the assay")
        page.click("button.approve")
        page.wait_for_selector("#saved")
        page.reload()
        assert page.inner_text("#decision").startswith("approved")
        assert "<b>checked</b>" in page.input_value("#note")
        page.screenshot(path=str(artifacts_dir / "app-approved.png"))
        saved = json.loads((run_copy / "review.json").read_text())["candidates"][decay]
        assert saved["decision"] == "approved"
        assert saved["note"] == "decay rate plausible; <b>checked</b> against the assay"

        # The candidate whose name, code and error carry injection: all of it as text.
        evil = next(n["id"] for n in tree["nodes"] if n["origin"] == "repair")
        page.goto(server.url.rstrip("/") + candidate_url(run_copy.name, evil))
        assert page.inner_text("h1") == f"evil {SCRIPT} {IMG}"
        assert IMG in page.inner_text(".code") and SCRIPT in page.inner_text(".code")
        assert page.locator("pre.diff span.add").count() >= 1
        assert page.locator("script").count() == 0 and page.locator("img[src='x']").count() == 0
        page.screenshot(path=str(artifacts_dir / "app-candidate-injection.png"))
        page.locator("pre.diff").evaluate("e => e.scrollIntoView()")
        page.screenshot(path=str(artifacts_dir / "app-candidate-diff.png"))
        page.click("button.reject")
        page.wait_for_selector("#saved")
        decisions = json.loads((run_copy / "review.json").read_text())["candidates"]
        assert decisions[evil]["decision"] == "rejected" and decay in decisions
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_report_file_renders_offline(browser_page: Any, built_run: Path, tmp_path: Path,
                                         artifacts_dir: Path) -> None:
    page = browser_page
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["review", str(built_run), "--html", str(out)])
    assert result.exit_code == 0, result.output
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    assert page.locator("section.candidate").count() == 3
    assert page.locator("table.equations math").first.bounding_box()["width"] > 10
    # Fit plots load from data: URIs (a broken image has naturalWidth 0).
    widths = page.eval_on_selector_all("img.plot", "els => els.map(e => e.naturalWidth)")
    assert widths and all(w > 100 for w in widths)
    assert SCRIPT in page.inner_text("#tree")
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    page.screenshot(path=str(artifacts_dir / "report-top.png"))
    page.locator("section.candidate").first.evaluate("e => e.scrollIntoView()")
    page.screenshot(path=str(artifacts_dir / "report-candidate.png"))
