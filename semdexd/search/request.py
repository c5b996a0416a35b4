"""The search request (the API contract's fields) and the manifest `Filter` it stands for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from semdexd.manifest import Filter
from semdexd.search.globs import glob_regexes

MODES = ("hybrid", "semantic", "lexical")


@dataclass(frozen=True)
class SearchRequest:
    """What to look for and where. ``paths`` are absolute folders or files (OR-ed); ``globs`` and
    ``excludes`` are gitignore-style globs (see `semdexd.search.globs`); ``min_score`` (0..1) is
    the cutoff below which hits count as weak (None: the configured default)."""

    query: str
    limit: int = 10
    mode: str = "hybrid"
    paths: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    since: float | None = None                # seconds since epoch
    per_file: int = 3
    min_score: float | None = None

    def filter(self, anchors: Sequence[str] = ()) -> Filter:
        """The manifest filter; relative globs are anchored at ``paths``, else at ``anchors``."""
        roots = [str(Path(p)) if Path(p).is_dir() or not Path(p).exists() else str(Path(p).parent)
                 for p in self.paths] or list(anchors)
        globs = tuple(r for g in self.globs for r in glob_regexes(g, roots))
        excludes = tuple(r for g in self.excludes for r in glob_regexes(g, roots))
        since = int(self.since * 1e9) if self.since is not None else None
        return Filter(folders=tuple(self.paths), types=tuple(t.lstrip(".").lower() for t in self.types),
                      globs=globs, excludes=excludes, since_ns=since)
