"""``mmw review --serve``: the review views as a local web app, with approve / reject.

Standard library only (``http.server``): the app is a handful of routes, and a framework
would be one more thing to install on a scientist's laptop. Safety, since the pages show
text written by an LLM and the server can write to disk:

* binds 127.0.0.1 by default, and then answers only requests whose ``Host`` names a
  loopback address (a DNS-rebinding page cannot drive it);
* every page is HTML-escaped (see render.py) and sent with a Content-Security-Policy that
  allows no script at all, only our stylesheet, ``data:`` images and same-origin forms;
* the one state-changing route is POST only and needs a CSRF token: an HMAC of the route
  under a per-server random secret, sent in a hidden form field and compared in constant
  time; a missing or wrong token is a 403 and nothing is written;
* runs and candidates are looked up by name in listings of the served folder, never
  joined into paths from the URL; a run entry that is a symbolic link is not listed, so
  neither reads nor the ``review.json`` written can leave the served folder;
* request inputs are untrusted data too: the form body and the query string are parsed
  by ``mechanistic.untrusted.parse_form`` (size, field count and length bounded, strict
  UTF-8, a field given twice refused), a malformed ``Host`` is a 400, and an error while
  answering is an error page, never a dropped connection or a traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from mechanistic.errors import UntrustedDataError
from mechanistic.untrusted import parse_form
from workbench.review.candidate import candidate_section
from workbench.review.render import REPORT_CSP, badge, esc, page, review_css, run_sections
from workbench.review.report import render_report
from workbench.review.runs import (
    DECISIONS,
    NOTE_LIMIT,
    find_runs,
    has_candidate,
    load_run,
    record_decision,
)

__all__ = ["CSP", "ReviewServer", "make_server", "serve_in_thread"]

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
BODY_LIMIT = 64 * 1024
QUERY_LIMIT = 2048
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ReviewServer(ThreadingHTTPServer):
    """The HTTP server, carrying what handlers need: the folder and the CSRF secret."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], runs_dir: Path, *, quiet: bool = False
                 ) -> None:
        super().__init__(address, _Handler)
        self.runs_dir = Path(runs_dir)
        self.quiet = quiet
        self.loopback_only = address[0] in _LOOPBACK or address[0].startswith("127.")
        self._secret = secrets.token_bytes(32)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def csrf_token(self, action: str) -> str:
        """The token for one form action: valid only on this server, only for that route."""
        return hmac.new(self._secret, action.encode("utf-8"), hashlib.sha256).hexdigest()

    def csrf_ok(self, action: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(action).encode(),
                                                   str(token).encode("utf-8", "replace"))


def run_url(run: str) -> str:
    return f"/runs/{quote(run, safe='')}/"


def candidate_url(run: str, candidate_id: str) -> str:
    return f"/runs/{quote(run, safe='')}/candidates/{quote(candidate_id, safe='')}"


def _netloc(url: str) -> str | None:
    """The host:port of an Origin header; None for one that is not a URL."""
    try:
        return urlsplit(url).netloc
    except ValueError:
        return None


def _crumbs(run: str | None = None, candidate: str | None = None) -> str:
    parts = ['<a class="crumb" href="/">runs</a>']
    if run is not None:
        parts.append(f'<a class="crumb" href="{esc(run_url(run))}">{esc(run)}</a>')
    if candidate is not None:
        parts.append(f'<span class="crumb">{esc(candidate)}</span>')
    return "".join(parts)


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "mmw-review"
    sys_version = ""
    timeout = 30  # a client that stops sending mid-request does not hold a thread forever

    # ----------------------------------------------------------------- plumbing
    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: str | bytes, content_type: str = "text/html",
              headers: dict[str, str] | None = None, csp: str = CSP) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Security-Policy", csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: HTTPStatus, message: str) -> None:
        body = page(f"{status.value} {status.phrase}",
                    f"<h1>{status.value} {esc(status.phrase)}</h1><p>{esc(message)}</p>",
                    inline_css=False, crumbs=_crumbs())
        self._send(status.value, body)

    def _host_ok(self) -> bool:
        if not self.server.loopback_only:
            return True
        try:  # "Host: [" is not a host: urlsplit raises, and that is a 400, not a crash
            parts = urlsplit("//" + (self.headers.get("Host") or ""))
            host, _ = parts.hostname or "", parts.port  # .port raises for "localhost:abc"
        except ValueError:
            return False
        return host in _LOOPBACK

    def _answer(self, handle: Callable[[], None]) -> None:
        """Run a verb's handler; whatever goes wrong becomes an error page (the reviewer
        sees why, the connection gets an answer), never a traceback on the wire."""
        try:
            handle()
        except FileNotFoundError as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except UntrustedDataError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except TimeoutError:  # the client stopped sending: http.server closes the connection
            raise
        except Exception as exc:  # the page says what failed; the log has it
            self.log_error("error answering %s: %r", self.path[:200], exc)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR,
                        f"the page could not be made ({type(exc).__name__})")

    def _query(self) -> dict[str, str]:
        return parse_form(urlsplit(self.path).query, "query string", max_bytes=QUERY_LIMIT,
                          max_fields=8, max_value=200)

    def _route(self) -> list[str]:
        return [unquote(p) for p in urlsplit(self.path).path.split("/") if p]

    # ------------------------------------------------------------------- verbs
    def do_GET(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.BAD_REQUEST, "unexpected Host header")
        self._answer(lambda: self._get(self._route()))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.BAD_REQUEST, "unexpected Host header")
        self._answer(self._post)

    def _post(self) -> None:
        origin = self.headers.get("Origin")
        if origin and origin != "null" and _netloc(origin) != self.headers.get("Host"):
            return self._error(HTTPStatus.FORBIDDEN, "cross-origin request refused")
        parts = self._route()
        if len(parts) != 5 or parts[0] != "runs" or parts[2] != "candidates" or \
                parts[4] != "review":
            return self._error(HTTPStatus.NOT_FOUND, "no such form")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self._error(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        if length < 0 or length > BODY_LIMIT:
            return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "form too large")
        form = parse_form(self.rfile.read(length), "review form", max_bytes=BODY_LIMIT,
                          max_fields=8, max_value=NOTE_LIMIT)
        field = form.get
        run_name, candidate_id = parts[1], parts[3]
        action = f"{candidate_url(run_name, candidate_id)}/review"
        if not self.server.csrf_ok(action, field("csrf")):
            return self._error(HTTPStatus.FORBIDDEN, "missing or invalid CSRF token")
        root = find_runs(self.server.runs_dir).get(run_name)
        if root is None or not has_candidate(root, candidate_id):
            return self._error(HTTPStatus.NOT_FOUND, "no such run or candidate")
        decision, note = field("decision") or "", field("note") or ""
        if decision not in DECISIONS or len(note) > NOTE_LIMIT:
            return self._error(HTTPStatus.BAD_REQUEST,
                               f"decision must be one of {', '.join(DECISIONS)}; "
                               f"note at most {NOTE_LIMIT} characters")
        try:
            record_decision(root, candidate_id, decision, note)
        except (UntrustedDataError, OSError) as exc:
            return self._error(HTTPStatus.CONFLICT, f"the decision was not saved: {exc}")
        self._send(HTTPStatus.SEE_OTHER.value, "", headers={
            "Location": candidate_url(run_name, candidate_id) + "?saved=1"})

    # ------------------------------------------------------------------- pages
    def _get(self, parts: list[str]) -> None:
        if not parts:
            return self._send(200, self._runs_page())
        if parts == ["static", "review.css"]:
            return self._send(200, review_css(), "text/css")
        if parts[0] == "runs" and len(parts) >= 2:
            root = find_runs(self.server.runs_dir).get(parts[1])
            if root is None:
                raise FileNotFoundError(f"no run named {parts[1]!r} here")
            if len(parts) == 2:
                return self._send(200, self._run_page(parts[1], root))
            if parts[2:] == ["report.html"]:
                # The report inlines its stylesheet, so it gets its own (still script-free) policy.
                return self._send(200, render_report(load_run(root)), csp=REPORT_CSP)
            if len(parts) == 4 and parts[2] == "candidates":
                saved = self._query().get("saved") == "1"
                return self._send(200, self._candidate_page(parts[1], root, parts[3], saved))
        raise FileNotFoundError("no such page")

    def _runs_page(self) -> str:
        runs = find_runs(self.server.runs_dir)
        items = []
        for name, root in runs.items():
            try:
                run = load_run(root)
            except (FileNotFoundError, UntrustedDataError):
                continue
            decided = sum(1 for c in run.candidates if c in run.reviews)
            flagged = f", {run.unread} file(s) could not be used" if run.unread else ""
            description = str(run.task.get("description", "")).strip().splitlines() or [""]
            items.append(
                f'<li><a href="{esc(run_url(name))}">{esc(name)}</a> '
                f'<span class="muted">{len(run.candidates)} candidates, {decided} reviewed, '
                f'best {esc(run.tree.get("best") or "-")}{esc(flagged)}</span>'
                f'<div class="note">{esc(description[0][:200])}</div></li>')
        body = (f"<h1>Runs in {esc(self.server.runs_dir)}</h1>"
                + (f'<section><ul class="runs">{"".join(items)}</ul></section>' if items else
                   '<p class="muted">no run folders (with a task.json) here</p>'))
        return page("mmw review: runs", body, inline_css=False, crumbs=_crumbs())

    def _run_page(self, name: str, root: Path) -> str:
        run = load_run(root)
        link: Callable[[str], str] = lambda cid: candidate_url(name, cid)  # noqa: E731
        body = (f"<h1>Run {esc(name)}</h1><p><a href=\"{esc(run_url(name))}report.html\">"
                f"the whole run as one page</a> (save it as a self-contained report)</p>"
                + run_sections(run, link))
        return page(f"mmw review: {name}", body, inline_css=False, crumbs=_crumbs(name))

    def _candidate_page(self, name: str, root: Path, candidate_id: str, saved: bool) -> str:
        run = load_run(root)
        cand = run.candidates.get(candidate_id)
        if cand is None:
            raise FileNotFoundError(f"no candidate {candidate_id!r} in run {name!r}")
        order = [n["id"] for n in run.nodes if n["id"] in run.candidates]
        i = order.index(candidate_id)
        nav = []
        if i > 0:
            nav.append(f'<a href="{esc(candidate_url(name, order[i - 1]))}">← previous</a>')
        if i + 1 < len(order):
            nav.append(f'<a href="{esc(candidate_url(name, order[i + 1]))}">next →</a>')
        body = (f'<p class="muted">candidate {i + 1} of {len(order)} (best first) '
                f"{' · '.join(nav)}</p>"
                + self._review_form(name, candidate_id, run.reviews.get(candidate_id), saved)
                + candidate_section(run, cand, lambda cid: candidate_url(name, cid),
                                    heading="h1"))
        return page(f"mmw review: {cand.structure}", body, inline_css=False,
                    crumbs=_crumbs(name, candidate_id))

    def _review_form(self, name: str, candidate_id: str, entry: dict[str, Any] | None,
                     saved: bool) -> str:
        action = f"{candidate_url(name, candidate_id)}/review"
        current = (f"{badge(entry.get('decision'))} <span class=\"muted\">"
                   f"{esc(entry.get('time'))}</span>" if entry else
                   '<span class="muted">not reviewed yet</span>')
        flash = '<p class="flash" id="saved">Decision saved to review.json.</p>' if saved else ""
        note = esc(entry.get("note", "")) if entry else ""
        return (f'{flash}<form class="review" method="post" action="{esc(action)}">'
                f"<h2>Review</h2><p>Current decision: <span id=\"decision\">{current}</span>"
                f'</p><input type="hidden" name="csrf" value="'
                f'{esc(self.server.csrf_token(action))}">'
                f'<label for="note">Note</label><textarea id="note" name="note" '
                f'maxlength="{NOTE_LIMIT}">{note}</textarea><div class="buttons">'
                f'<button class="approve" type="submit" name="decision" value="approved">'
                f'Approve</button><button class="reject" type="submit" name="decision" '
                f'value="rejected">Reject</button></div></form>')


def make_server(runs_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, *,
                quiet: bool = False) -> ReviewServer:
    """A bound, not yet serving server (port 0 picks a free one: see ``server.url``)."""
    return ReviewServer((host, port), Path(runs_dir), quiet=quiet)


def serve_in_thread(runs_dir: str | Path, host: str = "127.0.0.1", port: int = 0, *,
                    quiet: bool = True) -> tuple[ReviewServer, threading.Thread]:
    """Start a server on a background thread (tests, notebooks); stop it with
    ``server.shutdown(); server.server_close()``."""
    server = make_server(runs_dir, host, port, quiet=quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="mmw-review", daemon=True)
    thread.start()
    return server, thread
