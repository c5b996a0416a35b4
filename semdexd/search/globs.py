"""Path globs with gitignore semantics (``**``, anchoring), as regexes over absolute paths.

A glob is matched like a ``.gitignore`` line (pathspec's gitignore patterns): ``*.md`` matches at
any depth, ``src/**/*.py`` matches ``src/a.py`` and ``src/x/y/a.py``, ``travel/*.md`` matches
``travel/rome.md`` but not ``notravel/x.md``. A glob starting with ``/`` is absolute. A relative
glob is anchored at each of ``anchors`` (the searched folders): the result is one regex per anchor,
any of which may match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pathspec.patterns.gitignore.basic import GitIgnoreBasicPattern


class GlobError(ValueError):
    """A glob that cannot be used (empty, or a negation)."""


def glob_regexes(glob: str, anchors: Sequence[str]) -> list[str]:
    """Regexes over absolute paths for ``glob`` anchored at each of ``anchors`` (absolute folders)."""
    glob = glob.strip()
    if not glob or glob.startswith("!"):
        raise GlobError(f"not a usable glob: {glob!r}")
    if glob.startswith("/"):
        roots = ["/"]
        glob = glob.lstrip("/")
    else:
        roots = [a.rstrip("/") + "/" for a in anchors] or ["/"]
    regex, include = GitIgnoreBasicPattern.pattern_to_regex(glob)
    if regex is None or not include:
        raise GlobError(f"not a usable glob: {glob!r}")
    assert regex.startswith("^")
    return [f"^{re.escape(root)}{regex[1:]}" for root in dict.fromkeys(roots)]
