"""Search hits as text: for people (grep-like blocks: ``path:start-end  score``, then numbered
lines with the query's words highlighted), programs (JSON, JSON lines, file names), editors
(``path:line:col:text``, what Vim's and Neovim's quickfix ``errorformat`` reads by default)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RESET, BOLD, DIM, MAGENTA, GREEN, YELLOW, RED = (
    "\x1b[0m", "\x1b[1m", "\x1b[2m", "\x1b[35m", "\x1b[32m", "\x1b[33m", "\x1b[31m")


def use_color(choice: str, stream: Any, env: dict[str, str] | None = None) -> bool:
    """``--color auto|always|never``; auto = a terminal, ``NO_COLOR`` unset, ``TERM`` not dumb."""
    env = dict(os.environ) if env is None else env
    if choice != "auto":
        return choice == "always"
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in env and env.get("TERM") != "dumb"


def paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{RESET}" if color else text


def one_line(text: str) -> str:
    """Whitespace runs (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def display_path(path: str, cwd: Path) -> str:
    """``path`` relative to ``cwd`` when it lies under it, else unchanged (absolute)."""
    try:
        return str(Path(path).relative_to(cwd))
    except ValueError:
        return path


def term_pattern(query: str) -> re.Pattern[str] | None:
    """Case-insensitive pattern of the query's words as the index sees them (letter/digit runs:
    ``parse_config`` highlights ``parse`` and ``config``), or None for a query without words."""
    words = sorted({w.lower() for w in re.findall(r"[^\W_]+", query)}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<![^\W_])(" + "|".join(re.escape(w) for w in words) + r")(?![^\W_])", re.IGNORECASE)


def highlight(text: str, terms: re.Pattern[str] | None, color: bool) -> str:
    """``text`` with the query's words in bold red (when ``color``)."""
    if not color or terms is None:
        return text
    return terms.sub(lambda m: f"{BOLD}{RED}{m.group(0)}{RESET}", text)


def hit_lines(hit: dict[str, Any], before: int = 0, after: int = 0) -> list[tuple[int, str]]:
    """(line number, text) to show for ``hit``: its snippet's real lines, widened by ``before``
    and ``after`` lines of context read from the file on disk (the client reads it; when it cannot,
    or the file changed since indexing, only the snippet is shown)."""
    snippet = str(hit.get("snippet", "")).split("\n")
    first = int(hit.get("snippet_line") or hit.get("start_line") or 1)
    own = [(first + i, line) for i, line in enumerate(snippet)]
    if not (before or after):
        return own
    try:
        with open(str(hit["path"]), encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except (OSError, KeyError):
        return own
    if [lines[n - 1].rstrip() if 0 < n <= len(lines) else None for n, _ in own] != [t.rstrip() for _, t in own]:
        return own  # the file changed since it was indexed: its lines no longer match
    lo, hi = max(1, first - before), min(len(lines), first + len(snippet) - 1 + after)
    return [(n, lines[n - 1]) for n in range(lo, hi + 1)]


def human(hits: Iterable[dict[str, Any]], *, color: bool, cwd: Path, query: str = "", before: int = 0,
          after: int = 0, weak: bool = False, width: int | None = None) -> list[str]:
    """Per hit, grep-like: a ``path:start-end  score`` header, then numbered real lines (``N:`` a
    line holding a query word, ``N-`` another), query words highlighted; hits separated by
    ``--``. ``weak`` hits (below the cutoff) are dimmed and marked. Lines are never cut."""
    terms = term_pattern(query)
    out: list[str] = []
    for hit in hits:
        if out:
            out.append(paint("--", DIM, color) if color else "--")
        where = f"{display_path(str(hit.get('path', '?')), cwd)}:{hit.get('start_line', '?')}-{hit.get('end_line', '?')}"
        score = f"{float(hit.get('score') or 0.0):.2f}"
        if weak:
            out.append(paint(f"{where}  {score} weak", DIM, color))
        else:
            out.append(f"{paint(where, MAGENTA, color)}  {paint(score, GREEN, color)}")
        for number, text in hit_lines(hit, before, after):
            sep = ":" if terms is not None and terms.search(text) else "-"
            if weak:
                out.append(paint(f"{number}{sep}{text}", DIM, color))
            else:
                out.append(f"{paint(str(number), GREEN, color)}{sep}{highlight(text, terms, color)}")
    return out


def files_with_matches(hits: Iterable[dict[str, Any]]) -> list[str]:
    """The hits' paths, each once, in rank order (``-l``)."""
    return list(dict.fromkeys(str(h.get("path")) for h in hits))


def jsonl(hits: Iterable[dict[str, Any]]) -> list[str]:
    """One JSON object per hit (``--jsonl``)."""
    return [json.dumps(h, ensure_ascii=False) for h in hits]


def indexing_notice(progress: dict[str, Any] | None, coverage: dict[str, Any] | None = None) -> str:
    """``indexing 120/5,000 files; results so far:``, and while vectors are being computed
    ``(meaning: 35% of 12,000 chunks; the rest by their words)``."""
    parts = []
    if progress:
        parts.append(f"indexing {int(progress.get('done', 0)):,}/{int(progress.get('total', 0)):,} files")
    if coverage:
        parts.append(f"meaning: {float(coverage.get('semantic', 0)):.0%} of {int(coverage.get('chunks', 0)):,} "
                     "chunks; the rest found by their words")
    return "; ".join(parts) + "; results so far:"


def vimgrep(hits: Iterable[dict[str, Any]]) -> list[str]:
    """``path:line:col:text`` per hit: absolute path, the snippet's first non-blank line as text.

    The line is that text's own line when the hit says where its snippet starts
    (``snippet_line``), else the hit's ``start_line``.
    """
    lines = []
    for hit in hits:
        snippet = str(hit.get("snippet", "")).splitlines()
        offset, first = next(((i, ln) for i, ln in enumerate(snippet) if ln.strip()), (0, ""))
        line = int(hit["snippet_line"]) + offset if hit.get("snippet_line") else hit.get("start_line", 1)
        col = len(first) - len(first.lstrip()) + 1
        lines.append(f"{hit.get('path')}:{line}:{col}:{first.strip()}")
    return lines


def as_json(hits: list[dict[str, Any]]) -> str:
    """The hits as one JSON array, exactly as the daemon sent them (best first)."""
    return json.dumps(hits, ensure_ascii=False)
