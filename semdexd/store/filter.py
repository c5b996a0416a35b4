"""`Filter`: which files a search may return, as SQL over the manifest and as a Chroma `where`."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

REGEXP_SQL = "semdex_regexp"  # the SQL function `regexp` stands for (registered on each connection)


@dataclass(frozen=True)
class Filter:
    """Restrictions on which files a search may return (conditions combined with AND).

    ``folders`` are OR-ed absolute folders (or files); ``globs`` are OR-ed regular expressions
    over the absolute path (see `semdexd.search.globs`: gitignore-style globs, already anchored);
    a path matching any of ``excludes`` (same form) is left out.
    """

    folders: tuple[str, ...] = ()         # absolute folder (or file) paths, OR-ed
    types: tuple[str, ...] = ()           # file types ("py", "md", ...)
    globs: tuple[str, ...] = ()           # regexes over the absolute path, OR-ed
    excludes: tuple[str, ...] = ()        # regexes over the absolute path; any match excludes
    since_ns: int | None = None           # modified at or after (ns since epoch)

    def sql(self) -> tuple[str, list[object]]:
        """A condition over the ``files`` table aliased ``f``, and its arguments."""
        conds, args = ["1"], []  # type: tuple[list[str], list[object]]
        if self.folders:
            ors = []
            for folder in self.folders:
                prefix = folder.rstrip("/") + "/"
                ors.append("(f.path = ? OR substr(f.path, 1, ?) = ?)")
                args += [folder, len(prefix), prefix]
            conds.append("(" + " OR ".join(ors) + ")")
        if self.types:
            conds.append(f"f.file_type IN ({','.join('?' * len(self.types))})")
            args += list(self.types)
        if self.globs:
            conds.append("(" + " OR ".join(f"{REGEXP_SQL}(?, f.path)" for _ in self.globs) + ")")
            args += list(self.globs)
        for pattern in self.excludes:
            conds.append(f"NOT {REGEXP_SQL}(?, f.path)")
            args.append(pattern)
        if self.since_ns is not None:
            conds.append("f.mtime_ns >= ?")
            args.append(self.since_ns)
        return " AND ".join(conds), args

    def chroma_where(self) -> dict[str, Any] | None:
        """The part of the filter Chroma can apply itself (folders and types, over the metadata
        `semdexd.store.vectors.chunk_metadata` writes), or None when there is none."""
        conds: list[dict[str, Any]] = []
        if self.folders:
            ors: list[dict[str, Any]] = []
            for f in self.folders:
                ors += [{"dirs": {"$contains": f}}, {"path": f}]
            conds.append({"$or": ors})
        if self.types:
            conds.append({"type": {"$in": list(self.types)}})
        if not conds:
            return None
        return conds[0] if len(conds) == 1 else {"$and": conds}

    @property
    def empty(self) -> bool:
        return not (self.folders or self.types or self.globs or self.excludes or self.since_ns is not None)


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def regexp(pattern: str, value: str) -> bool:
    """SQL ``semdex_regexp(pattern, value)``: a Python regex search (patterns are cached)."""
    return _compiled(pattern).search(value) is not None
