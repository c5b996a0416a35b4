"""The manifest `Filter` a search request stands for.

The request type itself is the API's (`semdexd.api.types.SearchRequest`): its ``paths`` are
already absolute (relative ones were resolved against the client's ``cwd``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from semdexd.api.types import MODES, SearchRequest
from semdexd.search.globs import glob_regexes
from semdexd.store.filter import Filter


def request_filter(req: SearchRequest, anchors: Sequence[str] = ()) -> Filter:
    """The manifest filter; relative globs are anchored at ``req.paths``, else at ``anchors``."""
    roots = [str(Path(p)) if Path(p).is_dir() or not Path(p).exists() else str(Path(p).parent)
             for p in req.paths] or list(anchors)
    globs = tuple(r for g in req.globs for r in glob_regexes(g, roots))
    excludes = tuple(r for g in req.excludes for r in glob_regexes(g, roots))
    since = int(req.since * 1e9) if req.since is not None else None
    return Filter(folders=tuple(req.paths), types=tuple(t.lstrip(".").lower() for t in req.types),
                  globs=globs, excludes=excludes, since_ns=since)


__all__ = ["MODES", "SearchRequest", "request_filter"]
