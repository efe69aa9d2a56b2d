"""Checks shared by the report and app tests: what the HTML *is*, not what it contains as
text. Parsing catches an injection however it is spelled, where a substring test would
only catch the spelling we thought of."""

from __future__ import annotations

from html.parser import HTMLParser

SCRIPT = "</script><script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


class _Audit(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self.problems.append("script element")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>")
            if name in ("src", "href") and value and value.lower().lstrip().startswith(
                    "javascript:"):
                self.problems.append(f"javascript URL on <{tag}>")
        if tag == "img":
            src = dict(attrs).get("src") or ""
            if not src.startswith("data:image/png;base64,"):
                self.problems.append(f"img with src {src[:40]!r}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def audit(page: str) -> tuple[list[str], str]:
    """(problems found, the page's text as a browser would show it)."""
    parser = _Audit()
    parser.feed(page)
    parser.close()
    return parser.problems, "".join(parser.text)


def assert_injection_inert(page: str) -> None:
    """The injected strings are shown as text, and never appear as markup."""
    assert SCRIPT not in page and IMG not in page
    problems, text = audit(page)
    assert problems == []
    assert SCRIPT in text and IMG in text
