"""Search hits as text: for people (``path:start-end  score  snippet``), programs (JSON), editors
(``path:line:col:text``, what Vim's and Neovim's quickfix ``errorformat`` reads by default)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

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


def human(hits: Iterable[dict[str, Any]], *, color: bool, width: int | None, cwd: Path) -> list[str]:
    """One line per hit: ``path:start-end  score  snippet``, cut to ``width`` columns if given."""
    lines = []
    for hit in hits:
        where = f"{display_path(str(hit.get('path', '?')), cwd)}:{hit.get('start_line', '?')}-{hit.get('end_line', '?')}"
        score = f"{float(hit.get('score') or 0.0):.3f}"
        snippet = one_line(hit.get("snippet", ""))
        if width:
            room = max(10, width - len(where) - len(score) - 4)
            snippet = snippet if len(snippet) <= room else snippet[: room - 1] + "…"
        lines.append(f"{paint(where, MAGENTA, color)}  {paint(score, GREEN, color)}  {snippet}")
    return lines


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
