"""Persistent embedding cache: (model id, text) key -> float32 vector, in one SQLite file.

Keys come from `semdexd.embed.text.cache_key` (sha256 of model id + the text exactly as embedded,
prefix included), so one file serves any number of models. The cache is bounded by ``max_mb``
(estimated from the entry count): when it grows past the bound the least recently used ~10% go.
It is disposable: an unreadable file is moved aside and recreated, and a SQLite error during use
counts as a miss (logged), never as a failure of the caller. Thread-safe (one lock).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import structlog

from semdexd.system.private import private_file

ENTRY_OVERHEAD = 200         # bytes per row beyond the vector: key, two index entries, page slack
_CHUNK = 500                 # keys per SQL statement (well under SQLite's variable limit)
# A rowid table with 16 KiB pages keeps ~1.5 KB rows inline; the first layout (WITHOUT ROWID,
# 4 KiB pages) spilled every row to overflow pages: ~4.7 KB on disk per 1.6 KB entry.
_PAGE_SIZE = 16384
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors2 (key BLOB PRIMARY KEY, vec BLOB NOT NULL, used INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS vectors2_used ON vectors2(used);
"""


class EmbedCache:
    """Vectors of dimension ``dim`` by 32-byte key, bounded by ``max_mb``."""

    def __init__(self, path: Path, max_mb: float, dim: int) -> None:
        self.path = path
        self.dim = dim
        self.max_entries = max(1, int(max_mb * 2**20 // (dim * 4 + ENTRY_OVERHEAD)))
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._log = structlog.get_logger()
        self._db = self._open()
        self.entries = self._db.execute("SELECT COUNT(*) FROM vectors2").fetchone()[0]

    def _connect(self) -> sqlite3.Connection:
        private_file(self.path)  # 0600 (and its -wal/-shm with it) whatever the umask
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        db.execute(f"PRAGMA page_size={_PAGE_SIZE}")  # takes effect on a new file (or a VACUUM)
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'vectors'").fetchone():
            db.execute("DROP TABLE vectors")  # the old layout: the cache is disposable
            db.execute("VACUUM")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.broken-{int(time.time())}")
            self._log.warning("embed_cache_unreadable", path=str(self.path), error=str(exc), moved_to=str(aside))
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.rename(f"{aside}{suffix}")
            return self._connect()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys`` (a hit refreshes the entry's recency)."""
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            try:
                for start in range(0, len(unique), _CHUNK):
                    part = unique[start:start + _CHUNK]
                    marks = ",".join("?" * len(part))
                    for key, blob in self._db.execute(f"SELECT key, vec FROM vectors2 WHERE key IN ({marks})", part):
                        if len(blob) == self.dim * 4:
                            found[bytes(key)] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
                    hit = [k for k in part if k in found]
                    if hit:
                        self._db.execute(f"UPDATE vectors2 SET used = ? WHERE key IN ({','.join('?' * len(hit))})",
                                         [time.time_ns(), *hit])
            except sqlite3.Error as exc:
                self._log.warning("embed_cache_error", op="get", error=str(exc))
            self.hits += len(found)
            self.misses += len(unique) - len(found)
        return found

    def put_many(self, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        """Store vectors (float32, length ``dim``); then evict the least recently used if over the bound."""
        now = time.time_ns()
        rows = [(key, np.ascontiguousarray(vec, dtype="<f4").tobytes(), now) for key, vec in items
                if len(vec) == self.dim]
        if not rows:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN")
                before = self._db.total_changes
                self._db.executemany("INSERT OR IGNORE INTO vectors2 (key, vec, used) VALUES (?, ?, ?)", rows)
                self.entries += self._db.total_changes - before
                if self.entries > self.max_entries:
                    self._evict_locked()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._log.warning("embed_cache_error", op="put", error=str(exc))
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    def _evict_locked(self) -> None:
        excess = self.entries - self.max_entries + max(1, self.max_entries // 10)
        self._db.execute("DELETE FROM vectors2 WHERE key IN (SELECT key FROM vectors2 ORDER BY used LIMIT ?)", (excess,))
        self.entries = self._db.execute("SELECT COUNT(*) FROM vectors2").fetchone()[0]

    def stats(self) -> dict[str, float | int]:
        """{hits, misses, entries, mb}; ``mb`` is the estimated size of the entries."""
        return {"hits": self.hits, "misses": self.misses, "entries": self.entries,
                "mb": round(self.entries * (self.dim * 4 + ENTRY_OVERHEAD) / 2**20, 2)}

    def close(self) -> None:
        with self._lock:
            self._db.close()
