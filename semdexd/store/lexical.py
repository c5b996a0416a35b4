"""The manifest's lexical index, read: FTS5 BM25 ranking and document frequencies.

Two FTS5 tables, kept in step with the chunks by triggers (`semdexd.store.manifest` makes them):
``chunks_fts`` holds every chunk's ``unicode61`` words, ``chunks_cjk`` the Chinese/Japanese terms
of the chunks holding such text (`semdexd.store.cjk`). Reached as ``Manifest.lexical``; read on
the thread's reading connection (`Database.reader`: a search never waits for a words commit).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from semdexd.store import cjk
from semdexd.store.database import Database
from semdexd.store.filter import Filter

WORDS_TABLE = "chunks_fts"
CJK_TABLE = "chunks_cjk"
# The FTS5 table searched by `Lexical.search` for each index name.
FTS_TABLES = {"words": WORDS_TABLE, "cjk": CJK_TABLE}
DF_CACHE_MAX = 20000    # cached document frequencies (terms) before the cache starts over


class Lexical:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._writes = 0                   # changes to the chunks begun or ended (`doc_freqs` cache version)
        self._df: dict[str, int] = {}      # `doc_freqs` cache, valid for _df_version
        self._df_version: int | None = None
        self._df_total = 0
        self._df_lock = threading.Lock()   # the cache is shared by the searching threads
        self._seen: dict[int, int] = {}    # SQLite's data_version last seen on each reading connection

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Around a commit that changes the chunks (``with changing(), transaction():``): the
        document frequencies cached before it, or while it ran (from the rows before it), are
        stale."""
        self._writes += 1
        try:
            yield
        finally:
            self._writes += 1

    def search(self, match: str, limit: int, where: Filter | None = None,
               index: str = "words") -> list[tuple[str, float]]:
        """FTS5 BM25 search: [(chunk id, score)] best first; score is -bm25 (higher is better).

        ``index`` is ``"words"`` (``chunks_fts``, every chunk's ``unicode61`` words) or ``"cjk"``
        (``chunks_cjk``, the chunks holding Chinese/Japanese, as `semdexd.store.cjk.index_text`).
        Equal scores are ordered by chunk id (never by row id, which depends on insertion order),
        so the same index content gives the same answer. ``match`` is an FTS5 query string; a
        syntax error yields [] rather than an exception.
        """
        fts = FTS_TABLES[index]
        if where is None or where.empty:
            return self._unfiltered(match, limit, fts)
        cond, args = where.sql()
        sql = (f"SELECT c.id, -bm25({fts}) FROM {fts} JOIN chunks c ON c.rowid = {fts}.rowid "
               f"JOIN files f ON f.path = c.path WHERE {fts} MATCH ? AND {cond} "
               f"ORDER BY bm25({fts}), c.id LIMIT ?")
        try:
            return [(i, float(s)) for i, s in self._db.reader().execute(sql, [match, *args, limit])]
        except sqlite3.OperationalError:
            return []

    def _unfiltered(self, match: str, limit: int, fts: str) -> list[tuple[str, float]]:
        """`search` without a filter: FTS5 ranks on its own first (no join per matching row),
        then the best ``2 * limit``
        are ordered by (score, chunk id), so ties at the cut do not depend on row ids."""
        sql = (f"SELECT c.id, -r.score FROM (SELECT rowid, bm25({fts}) AS score FROM {fts} "
               f"WHERE {fts} MATCH ? ORDER BY score LIMIT ?) r JOIN chunks c ON c.rowid = r.rowid")
        try:
            got = [(i, float(s)) for i, s in self._db.reader().execute(sql, [match, 2 * limit])]
        except sqlite3.OperationalError:
            return []
        got.sort(key=lambda hit: (-hit[1], hit[0]))
        return got[:limit]

    def doc_freqs(self, terms: Sequence[str]) -> tuple[int, dict[str, int]]:
        """(number of chunks, {term: chunks containing it}) for BM25-style IDF weights.

        Counts are cached until the chunks change (`changing`, or a commit by another process:
        SQLite's ``data_version``): counting a common term's rows costs ~1 ms at 100k chunks,
        and a person's queries share most of their words."""
        conn = self._db.reader()
        with self._df_lock:
            conn.execute("BEGIN")   # one snapshot: its version, its total and its counts
            try:
                seen = int(conn.execute("PRAGMA data_version").fetchone()[0])   # moves with others' commits
                stale = self._writes != self._df_version or len(self._df) > DF_CACHE_MAX \
                    or self._seen.get(id(conn)) != seen
                self._seen[id(conn)] = seen
                if stale:
                    self._df.clear()
                    self._df_version = self._writes
                    # the manifest's running count (`Manifest.tallies`): counting the rows took
                    # ~5 ms at 300k chunks, on every search while files were being indexed
                    self._df_total = int(conn.execute("SELECT chunks FROM tallies").fetchone()[0])
                for term in terms:
                    if term not in self._df:
                        self._df[term] = self._doc_freq(conn, term)
            finally:
                conn.execute("COMMIT")
            return self._df_total, {term: self._df[term] for term in terms}

    def _doc_freq(self, conn: sqlite3.Connection, term: str) -> int:
        """Chunks holding ``term`` (a `semdexd.search.terms.tokens` token; CJK units are counted
        in ``chunks_cjk``)."""
        try:
            if cjk.is_cjk_unit(term):
                return int(conn.execute(f"SELECT count(*) FROM {CJK_TABLE} WHERE {CJK_TABLE} MATCH ?",
                                        [cjk.fts_term(term)]).fetchone()[0])
            return int(conn.execute(f"SELECT count(*) FROM {WORDS_TABLE} WHERE {WORDS_TABLE} MATCH ?",
                                    ['"' + term.replace('"', '""') + '"']).fetchone()[0])
        except sqlite3.OperationalError:
            return 0
