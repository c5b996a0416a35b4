"""What a search `Filter` lets through, asked of the manifest: its SQL condition (over ``files``
aliased ``f``) run on the thread's reading connection (`Database.reader`). Reached as
``Manifest.filtered``."""

from __future__ import annotations

from collections.abc import Sequence

from semdexd.store.database import Database
from semdexd.store.filter import Filter


class Filtered:
    def __init__(self, db: Database) -> None:
        self._db = db

    def ids_passing(self, ids: Sequence[str], where: Filter) -> set[str]:
        """Those of ``ids`` whose chunk passes ``where``."""
        cond, args = where.sql()
        rows = self._db.by_ids("SELECT c.id FROM chunks c JOIN files f ON f.path = c.path WHERE c.id", ids,
                               f" AND {cond}", args, read=True)
        return {r[0] for r in rows}

    def chunk_ids(self, where: Filter, limit: int) -> list[str] | None:
        """Ids of chunks passing ``where``, or None when more than ``limit`` do (filter not selective)."""
        cond, args = where.sql()
        rows = self._db.reader().execute(
            f"SELECT c.id FROM chunks c JOIN files f ON f.path = c.path WHERE {cond} LIMIT ?",
            [*args, limit + 1]).fetchall()
        return None if len(rows) > limit else [r[0] for r in rows]

    def any_file(self, where: Filter) -> bool:
        """Whether at least one indexed file passes ``where``."""
        cond, args = where.sql()
        row = self._db.reader().execute(
            f"SELECT 1 FROM files f WHERE f.status = 'indexed' AND {cond} LIMIT 1", args).fetchone()
        return row is not None
