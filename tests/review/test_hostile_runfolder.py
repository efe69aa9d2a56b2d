"""Hostile run folders under review: host files never reach a report or the app, a FIFO
never hangs them, a file of the wrong shape is a message on the page, and the app's own
inputs (Host, form body, query string) are parsed against limits.

Each case starts from a known-good run written by hand (hostile_helpers.make_run) and
applies one attack. Marked ``hostile``: ``pytest -m hostile`` runs the corpus alone.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hostile_helpers import PNG, SECRET, fifo, make_run, outside, passwd_line, within
from review_helpers import audit
from typer.testing import CliRunner

from workbench.review.app import ReviewServer, candidate_url, serve_in_thread
from workbench.review.report import render_report
from workbench.review.runs import load_run

pytestmark = pytest.mark.hostile


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "runs" / "r1")


@pytest.fixture
def server(run: Path) -> Iterator[ReviewServer]:
    srv, thread = serve_in_thread(run.parent)
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def request(server: ReviewServer, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, str]:
    address = urlsplit(server.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    conn.request(method, path, body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
    response = conn.getresponse()
    text = response.read().decode("utf-8", "replace")
    conn.close()
    return response.status, text


def raw_request(server: ReviewServer, data: bytes) -> bytes:
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def approve(server: ReviewServer, run_name: str, candidate: str, body: bytes | None = None
            ) -> int:
    action = f"{candidate_url(run_name, candidate)}/review"
    form = body or (f"csrf={server.csrf_token(action)}&decision=approved&note=ok").encode()
    status, _ = request(server, "POST", action, form)
    return status


def assert_no_leak(page: str) -> str:
    problems, text = audit(page)
    assert problems == []
    assert SECRET not in page
    line = passwd_line()
    assert line is None or line not in page
    return text


def report_text(run: Path) -> str:
    return assert_no_leak(within(20, lambda: render_report(load_run(run))))


# ------------------------------------------------------------------------------- links
LINKS = {  # where the link is in the run -> what it points to (in the outside folder)
    "sgnn": "folder", "candidates/evil": "folder", "counterfactuals/evil": "folder",
    "candidates/good1/fit.json": "/etc/passwd", "candidates/good1/checks.json": "secret.json",
    "candidates/good1/simulator.py": "secret.txt", "candidates/good1/fit.png": "secret.png",
    "counterfactuals/dose/counterfactual.csv": "secret.csv",
    "counterfactuals/dose/interventions.json": "secret.json",
    "trajectory.jsonl": "secret.json", "tree.json": "secret.json", "data.csv": "secret.csv",
    "sgnn/metrics.json": "secret.txt", "review.json": "secret.json",
}


@pytest.mark.parametrize("where", sorted(LINKS))
def test_a_link_in_the_run_is_never_followed(run: Path, tmp_path: Path, where: str) -> None:
    target = LINKS[where]
    source = Path(target) if target.startswith("/") else outside(tmp_path) / target
    link = run / where
    if link.is_dir():
        import shutil

        shutil.rmtree(link)
    link.unlink(missing_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(source)
    text = report_text(run)
    assert "symbolic link" in text and where.split("/")[-1] in text


def test_the_app_shows_no_host_file_through_links(run: Path, tmp_path: Path,
                                                  server: ReviewServer) -> None:
    secrets = outside(tmp_path)
    (run / "candidates" / "good1" / "fit.json").unlink()
    (run / "candidates" / "good1" / "fit.json").symlink_to("/etc/passwd")
    (run / "candidates" / "evil").symlink_to(secrets / "folder")
    (run / "sgnn" / "leak.txt").symlink_to(secrets / "secret.txt")
    for path in ("/", f"/runs/{run.name}/", candidate_url(run.name, "good1"),
                 f"/runs/{run.name}/report.html"):
        status, page = request(server, "GET", path)
        assert status == 200, path
        assert_no_leak(page)
    status, _ = request(server, "GET", candidate_url(run.name, "evil"))
    assert status == 404


@pytest.mark.parametrize("data", ["/etc/passwd", "ABS", "../../outside/secret.csv",
                                  "sub/../../../outside/secret.csv", ""])
def test_a_data_path_outside_the_run_is_refused(run: Path, tmp_path: Path, data: str) -> None:
    secrets = outside(tmp_path)
    task = json.loads((run / "task.json").read_text())
    task["data"] = str(secrets / "secret.csv") if data == "ABS" else data
    (run / "task.json").write_text(json.dumps(task))
    text = report_text(run)
    assert "must be a path inside" in text and "Data: 0 rows" in text


# ------------------------------------------------------------------------------- FIFOs
FIFOS = ["data.csv", "trajectory.jsonl", "tree.json", "review.json",
         "candidates/good1/fit.json", "candidates/good1/fit.png",
         "candidates/good1/simulator.py", "counterfactuals/dose/counterfactual.csv",
         "sgnn/metrics.json"]


@pytest.mark.parametrize("where", FIFOS)
def test_a_fifo_is_refused_promptly_by_the_report(run: Path, where: str) -> None:
    pipe = fifo(run / where)
    page = within(10, lambda: render_report(load_run(run)), [pipe])
    text = assert_no_leak(page)
    assert "not a regular file" in text


def test_a_fifo_is_refused_promptly_by_the_app(run: Path, server: ReviewServer) -> None:
    pipes = [fifo(run / "data.csv"), fifo(run / "candidates" / "good1" / "fit.json")]
    for path, says in (("/", "2 file(s) could not be used"),
                       (f"/runs/{run.name}/", "not a regular file"),
                       (candidate_url(run.name, "good1"), "not a regular file")):
        status, page = within(10, lambda p=path: request(server, "GET", p), pipes)
        assert status == 200 and says in audit(page)[1]


# ---------------------------------------------------------------------- wrong JSON types
DEEP = "[" * 100_000 + "]" * 100_000
SHAPES = [  # (file, content, what the page says)
    ("tree.json", {"nodes": "abc"}, "nodes must be an array"),
    ("tree.json", {"nodes": [["good1"]]}, "nodes[0] must be a node object"),
    ("tree.json", {"nodes": [{"id": "good1", "validation_error": "0.5"}]},
     "nodes[0].validation_error must be a number or null, not the string '0.5'"),
    ("tree.json", {"nodes": [{"id": "../../etc"}]}, "is not a candidate id"),
    ("tree.json", {"nodes": [{"id": "good1", "repairs": "1"}]}, "nodes[0].repairs must be"),
    ("tree.json", '{"nodes": [], "nodes": []}', "appears twice"),
    ("tree.json", DEEP, "nested deeper"),
    ("tree.json", "[1, 2]", "must be a tree object"),
    ("candidates/good1/node.json", [1, 2], "must be a node object"),
    ("candidates/good1/node.json", {"id": "good1", "status": 3}, "status must be a string"),
    ("candidates/good1/node.json", {"id": "good1", "candidate": "x"}, "candidate must be"),
    ("candidates/good1/fit.json", {"params": 3}, "params must be an object"),
    ("candidates/good1/fit.json", {"params": {"k": "0.2"}}, "params['k'] must be a number"),
    ("candidates/good1/fit.json", {"train_residuals": {"x": [1]}}, "a residual summary"),
    ("candidates/good1/fit.json", '{"aic": 1e999}', "out of range"),
    ("candidates/good1/checks.json", {"name": "x"}, "must be an array of a check object"),
    ("candidates/good1/checks.json", [{"passed": "yes"}], "[0].passed must be true or false"),
    ("candidates/good1/distill.json", {"learned": "abc"}, "learned must be an array"),
    ("review.json", {"candidates": []}, "candidates must be an object"),
    ("review.json", {"candidates": {"good1": {"decision": "maybe"}}}, "must be one of"),
    ("review.json", {"candidates": {"good1": "approved"}}, "must be a decision object"),
    ("task.json", {"train_until": "20"}, "train_until must be a number"),
    ("task.json", [], "must be a task object"),
    ("counterfactuals/dose/interventions.json", {"interventions": {}}, "must be an array"),
    ("trajectory.jsonl", DEEP + "\n[]\n", "trajectory"),
]


@pytest.mark.parametrize(("where", "content", "message"), SHAPES,
                         ids=[f"{w}:{m[:30]}" for w, _, m in SHAPES])
def test_a_file_of_the_wrong_shape_is_a_message_on_the_page(run: Path, where: str,
                                                            content: object,
                                                            message: str) -> None:
    (run / where).write_text(content if isinstance(content, str) else json.dumps(content))
    text = report_text(run)
    assert message in text


@pytest.mark.parametrize(("where", "content", "message"), SHAPES[::4],
                         ids=[f"{w}:{m[:30]}" for w, _, m in SHAPES[::4]])
def test_the_app_shows_a_bad_file_as_a_message(run: Path, server: ReviewServer, where: str,
                                               content: object, message: str) -> None:
    (run / where).write_text(content if isinstance(content, str) else json.dumps(content))
    shown = ""
    for path in ("/", f"/runs/{run.name}/", candidate_url(run.name, "good1")):
        status, page = request(server, "GET", path)
        assert status == 200, (path, page[:300])
        problems, text = audit(page)
        assert problems == []
        shown += text
    assert message in shown


# ------------------------------------------------------------------- writes and the app
def test_a_linked_run_is_not_served_and_cannot_be_approved(run: Path, tmp_path: Path) -> None:
    elsewhere = make_run(tmp_path / "elsewhere" / "victim")
    (run.parent / "linked").symlink_to(elsewhere)
    srv, thread = serve_in_thread(run.parent)
    try:
        status, page = request(srv, "GET", "/")
        assert status == 200 and 'href="/runs/r1/"' in page and "/runs/linked/" not in page
        assert request(srv, "GET", "/runs/linked/")[0] == 404
        assert approve(srv, "linked", "good1") == 404
        assert not (elsewhere / "review.json").exists()
        assert approve(srv, "r1", "good1") == 303  # the real run still takes decisions
        assert json.loads((run / "review.json").read_text())["candidates"]["good1"]
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_approving_never_writes_through_a_link(run: Path, tmp_path: Path,
                                               server: ReviewServer) -> None:
    secrets = outside(tmp_path)
    (run / "candidates" / "evil").symlink_to(secrets / "folder")
    assert approve(server, run.name, "evil") == 404
    assert not (run / "review.json").exists()
    (run / "review.json").symlink_to(secrets / "secret.json")
    before = (secrets / "secret.json").read_text()
    assert approve(server, run.name, "good1") == 409  # unreadable review.json: not replaced
    assert (secrets / "secret.json").read_text() == before
    assert (run / "review.json").is_symlink()


@pytest.mark.parametrize("host", [b"[", b"[::1", b"a]b[", b"\xff\xfe", b"localhost:abc"])
def test_a_malformed_host_is_a_400(server: ReviewServer, host: bytes) -> None:
    answer = raw_request(server, b"GET / HTTP/1.1\r\nHost: " + host +
                         b"\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize("body", [
    "csrf=TOKEN&decision=approved&decision=rejected",  # which one was meant?
    "csrf=TOKEN&csrf=TOKEN&decision=approved",
    "csrf=TOKEN&decision=approved&" + "&".join(f"f{i}=1" for i in range(20)),
    "csrf=TOKEN&decision=approved&note=%ff%fe",  # not UTF-8
    "csrf=TOKEN&decision=approved&note=" + "x" * 10_001,
])
def test_a_malformed_form_is_a_400_and_nothing_is_written(run: Path, server: ReviewServer,
                                                          body: str) -> None:
    action = f"{candidate_url(run.name, 'good1')}/review"
    form = body.replace("TOKEN", server.csrf_token(action)).encode()
    assert approve(server, run.name, "good1", form) == 400
    assert not (run / "review.json").exists()
    status, _ = request(server, "POST", action, b"\xff" * 100)
    assert status in (400, 403) and not (run / "review.json").exists()


@pytest.mark.parametrize("query", ["saved=1&saved=2", "x=" + "a" * 3000,
                                   "&".join(f"q{i}=1" for i in range(20)), "saved=%ff"])
def test_a_malformed_query_string_is_a_400(run: Path, server: ReviewServer,
                                           query: str) -> None:
    status, page = request(server, "GET", f"{candidate_url(run.name, 'good1')}?{query}")
    assert status == 400 and audit(page)[0] == []
    assert request(server, "GET", f"{candidate_url(run.name, 'good1')}?saved=1")[0] == 200


def test_a_malformed_origin_is_refused(run: Path, server: ReviewServer) -> None:
    action = f"{candidate_url(run.name, 'good1')}/review"
    form = f"csrf={server.csrf_token(action)}&decision=approved".encode()
    status, _ = request(server, "POST", action, form, {"Origin": "http://["})
    assert status == 403 and not (run / "review.json").exists()


# ----------------------------------------------------------------------------- the CLI
def test_the_review_command_renders_a_hostile_run(run: Path, tmp_path: Path) -> None:
    from workbench.cli import app

    secrets = outside(tmp_path)
    (run / "sgnn").rename(tmp_path / "sgnn-moved")
    (run / "sgnn").symlink_to(secrets / "folder")
    fifo(run / "data.csv")
    (run / "tree.json").write_text('{"nodes": "abc"}')
    (run / "candidates" / "good1" / "fit.png").write_bytes(PNG)
    out = tmp_path / "report.html"
    result = within(20, lambda: CliRunner().invoke(app, ["review", str(run), "--html",
                                                         str(out)]), [run / "data.csv"])
    assert result.exit_code == 0, result.output
    assert "file(s) of" in result.output and "could not be used" in result.output
    text = assert_no_leak(out.read_text())
    assert "nodes must be an array" in text and "not a regular file" in text


# ------------------------------------------------------------------------ host bounds
def test_a_huge_run_costs_bounded_time_and_memory(run: Path, monkeypatch) -> None:
    """Each file is bounded on its own and the run's candidate files in all: past the
    total, candidates are listed but not read; code past the page's colouring budget is
    shown plain; a module too long to compare is not diffed."""
    import shutil
    import time
    import tracemalloc

    import workbench.review.runs as runs

    monkeypatch.setattr(runs, "READ_BUDGET", 1024 * 1024)
    big = {"params": {"k": 0.2}, "padding": [[1.5, None, "ab"]] * 15_000}  # ~0.25 MB
    source = "x = 1  # a long generated module\n" * 4_000  # 132 kB: past the limits
    for i in range(6):
        folder = run / "candidates" / f"c{i}"
        shutil.copytree(run / "candidates" / "good1", folder)
        (folder / "fit.json").write_text(json.dumps(big))
        (folder / "simulator.py").write_text(source)
        node = json.loads((folder / "node.json").read_text())
        node["candidate"]["parent"] = node["parent"] = "good1"
        (folder / "node.json").write_text(json.dumps(node))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        text = report_text(run)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 15 and peak < 400 * 1024 * 1024, (seconds, peak)
    assert "not read; the run's files are more than the review reads in all" in text
    assert "not compared: a module over" in text
