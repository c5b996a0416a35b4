"""HTML -> the visible text: no script/style, block elements as paragraphs, headings as ``#``.

Headings are written Markdown-style (``"## Title"``) so the chunker sees the document's structure.
Uses the standard library's tolerant ``html.parser``; never raises on malformed markup.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe"})
_BLOCK = frozenset("""
    address article aside blockquote body caption dd details dialog div dl dt fieldset figcaption
    figure footer form header hr html legend li main nav ol p pre section summary table tbody
    tfoot thead title tr ul
""".split())
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_SPACES = re.compile(r"[ \t\n\r\f\v]+")
_TRAILING = re.compile(r"[ \t]+\n")
_BLANKS = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """The visible text of ``html``: paragraphs separated by a blank line, no markup."""
    parser = _TextParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is tolerant; keep whatever was parsed if it still gives up
        pass
    return parser.text()


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._skip: list[str] = []      # open elements whose content is invisible
        self._pre = 0
        self._pending_breaks = 0        # newlines owed before the next text
        self._line_start = True

    def text(self) -> str:
        joined = _TRAILING.sub("\n", "".join(self._parts) + "\n")
        return _BLANKS.sub("\n\n", joined).strip("\n") + ("\n" if joined.strip() else "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip.append(tag)
            return
        if tag == "br":
            self._break(1)
        elif tag in _HEADINGS:
            self._break(2)
            self._emit("#" * _HEADINGS[tag] + " ", raw=True)
        elif tag in _BLOCK:
            self._break(2 if tag not in ("li", "tr", "dt", "dd") else 1)
            if tag == "li":
                self._emit("- ", raw=True)
            elif tag == "pre":
                self._pre += 1
        elif tag in ("td", "th") and not (self._line_start or self._pending_breaks):
            self._emit(" ", raw=True)

    def handle_endtag(self, tag: str) -> None:
        if self._skip and self._skip[-1] == tag:
            self._skip.pop()
            return
        if tag in _HEADINGS or tag in _BLOCK:
            self._break(2 if tag not in ("li", "tr", "dt", "dd") else 1)
            if tag == "pre" and self._pre:
                self._pre -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._emit(data, raw=bool(self._pre))

    def _break(self, newlines: int) -> None:
        if self._parts:
            self._pending_breaks = max(self._pending_breaks, newlines)

    def _emit(self, data: str, *, raw: bool) -> None:
        if not raw:
            data = _SPACES.sub(" ", data)
            if self._line_start or self._pending_breaks:
                data = data.lstrip(" ")
        if not data:
            return
        if self._pending_breaks:
            self._parts.append("\n" * self._pending_breaks)
            self._pending_breaks = 0
        self._parts.append(data)
        self._line_start = data.endswith("\n")
