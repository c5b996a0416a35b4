"""The manifest's float16 copies of the chunks' vectors (the ``vec`` column of ``chunks``): a
search reads the vectors of its lexical candidates with their rows instead of asking the store.
Reached as ``Manifest.copies``; `pack` is how every write (here and the manifest's commits) keeps
a vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from semdexd.store.database import Database


def pack(vector: np.ndarray | None) -> bytes | None:
    """A vector as the manifest keeps it (float16: half the bytes; cosines move by at most ~6e-5,
    median 7e-6, against the store's float32, 100 queries x 7k chunks)."""
    return None if vector is None else np.asarray(vector, dtype=np.float16).tobytes()


class Copies:
    def __init__(self, db: Database) -> None:
        self._db = db

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors kept beside ``ids`` (float32 from float16: cosines within ~1e-4 of the
        store's); chunks written before the manifest kept them are left out (ask the store)."""
        rows = self._db.by_ids("SELECT id, vec FROM chunks WHERE id", ids, " AND vec IS NOT NULL", read=True)
        return {cid: np.frombuffer(blob, np.float16).astype(np.float32) for cid, blob in rows}

    def only_in_store(self, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` whose vector is in the store but not kept here (chunks written before
        the manifest kept them); not chunks still awaiting a vector."""
        return [r[0] for r in self._db.by_ids("SELECT id FROM chunks WHERE id", ids,
                                              " AND vec IS NULL AND embedded = 1", read=True)]

    def missing(self, after: int, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` (rowid, id) of chunks with no kept vector, rowid above ``after``, in
        rowid order (a cursor: chunks the store lacks are not returned again)."""
        with self._db.lock:
            return self._db.conn.execute("SELECT rowid, id FROM chunks WHERE rowid > ? AND vec IS NULL AND embedded = 1 "
                                         "ORDER BY rowid LIMIT ?", (after, limit)).fetchall()

    def keep(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Keep ``vectors`` beside those of their chunks that have none (chunks are unchanged:
        a row's text, hence its id and vector, never change)."""
        with self._db.transaction():
            self._db.conn.executemany("UPDATE chunks SET vec = ? WHERE id = ? AND vec IS NULL",
                                      [(pack(v), cid) for cid, v in vectors.items()])
