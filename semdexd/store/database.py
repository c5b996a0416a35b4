"""The manifest's one SQLite connection (WAL), shared by its parts: the lock that serialises it,
the one write transaction, and queries over many ids in batches.

`semdexd.store.manifest` opens it (schema, migration, rows) and hands it to the parts that keep
their own concern on the same database: `semdexd.store.lexical`, `semdexd.store.filtered`,
`semdexd.store.journal` and `semdexd.store.copies`. A write that spans parts (a file's rows, its
vectors' copies, its journal entries) runs in one `Database.transaction`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from semdexd.system.private import private_file

ID_BATCH = 500          # ids per statement (well under SQLite's variable limit)


class Database:
    """``conn`` is safe to use from several threads only under ``lock`` (an `RLock`: a part may
    call another while holding it)."""

    def __init__(self, path: Path) -> None:
        private_file(path)  # 0600 (and its -wal/-shm with it) whatever the umask
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and run the block as one write transaction: committed at its end, rolled
        back if it raises."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    self.conn.execute("ROLLBACK")
                raise

    def by_ids(self, head: str, ids: Sequence[str], tail: str = "", args: Sequence[object] = ()) -> list[Any]:
        """The rows of ``{head} IN (ids...){tail}`` for ``ids`` in batches of `ID_BATCH`, with
        ``args`` bound after the ids."""
        out: list[Any] = []
        with self.lock:
            for start in range(0, len(ids), ID_BATCH):
                part = list(ids[start:start + ID_BATCH])
                marks = ",".join("?" * len(part))
                out += self.conn.execute(f"{head} IN ({marks}){tail}", [*part, *args]).fetchall()
        return out
