"""The manifest's SQLite connections (WAL), shared by its parts: the writer's connection and the
lock that serialises it, the one write transaction, each thread's connection for reads, and
queries over many ids in batches.

`semdexd.store.manifest` opens it (schema, migration, rows) and hands it to the parts that keep
their own concern on the same database: `semdexd.store.lexical`, `semdexd.store.filtered`,
`semdexd.store.journal` and `semdexd.store.copies`. A write that spans parts (a file's rows, its
vectors' copies, its journal entries) runs in one `Database.transaction`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from semdexd.system.private import private_file

ID_BATCH = 500          # ids per statement (well under SQLite's variable limit)


SqlFunction = tuple[str, int, Callable[..., Any]]    # name, number of arguments, function


class Database:
    """``conn`` is safe to use from several threads only under ``lock`` (an `RLock`: a part may
    call another while holding it). `reader` gives a thread its own connection for reads, which
    needs no lock: it sees the last commit, never waits for a write in progress and never holds
    one up (a search during a large index would otherwise wait for the words commits)."""

    def __init__(self, path: Path, functions: Sequence[SqlFunction] = ()) -> None:
        private_file(path)  # 0600 (and its -wal/-shm with it) whatever the umask
        self.path = path
        self.functions = tuple(functions)
        self.conn = self._connect()
        self.lock = threading.RLock()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        for name, args, function in self.functions:
            conn.create_function(name, args, function, deterministic=True)
        return conn

    def reader(self) -> sqlite3.Connection:
        """This thread's connection for reads (made at its first call, closed with the database).
        Reads only: it is ``query_only``."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        with self.lock:
            self.conn.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

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

    def by_ids(self, head: str, ids: Sequence[str], tail: str = "", args: Sequence[object] = (),
               read: bool = False) -> list[Any]:
        """The rows of ``{head} IN (ids...){tail}`` for ``ids`` in batches of `ID_BATCH`, with
        ``args`` bound after the ids; on this thread's `reader` with ``read``."""
        out: list[Any] = []
        with contextlib.nullcontext() if read else self.lock:
            conn = self.reader() if read else self.conn
            for start in range(0, len(ids), ID_BATCH):
                part = list(ids[start:start + ID_BATCH])
                marks = ",".join("?" * len(part))
                out += conn.execute(f"{head} IN ({marks}){tail}", [*part, *args]).fetchall()
        return out
