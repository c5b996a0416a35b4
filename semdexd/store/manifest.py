"""The manifest: what is indexed, per file and per chunk, in SQLite (WAL).

It is the source of truth for "done", in two steps. A file's words are committed first (its row
and its chunks' text, searchable at once through FTS5), its new chunks marked as awaiting a vector
(``embedded = 0``); stale chunks leave the store before that commit. Its vectors follow: the
store is written first, then the chunks are marked embedded, with a float16 copy of each vector
(a search reads the vectors of its lexical candidates with their rows instead of asking Chroma).
Before a store write, the ids about to be written are journalled in ``pending``; after a crash,
pending ids that no committed chunk owns are deleted from the store, so an interrupted write never
leaves an orphan vector behind.

This module keeps the schema (and its migration) and the file and chunk rows. The other concerns
live beside it, on the same connection and lock (`semdexd.store.database`), each reached as an
attribute: ``lexical`` (FTS5 ranking, document frequencies: `semdexd.store.lexical`),
``filtered`` (what a search filter lets through: `semdexd.store.filtered`), ``journal`` (pending
store writes, files being read: `semdexd.store.journal`) and ``copies`` (the vectors' float16
copies: `semdexd.store.copies`).

One `Manifest` per process; it is safe to call from several threads (one connection, a lock).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semdexd.kinds import Kind
from semdexd.store import cjk
from semdexd.store.copies import Copies, pack
from semdexd.store.database import Database
from semdexd.store.filter import REGEXP_SQL, regexp
from semdexd.store.filtered import Filtered
from semdexd.store.journal import Journal
from semdexd.store.lexical import CJK_TABLE, Lexical

SCHEMA_VERSION = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    status TEXT NOT NULL,          -- indexed | skipped | failed
    reason TEXT NOT NULL DEFAULT '',
    file_type TEXT NOT NULL DEFAULT '',
    chunks INTEGER NOT NULL DEFAULT 0,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    ord INTEGER NOT NULL,
    hash TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    start_byte INTEGER NOT NULL,
    end_byte INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path, ord);
CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS preparing (
    path TEXT PRIMARY KEY,
    active INTEGER NOT NULL,       -- 1 while being extracted/chunked
    crashes INTEGER NOT NULL       -- times the daemon died while it was active
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='rowid', tokenize="unicode61 remove_diacritics 2"
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
"""

# Schema 5: Chinese/Japanese words (`semdexd.store.cjk`). A contentless FTS5 table (the terms are
# not stored again: with its content it cost 4.6 KB per chunk of ~480 CJK characters, 88% of it
# the stored terms), rows only for chunks holding CJK, keyed by the chunk's rowid. Triggers keep
# it in step with the chunks, computing the terms with SQL functions this class registers on its
# connection: another connection that writes chunks without them fails loudly ("no such
# function"), it cannot leave the table wrong.
_CJK_SCHEMA = (
    f"CREATE VIRTUAL TABLE {CJK_TABLE} USING fts5(terms, content='', "
    'tokenize="unicode61 remove_diacritics 2")',
    f"CREATE TRIGGER chunks_cjk_ai AFTER INSERT ON chunks WHEN semdex_has_cjk(new.text) BEGIN "
    f"INSERT INTO {CJK_TABLE}(rowid, terms) VALUES (new.rowid, semdex_cjk_terms(new.text)); END",
    f"CREATE TRIGGER chunks_cjk_ad AFTER DELETE ON chunks WHEN semdex_has_cjk(old.text) BEGIN "
    f"INSERT INTO {CJK_TABLE}({CJK_TABLE}, rowid, terms) VALUES ('delete', old.rowid, semdex_cjk_terms(old.text)); END",
)

# Schema 6: running counts of chunks, chunks awaiting vectors and files by status, one row kept by
# triggers in the same transactions as the rows: `tallies` reads them at once, where counting the
# rows took ~6 ms per 25k chunks, twice per search while files were indexed.
_STATUSES = ("indexed", "skipped", "failed")
_BY_STATUS = ", ".join(f"{s} = {s} + (new.status = '{s}')" for s in _STATUSES)
_BY_OLD_STATUS = ", ".join(f"{s} = {s} - (old.status = '{s}')" for s in _STATUSES)
_TALLY_SCHEMA = (
    "CREATE TABLE tallies (chunks INTEGER NOT NULL, awaiting INTEGER NOT NULL, "
    + ", ".join(f"{s} INTEGER NOT NULL" for s in _STATUSES) + ")",
    "CREATE TRIGGER tally_chunk_in AFTER INSERT ON chunks BEGIN "
    "UPDATE tallies SET chunks = chunks + 1, awaiting = awaiting + (new.embedded = 0); END",
    "CREATE TRIGGER tally_chunk_out AFTER DELETE ON chunks BEGIN "
    "UPDATE tallies SET chunks = chunks - 1, awaiting = awaiting - (old.embedded = 0); END",
    "CREATE TRIGGER tally_chunk_embedded AFTER UPDATE OF embedded ON chunks WHEN old.embedded != new.embedded "
    "BEGIN UPDATE tallies SET awaiting = awaiting + (new.embedded = 0) - (old.embedded = 0); END",
    f"CREATE TRIGGER tally_file_in AFTER INSERT ON files BEGIN UPDATE tallies SET {_BY_STATUS}; END",
    f"CREATE TRIGGER tally_file_out AFTER DELETE ON files BEGIN UPDATE tallies SET {_BY_OLD_STATUS}; END",
    "CREATE TRIGGER tally_file_status AFTER UPDATE OF status ON files WHEN old.status != new.status BEGIN "
    f"UPDATE tallies SET {_BY_OLD_STATUS}; UPDATE tallies SET {_BY_STATUS}; END",
    "INSERT INTO tallies SELECT (SELECT count(*) FROM chunks), (SELECT count(*) FROM chunks WHERE embedded = 0), "
    + ", ".join(f"(SELECT count(*) FROM files WHERE status = '{s}')" for s in _STATUSES),
    "DROP INDEX IF EXISTS chunks_hash",   # never queried: ~90 bytes and ~25% of the insert time per chunk
)

_CHUNK_COLUMNS = "id,path,ord,hash,start_line,end_line,start_byte,end_byte,text"   # a ChunkRow

# Columns added after schema 1, with their definitions (added to older databases on open).
_ADDED_COLUMNS = (
    ("files", "kind", "TEXT NOT NULL DEFAULT ''"),        # semdexd.kinds.Kind ('' = schema 1 row)
    ("files", "extractor", "TEXT NOT NULL DEFAULT ''"),   # EXTRACTOR_VERSION that decided it
    ("chunks", "vec", "BLOB"),            # the chunk's vector as float16 (NULL: written before schema 3)
    ("chunks", "embedded", "INTEGER NOT NULL DEFAULT 1"),  # 0: awaiting its vector (its words are in)
)
# Indexes on added columns (made after them). Only chunks of an older version lack a vector: this
# one holds just those, so a start finds that none is left without scanning the table.
_ADDED_INDEXES = ("CREATE INDEX IF NOT EXISTS chunks_without_vec ON chunks(rowid) WHERE vec IS NULL",
                  "CREATE INDEX IF NOT EXISTS chunks_awaiting ON chunks(path) WHERE embedded = 0")


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int
    mtime_ns: int
    hash: str
    kind: Kind
    reason: str
    file_type: str
    chunks: int
    extractor: str = ""


@dataclass(frozen=True)
class ChunkRow:
    id: str
    path: str
    ord: int
    hash: str
    start_line: int
    end_line: int
    start_byte: int
    end_byte: int
    text: str


@dataclass(frozen=True)
class FileUpdate:
    """Everything the manifest records for one file after its store write succeeded."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    kind: Kind
    reason: str = ""
    file_type: str = ""
    chunks: tuple[ChunkRow, ...] = ()
    extractor: str = ""         # the extractor version that produced it


class Manifest:
    def __init__(self, path: Path) -> None:
        self._db = Database(path, functions=[(REGEXP_SQL, 2, regexp), ("semdex_has_cjk", 1, cjk.has_cjk),
                                             ("semdex_cjk_terms", 1, cjk.index_text)])
        self.lexical = Lexical(self._db)
        self.filtered = Filtered(self._db)
        self.journal = Journal(self._db)
        self.copies = Copies(self._db)
        conn = self._db.conn
        conn.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring an older database up to `SCHEMA_VERSION` (columns added with defaults, and their
        indexes)."""
        with self._db.lock:
            for table, column, definition in _ADDED_COLUMNS:
                have = {r[1] for r in self._db.conn.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            for statement in _ADDED_INDEXES:
                self._db.conn.execute(statement)
        self._migrate_cjk()
        self._add_table("tallies", _TALLY_SCHEMA)   # schema 6
        if self.get_meta("schema") != str(SCHEMA_VERSION):
            self.set_meta("schema", str(SCHEMA_VERSION))

    def _migrate_cjk(self) -> None:
        """Schema 5, whatever came before (3 or 4): make ``chunks_cjk`` when it is missing and fill
        it from the chunks' text (once: a scan of the chunks' text, README "Why these numbers")."""
        self._add_table(CJK_TABLE, (*_CJK_SCHEMA, f"INSERT INTO {CJK_TABLE}(rowid, terms) SELECT rowid, "
                                                  "semdex_cjk_terms(text) FROM chunks WHERE semdex_has_cjk(text)"))

    def _add_table(self, name: str, statements: Sequence[str]) -> None:
        """Run ``statements`` (which make table ``name`` and fill it) unless it exists, in one
        transaction (a crash leaves neither), before the manifest answers anything."""
        def made() -> bool:
            return self._db.conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None

        if made():
            return
        with self._db.transaction():
            if made():
                return
            for statement in statements:
                self._db.conn.execute(statement)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        with self._db.lock:
            row = self._db.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._db.lock:
            self._db.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------ reads

    # Reads on this thread's `Database.reader`: the last commit, without waiting for the writer.

    def file(self, path: str) -> FileRow | None:
        row = self._db.reader().execute(
            "SELECT path,size,mtime_ns,hash,kind,status,reason,file_type,chunks,extractor "
            "FROM files WHERE path=?",
            (path,),
        ).fetchone()
        if row is None:
            return None
        path, size, mtime_ns, content_hash, kind, status, *rest = row
        return FileRow(path, size, mtime_ns, content_hash, Kind.of_row(kind, status), *rest)

    def files_under(self, folder: str) -> list[str]:
        """Paths recorded at or below ``folder`` (a directory path without trailing slash)."""
        prefix = folder.rstrip("/") + "/"
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT path FROM files WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
        return [r[0] for r in rows]

    def all_paths(self) -> list[str]:
        with self._db.lock:
            return [r[0] for r in self._db.conn.execute("SELECT path FROM files")]

    def stat_map(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) for every recorded file (for the reconcile scan)."""
        with self._db.lock:
            return {p: (s, m) for p, s, m in self._db.conn.execute("SELECT path,size,mtime_ns FROM files")}

    def chunks_of(self, path: str) -> list[ChunkRow]:
        rows = self._db.reader().execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE path=? ORDER BY ord", (path,)).fetchall()
        return [ChunkRow(*r) for r in rows]

    def chunks_by_id(self, ids: Sequence[str]) -> dict[str, ChunkRow]:
        rows = self._db.by_ids(f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE id", ids, read=True)
        return {r[0]: ChunkRow(*r) for r in rows}

    def all_chunk_ids(self, embedded: bool = False) -> set[str]:
        """Every chunk id; with ``embedded``, only those whose vector is in the store."""
        with self._db.lock:
            return {r[0] for r in self._db.conn.execute("SELECT id FROM chunks" + (" WHERE embedded = 1" if embedded else ""))}

    def tallies(self) -> dict[str, int]:
        """Files by status (``indexed``: their words are searchable), ``chunks`` and
        ``chunks_awaiting`` (no vector yet), as of the last commit; cheap (running counts)."""
        chunks, awaiting, *by_status = self._db.reader().execute(
            f"SELECT chunks, awaiting, {', '.join(_STATUSES)} FROM tallies").fetchone()
        return {**dict(zip(_STATUSES, by_status)), "chunks": chunks, "chunks_awaiting": awaiting}

    def counts(self) -> dict[str, int]:
        """`tallies`, and ``files_awaiting``: the files those chunks belong to (counted: costs
        ~5 ms per 25k chunks awaiting)."""
        conn = self._db.reader()
        conn.execute("BEGIN")   # one snapshot for both
        try:
            out = self.tallies()
            out["files_awaiting"] = conn.execute(
                "SELECT count(DISTINCT path) FROM chunks WHERE embedded = 0").fetchone()[0]
        finally:
            conn.execute("COMMIT")
        return out

    # ------------------------------------------------------------ meaning: chunks awaiting vectors

    def awaiting_files(self) -> list[tuple[str, int, int]]:
        """(path, mtime_ns, size) of every file with chunks awaiting vectors."""
        with self._db.lock:
            return self._db.conn.execute(
                "SELECT f.path, f.mtime_ns, f.size FROM files f WHERE f.path IN "
                "(SELECT DISTINCT path FROM chunks WHERE embedded = 0)").fetchall()

    def awaiting_chunks(self, paths: Sequence[str]) -> list[ChunkRow]:
        """The chunks of ``paths`` that await vectors, in file order."""
        out: list[ChunkRow] = []
        with self._db.lock:
            for path in paths:
                out += [ChunkRow(*r) for r in self._db.conn.execute(
                    f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE path = ? AND embedded = 0 ORDER BY ord", (path,))]
        return out

    def still_awaiting(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` whose chunk is still there and still awaits its vector."""
        return {r[0] for r in self._db.by_ids("SELECT id FROM chunks WHERE embedded = 0 AND id", ids)}

    def commit_vectors(self, vectors: Mapping[str, np.ndarray], failed: Mapping[str, tuple[list[str], str]]) -> None:
        """Atomically mark the chunks of ``vectors`` embedded (with their float16 copies), and
        drop the chunks no vector can be made for: ``failed`` maps a path to (its chunk ids,
        the reason), and that file becomes `Kind.PARTIAL` with the reason. Journalled ids are
        cleared. Call only after the store holds every vector of ``vectors``."""
        with self.lexical.changing(), self._db.transaction():
            self._db.conn.executemany("UPDATE chunks SET embedded = 1, vec = ? WHERE id = ? AND embedded = 0",
                                      [(pack(v), cid) for cid, v in vectors.items()])
            for path, (ids, reason) in failed.items():
                self._db.conn.executemany("DELETE FROM chunks WHERE id = ? AND embedded = 0", [(i,) for i in ids])
                self._db.conn.execute(
                    "UPDATE files SET kind = ?, status = ?, reason = ?, "
                    "chunks = (SELECT count(*) FROM chunks WHERE path = ?) WHERE path = ?",
                    (str(Kind.PARTIAL), Kind.PARTIAL.status, reason, path, path))
            self.journal.settle_ids(vectors)

    def problems(self, limit: int = 50) -> list[dict[str, str]]:
        """Files skipped, failed or indexed only in part (truncated), with their reasons, most
        recent first."""
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT path, status, reason, kind FROM files WHERE status != 'indexed' OR reason != '' "
                "ORDER BY indexed_at DESC LIMIT ?", (limit,)).fetchall()
        return [{"path": p, "status": s, "reason": r, "kind": k or s} for p, s, r, k in rows]

    def indexed_types(self) -> list[str]:
        """The file types of indexed files, sorted."""
        rows = self._db.reader().execute(
            "SELECT DISTINCT file_type FROM files WHERE status = 'indexed' ORDER BY file_type").fetchall()
        return [r[0] for r in rows if r[0]]

    def commit_files(self, updates: Sequence[FileUpdate], deleted: Sequence[str] = (),
                     vectors: Mapping[str, np.ndarray] | None = None) -> None:
        """Atomically record ``updates`` (replacing each file's chunks) and forget ``deleted``;
        ``vectors`` (by chunk id) are kept beside their chunks (see `semdexd.store.copies`).

        Call only after the store holds every chunk of ``updates`` and none of their stale ones.
        """
        now = time.time()
        with self.lexical.changing(), self._db.transaction():   # cached document frequencies go stale
            for path in deleted:
                self._forget(path)
            for u in updates:
                self._replace(u, now, vectors or {})

    # ------------------------------------------------------------ failures: reread

    def paths_to_reread(self, extractor: str) -> list[str]:
        """Files skipped or failed (not poison) by an extractor other than ``extractor``."""
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT path FROM files WHERE status != 'indexed' AND kind != 'poison' AND extractor != ?",
                (extractor,)).fetchall()
        return [r[0] for r in rows]

    def _forget(self, path: str) -> None:
        self._db.conn.execute("DELETE FROM chunks WHERE path=?", (path,))
        self._db.conn.execute("DELETE FROM files WHERE path=?", (path,))
        self.journal.settle_path(path)

    def _replace(self, u: FileUpdate, now: float, vectors: Mapping[str, np.ndarray]) -> None:
        old = {r[0]: r[1] for r in self._db.conn.execute("SELECT id, rowid FROM chunks WHERE path=?", (u.path,))}
        new_ids = {c.id for c in u.chunks}
        for cid in set(old) - new_ids:
            self._db.conn.execute("DELETE FROM chunks WHERE rowid=?", (old[cid],))
        self._db.conn.executemany(   # unchanged text; only its position may have moved
            "UPDATE chunks SET ord=?, start_line=?, end_line=?, start_byte=?, end_byte=?, vec=coalesce(vec, ?) "
            "WHERE rowid=?",
            [(c.ord, c.start_line, c.end_line, c.start_byte, c.end_byte, pack(vectors.get(c.id)), old[c.id])
             for c in u.chunks if c.id in old])
        self._db.conn.executemany(
            "INSERT INTO chunks(id,path,ord,hash,start_line,end_line,start_byte,end_byte,text,vec,embedded) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(c.id, c.path, c.ord, c.hash, c.start_line, c.end_line, c.start_byte, c.end_byte, c.text,
              pack(vectors.get(c.id)), int(c.id in vectors)) for c in u.chunks if c.id not in old])
        self._db.conn.execute(   # an upsert, not a REPLACE (whose delete fires no trigger: `tallies`)
            "INSERT INTO files(path,size,mtime_ns,hash,status,reason,file_type,chunks,indexed_at,"
            "kind,extractor) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET size=excluded.size, "
            "mtime_ns=excluded.mtime_ns, hash=excluded.hash, status=excluded.status, reason=excluded.reason, "
            "file_type=excluded.file_type, chunks=excluded.chunks, indexed_at=excluded.indexed_at, "
            "kind=excluded.kind, extractor=excluded.extractor",
            (u.path, u.size, u.mtime_ns, u.hash, Kind(u.kind).status, u.reason, u.file_type, len(u.chunks), now,
             str(u.kind), u.extractor))
        self.journal.settle_path(u.path)

