"""The review app over HTTP (no browser): pages, escaping, CSRF, atomic review.json."""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import pytest
from review_helpers import SCRIPT, assert_injection_inert, audit

import mechanistic.files
from workbench.review.app import CSP, ReviewServer, candidate_url, serve_in_thread
from workbench.review.runs import approved_candidates, record_decision


@pytest.fixture
def server(run_copy: Path) -> Iterator[ReviewServer]:
    srv, thread = serve_in_thread(run_copy.parent)
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def request(server: ReviewServer, method: str, path: str, body: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    conn = http.client.HTTPConnection(host, port, timeout=10)
    data = urlencode(body).encode() if body is not None else None
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    conn.request(method, path, body=data, headers=all_headers)
    response = conn.getresponse()
    text = response.read().decode("utf-8")
    conn.close()
    return response.status, dict(response.getheaders()), text


def _ids(run: Path) -> list[str]:
    return [n["id"] for n in json.loads((run / "tree.json").read_text())["nodes"]]


def _token(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, "no CSRF field in the form"
    return match.group(1)


def test_pages_list_runs_show_the_tree_and_escape_everything(server: ReviewServer,
                                                             run_copy: Path) -> None:
    status, headers, page = request(server, "GET", "/")
    assert status == 200 and headers["Content-Security-Policy"] == CSP
    assert "script-src" not in CSP and "default-src 'none'" in CSP
    assert f'href="/runs/{run_copy.name}/"' in page
    status, _, page = request(server, "GET", f"/runs/{run_copy.name}/")
    assert status == 200
    for node_id in _ids(run_copy):
        assert f'href="{candidate_url(run_copy.name, node_id)}"' in page
    assert_injection_inert(page)
    for node_id in _ids(run_copy):
        status, headers, page = request(server, "GET", candidate_url(run_copy.name, node_id))
        assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
        problems, text = audit(page)
        assert problems == [] and node_id in text
    evil = _ids(run_copy)[0]  # the repaired one fits best
    _, _, page = request(server, "GET", candidate_url(run_copy.name, evil))
    assert_injection_inert(page)
    assert "<math>" in page and '<div class="highlight">' in page
    status, headers, css = request(server, "GET", "/static/review.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert ".highlight" in css
    status, headers, report = request(server, "GET", f"/runs/{run_copy.name}/report.html")
    assert status == 200 and "script-src" not in headers["Content-Security-Policy"]
    assert_injection_inert(report)


def test_unknown_and_traversing_paths_are_404(server: ReviewServer, run_copy: Path) -> None:
    for path in ("/runs/nope/", f"/runs/{run_copy.name}/candidates/nope",
                 f"/runs/{quote('../' + run_copy.name, safe='')}/",
                 f"/runs/{run_copy.name}/candidates/{quote('../../task.json', safe='')}",
                 "/etc/passwd"):
        status, _, page = request(server, "GET", path)
        assert status == 404, path
        assert audit(page)[0] == []


def test_review_needs_post_and_a_valid_csrf_token(server: ReviewServer,
                                                  run_copy: Path) -> None:
    first, second = _ids(run_copy)[:2]
    action = candidate_url(run_copy.name, first) + "/review"
    _, _, page = request(server, "GET", candidate_url(run_copy.name, first))
    token = _token(page)
    _, _, other_page = request(server, "GET", candidate_url(run_copy.name, second))
    other_token = _token(other_page)
    form = {"decision": "approved", "note": "fine"}
    for body in (form, {**form, "csrf": ""}, {**form, "csrf": "0" * 64},
                 {**form, "csrf": other_token}):  # a token for another form
        status, _, _ = request(server, "POST", action, body)
        assert status == 403
    status, _, _ = request(server, "GET", action + "?" + urlencode({**form, "csrf": token}))
    assert status == 404  # GET never changes state
    status, _, _ = request(server, "POST", action, {**form, "csrf": token},
                           headers={"Origin": "http://evil.example"})
    assert status == 403
    status, _, _ = request(server, "GET", "/", headers={"Host": "evil.example:80"})
    assert status == 400  # DNS rebinding: only loopback names are answered
    assert not (run_copy / "review.json").exists()

    status, _, _ = request(server, "POST", action, {**form, "csrf": token,
                                                    "decision": "maybe"})
    assert status == 400 and not (run_copy / "review.json").exists()
    status, headers, _ = request(server, "POST", action,
                                 {"decision": "approved", "note": f"ok {SCRIPT}",
                                  "csrf": token})
    assert status == 303 and headers["Location"].endswith("?saved=1")
    saved = json.loads((run_copy / "review.json").read_text())
    assert saved["candidates"][first]["decision"] == "approved"
    assert saved["candidates"][first]["note"] == f"ok {SCRIPT}"
    assert approved_candidates(run_copy) == [first]
    _, _, page = request(server, "GET", headers["Location"])
    assert_injection_inert(page)
    assert f"ok {SCRIPT}" in audit(page)[1]


def test_review_json_is_replaced_atomically(run_copy: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _ids(run_copy)
    record_decision(run_copy, ids[0], "approved", "first")
    before = (run_copy / "review.json").read_text()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(mechanistic.files.os, "replace", crash)  # the shared atomic write
    with pytest.raises(OSError):
        record_decision(run_copy, ids[1], "rejected", "second")
    monkeypatch.undo()
    # The old file is intact and no temporary file is left behind.
    assert (run_copy / "review.json").read_text() == before
    assert sorted(p.name for p in run_copy.glob(".review.json*")) == []

    # Concurrent decisions (threaded server) are all kept.
    workers = [threading.Thread(target=record_decision,
                                args=(run_copy, f"c{i}", "rejected", str(i)))
               for i in range(16)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    saved = json.loads((run_copy / "review.json").read_text())["candidates"]
    assert {f"c{i}" for i in range(16)} | {ids[0]} == set(saved)
    assert saved[ids[0]] == {"decision": "approved", "note": "first",
                             "time": saved[ids[0]]["time"]}
