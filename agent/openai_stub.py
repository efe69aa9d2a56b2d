"""A loopback HTTP server that speaks the OpenAI chat-completions protocol.

No LLM endpoint is reachable from the test machines, yet the ``--base-url`` path must be
exercised over a real socket: langchain's ChatOpenAI -> the openai client -> HTTP -> this
server -> scripted answers with ``usage`` token counts. The server records every request
body so tests can check that what went over the wire is a well-formed request.

    with serve_openai_stub(["```python\\n...\\n```"]) as (url, server):
        proposer = LLMProposer.from_base_url(url, "test-model")
        ...
        server.requests[0]["body"]["messages"]

``python -m agent.openai_stub answers.json`` serves a JSON list of answers until Ctrl-C
(handy for trying ``mmw model --agent llm --base-url`` by hand).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OpenAIStub", "StubCall", "serve_openai_stub"]

StubAnswer = str | Callable[[dict[str, Any]], str]


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


@dataclass(frozen=True)
class StubCall:
    """One chat-completions request and the usage the server reported for it."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    answer: str
    prompt_tokens: int
    completion_tokens: int


class OpenAIStub(ThreadingHTTPServer):
    """The server: scripted answers in order (or ``when_exhausted``), calls recorded."""

    daemon_threads = True

    def __init__(self, answers: Sequence[StubAnswer], when_exhausted: str | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.answers = list(answers)
        self.when_exhausted = when_exhausted
        self.calls: list[StubCall] = []
        self.bad_requests: list[str] = []
        self._served = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """What arrived, as ``{"path", "body", "headers"}`` dicts in order."""
        return [{"path": c.path, "body": c.body, "headers": c.headers} for c in self.calls]

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.calls)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.calls)

    def _answer(self, body: dict[str, Any]) -> str | None:
        with self._lock:
            index = self._served
            self._served += 1
            if index < len(self.answers):
                answer = self.answers[index]
            elif self.when_exhausted is not None:
                answer = self.when_exhausted
            else:
                return None
        return answer(body) if callable(answer) else str(answer)

    def _record(self, call: StubCall) -> None:
        with self._lock:
            self.calls.append(call)


def _problem(body: Any) -> str | None:
    """Why a body is not a chat-completions request, or None."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'model' must be a non-empty string"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
                "system", "developer", "user", "assistant", "tool"):
            return f"messages[{i}] needs a role of system, developer, user, assistant or tool"
        if not isinstance(message.get("content"), str | list):
            return f"messages[{i}] needs content"
    return None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .calls
        return

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self.server.bad_requests.append(message)
        self._send(status, {"error": {"message": message, "type": kind, "param": None,
                                      "code": None}})

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [
                {"id": "test-model", "object": "model", "created": 0, "owned_by": "mmw"}]})
        else:
            self._error(404, f"no route {self.path}", "not_found_error")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._error(404, f"no route {self.path}; this stub serves /v1/chat/completions",
                        "not_found_error")
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._error(400, "the request body is not valid JSON")
            return
        problem = _problem(body)
        if problem is not None:
            self._error(400, problem)
            return
        if body.get("stream"):
            self._error(400, "this stub does not stream; send stream=false")
            return
        answer = self.server._answer(body)
        if answer is None:
            # 400, not 5xx: the client must not retry a script that has run out
            self._error(400, f"the stub has no scripted answer left (script has "
                             f"{len(self.server.answers)})")
            return
        prompt_tokens = sum(_tokens(_content_text(m.get("content", "")))
                            for m in body["messages"])
        completion_tokens = _tokens(answer)
        headers = {k.lower(): v for k, v in self.headers.items()
                   if k.lower() in ("content-type", "authorization", "user-agent")}
        self.server._record(StubCall(self.path, body, headers, answer, prompt_tokens,
                                     completion_tokens))
        index = len(self.server.calls)
        self._send(200, {
            "id": f"chatcmpl-stub-{index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": None,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })


@contextmanager
def serve_openai_stub(answers: Sequence[StubAnswer], when_exhausted: str | None = None,
                      ) -> Iterator[tuple[str, OpenAIStub]]:
    """Serve ``answers`` on 127.0.0.1 at an ephemeral port; yields ``(base_url, server)``.

    An answer may be a callable of the request body (for answers that depend on the
    prompt). The server stops when the block exits.
    """
    server = OpenAIStub(answers, when_exhausted)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="openai-stub", daemon=True)
    thread.start()
    try:
        yield server.url, server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m agent.openai_stub ANSWERS.json  (a JSON list of strings)",
              file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as handle:
        answers = json.load(handle)
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        print(f"{args[0]}: expected a JSON list of answer strings", file=sys.stderr)
        return 2
    with serve_openai_stub(answers) as (url, server):
        print(f"serving {len(answers)} scripted answers at {url} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            print(f"served {len(server.calls)} call(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
