"""The manifest's crash journals, on its connection. Reached as ``Manifest.journal``.

* ``pending``: the chunk ids about to be written to the vector store, committed before the write.
  A commit that records their chunks clears them; after a crash, pending ids no committed chunk
  owns are deleted from the store (`orphan_pending`), so an interrupted write never leaves an
  orphan vector behind.
* ``preparing``: the path being read (extracted, chunked). A path still marked at start-up was
  being read when the process died; one that did so too often is poison (`take_crashed`).
"""

from __future__ import annotations

from collections.abc import Iterable

from semdexd.store.database import Database


class Journal:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ------------------------------------------------------------ pending store writes

    def add_pending(self, items: Iterable[tuple[str, str]]) -> None:
        """Record (chunk id, path) about to be written to the store; committed before the write."""
        with self._db.lock:
            self._db.conn.executemany("INSERT OR IGNORE INTO pending(id, path) VALUES (?, ?)", list(items))

    def orphan_pending(self) -> list[str]:
        """Pending ids that no committed chunk owns: an interrupted write may have stored them."""
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT p.id FROM pending p LEFT JOIN chunks c ON c.id = p.id WHERE c.id IS NULL").fetchall()
        return [r[0] for r in rows]

    def clear_pending(self) -> None:
        with self._db.lock:
            self._db.conn.execute("DELETE FROM pending")

    def settle_path(self, path: str) -> None:
        """The pending ids of ``path`` are settled (its rows are committed or forgotten): call
        inside that commit's transaction."""
        self._db.conn.execute("DELETE FROM pending WHERE path=?", (path,))

    def settle_ids(self, ids: Iterable[str]) -> None:
        """These pending ids are settled (their chunks are marked embedded): call inside that
        commit's transaction."""
        self._db.conn.executemany("DELETE FROM pending WHERE id = ?", [(i,) for i in ids])

    # ------------------------------------------------------------ files being read

    def mark_preparing(self, path: str) -> None:
        """Journal that ``path`` is being read: if the process dies now, `take_crashed` says so."""
        with self._db.lock:
            self._db.conn.execute(
                "INSERT INTO preparing(path, active, crashes) VALUES (?, 1, 0) "
                "ON CONFLICT(path) DO UPDATE SET active=1", (path,))

    def clear_preparing(self, path: str) -> None:
        """``path`` was read without killing the process: forget its journal entry."""
        with self._db.lock:
            self._db.conn.execute("DELETE FROM preparing WHERE path=?", (path,))

    def take_crashed(self, limit: int) -> list[tuple[str, int]]:
        """At start-up: every path still marked as being read counts one more crash; those that
        reached ``limit`` crashes are removed from the journal and returned as (path, crashes)
        (the caller records them as poison). The others keep their count for the next time."""
        with self._db.transaction():
            self._db.conn.execute("UPDATE preparing SET crashes = crashes + 1, active = 0 WHERE active = 1")
            rows = self._db.conn.execute(
                "SELECT path, crashes FROM preparing WHERE crashes >= ?", (limit,)).fetchall()
            self._db.conn.execute("DELETE FROM preparing WHERE crashes >= ?", (limit,))
        return [(p, n) for p, n in rows]
