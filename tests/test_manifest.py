"""The manifest: file/chunk rows, FTS kept in step, pending journal, filters."""

import numpy as np

from semdexd.store.filter import Filter
from semdexd.store.manifest import ChunkRow, FileUpdate, Manifest


def rows(path: str, texts: list[str]) -> tuple[ChunkRow, ...]:
    return tuple(ChunkRow(f"{path}#{t}", path, i, t, i + 1, i + 1, 0, len(t), t) for i, t in enumerate(texts))


def test_commit_replaces_chunks_and_fts_follows(tmp_path):
    m = Manifest(tmp_path / "m.sqlite3")
    m.commit_files([FileUpdate("/r/a.py", 1, 1, "h", "indexed", file_type="py",
                               chunks=rows("/r/a.py", ["alpha parse_config", "beta"]))])
    assert [c for c, _ in m.lexical.search('"parse config"', 10)] == ["/r/a.py#alpha parse_config"]
    m.commit_files([FileUpdate("/r/a.py", 2, 2, "h2", "indexed", file_type="py",
                               chunks=rows("/r/a.py", ["beta", "gamma"]))])
    assert m.lexical.search('"alpha"', 10) == []
    assert [c for c, _ in m.lexical.search('"gamma"', 10)] == ["/r/a.py#gamma"]
    # committed without vectors: their words are in, their vectors awaited
    assert m.counts() == {"indexed": 1, "skipped": 0, "failed": 0, "chunks": 2, "chunks_awaiting": 2,
                          "files_awaiting": 1}


def test_forget_and_problems(tmp_path):
    m = Manifest(tmp_path / "m.sqlite3")
    m.commit_files([FileUpdate("/r/a.bin", 1, 1, "h", "skipped", "skipped: binary"),
                    FileUpdate("/r/b.md", 1, 1, "h", "indexed", chunks=rows("/r/b.md", ["x"]))])
    assert m.problems() == [{"path": "/r/a.bin", "status": "skipped", "reason": "skipped: binary", "kind": "skipped"}]
    m.commit_files([], deleted=["/r/b.md"])
    assert m.chunks_of("/r/b.md") == [] and m.file("/r/b.md") is None
    assert m.lexical.search('"x"', 10) == []


def test_pending_journal_finds_orphans(tmp_path):
    m = Manifest(tmp_path / "m.sqlite3")
    m.commit_files([FileUpdate("/r/a", 1, 1, "h", "indexed", chunks=rows("/r/a", ["x"]))])
    m.journal.add_pending([("/r/a#x", "/r/a"), ("orphan", "/r/b")])
    assert m.journal.orphan_pending() == ["orphan"]
    m.journal.clear_pending()
    assert m.journal.orphan_pending() == []


def test_filters(tmp_path):
    m = Manifest(tmp_path / "m.sqlite3")
    m.commit_files([FileUpdate("/r/docs/a.md", 1, 100, "h", "indexed", file_type="md", chunks=rows("/r/docs/a.md", ["word"])),
                    FileUpdate("/r/src/b.py", 1, 200, "h", "indexed", file_type="py", chunks=rows("/r/src/b.py", ["word"])),
                    FileUpdate("/r/docsx/c.md", 1, 300, "h", "indexed", file_type="md", chunks=rows("/r/docsx/c.md", ["word"]))])
    def paths(f):
        return sorted(c.split("#")[0] for c, _ in m.lexical.search('"word"', 10, f))
    assert paths(Filter(folders=("/r/docs",))) == ["/r/docs/a.md"]
    assert paths(Filter(types=("py",))) == ["/r/src/b.py"]
    assert paths(Filter(globs=(r"\.md$",))) == ["/r/docs/a.md", "/r/docsx/c.md"]
    assert paths(Filter(since_ns=150)) == ["/r/docsx/c.md", "/r/src/b.py"]
    assert m.filtered.chunk_ids(Filter(folders=("/r/src",)), 10) == ["/r/src/b.py#word"]
    assert m.filtered.chunk_ids(Filter(globs=("",)), 1) is None


def test_bad_fts_syntax_is_empty_not_an_error(tmp_path):
    m = Manifest(tmp_path / "m.sqlite3")
    assert m.lexical.search('"unterminated', 10) == []


def test_doc_freqs_follow_every_write_even_another_connections(tmp_path):
    """Document frequencies are cached, but a commit here or by another connection (another
    process) is seen by the next call."""
    m = Manifest(tmp_path / "m.sqlite3")
    m.commit_files([FileUpdate("/r/a.md", 1, 1, "h", "indexed", chunks=rows("/r/a.md", ["bread oven", "oven"]))])
    assert m.lexical.doc_freqs(["oven", "bread", "rye"]) == (2, {"oven": 2, "bread": 1, "rye": 0})
    m.commit_files([FileUpdate("/r/b.md", 1, 1, "h", "indexed", chunks=rows("/r/b.md", ["rye oven"]))])
    assert m.lexical.doc_freqs(["oven", "rye"]) == (3, {"oven": 3, "rye": 1})
    other = Manifest(tmp_path / "m.sqlite3")
    other.commit_files([], deleted=["/r/a.md"])
    assert m.lexical.doc_freqs(["oven", "bread", "rye"]) == (1, {"oven": 1, "bread": 0, "rye": 1})
    other.close()


def test_vectors_kept_beside_chunks_and_an_older_manifest_gains_the_column(tmp_path):
    import sqlite3

    import numpy as np

    path = tmp_path / "m.sqlite3"
    db = sqlite3.connect(path)  # a schema-2 manifest: chunks without a vector column
    db.executescript("CREATE TABLE chunks (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, "
                     "ord INTEGER NOT NULL, hash TEXT NOT NULL, start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, "
                     "start_byte INTEGER NOT NULL, end_byte INTEGER NOT NULL, text TEXT NOT NULL);")
    db.close()
    m = Manifest(path)
    old = rows("/r/a", ["x", "y"])
    m.commit_files([FileUpdate("/r/a", 1, 1, "h", "indexed", chunks=old)])
    assert m.copies.vectors([c.id for c in old]) == {}  # written without vectors: the caller asks the store
    rng = np.random.default_rng(0)
    vecs = {c.id: (v / np.linalg.norm(v)).astype(np.float32) for c, v in zip(old, rng.normal(size=(2, 8)))}
    new = rows("/r/a", ["x", "y", "z"])
    vecs[new[2].id] = vecs[old[0].id]
    m.commit_files([FileUpdate("/r/a", 2, 2, "h2", "indexed", chunks=new)], vectors=vecs)
    got = m.copies.vectors([c.id for c in new] + ["unknown"])
    assert set(got) == {c.id for c in new}  # the new chunk, and the unchanged ones that had none
    for cid, v in got.items():
        assert v.dtype == np.float32 and float(v @ vecs[cid]) > 0.9999
    m.commit_files([FileUpdate("/r/a", 3, 3, "h3", "indexed", chunks=new[:1])])
    assert set(m.copies.vectors([c.id for c in new])) == {new[0].id}  # go with their chunks
    fresh = tmp_path / "fresh.sqlite3"
    Manifest(fresh).close()
    for db_path in (path, fresh):  # a start finds the chunks left without a vector through an index
        with sqlite3.connect(db_path) as con:
            plan = con.execute("EXPLAIN QUERY PLAN SELECT rowid, id FROM chunks WHERE rowid > 0 AND vec IS NULL "
                               "ORDER BY rowid LIMIT 5").fetchall()
        assert "chunks_without_vec" in str(plan), (db_path, plan)


def test_words_first_then_vectors_then_a_failed_chunk(tmp_path):
    """Chunks committed with their words await vectors; commit_vectors marks those that still
    await them (not a chunk the file no longer has), and a chunk no vector can be made for is
    dropped, its file indexed in part."""
    m = Manifest(tmp_path / "m.sqlite3")
    m.commit_files([FileUpdate("/r/a.md", 1, 1, "h", "indexed", chunks=rows("/r/a.md", ["one", "two", "three"]))])
    assert [f for f, _, _ in m.awaiting_files()] == ["/r/a.md"]
    assert [r.text for r in m.awaiting_chunks(["/r/a.md"])] == ["one", "two", "three"]
    assert m.still_awaiting(["/r/a.md#one", "/r/a.md#gone"]) == {"/r/a.md#one"}
    vec = np.ones(4, np.float32) / 2
    m.commit_vectors({"/r/a.md#one": vec, "/r/a.md#gone": vec}, {"/r/a.md": (["/r/a.md#three"], "partly indexed: x")})
    assert [r.text for r in m.awaiting_chunks(["/r/a.md"])] == ["two"]
    assert set(m.copies.vectors(["/r/a.md#one", "/r/a.md#two"])) == {"/r/a.md#one"}
    assert m.all_chunk_ids(embedded=True) == {"/r/a.md#one"}
    row = m.file("/r/a.md")
    assert row is not None and (row.kind, row.reason, row.chunks) == ("partial", "partly indexed: x", 2)
    assert m.counts()["chunks_awaiting"] == 1 and m.counts()["files_awaiting"] == 1


def _recount(m: Manifest) -> dict[str, int]:
    """What `Manifest.tallies` should say, counted from the rows."""
    conn = m._db.conn
    by_status = dict(conn.execute("SELECT status, count(*) FROM files GROUP BY status").fetchall())
    return {"indexed": by_status.get("indexed", 0), "skipped": by_status.get("skipped", 0),
            "failed": by_status.get("failed", 0),
            "chunks": conn.execute("SELECT count(*) FROM chunks").fetchone()[0],
            "chunks_awaiting": conn.execute("SELECT count(*) FROM chunks WHERE embedded = 0").fetchone()[0]}


def test_tallies_follow_every_kind_of_write_and_an_older_manifest_gains_them(tmp_path):
    """The running counts equal a recount after random histories of words commits (new, edited,
    skipped, re-indexed files), vectors (some chunks failing), forgotten files; and a manifest
    made before them gets them, counted, at open."""
    import random

    rnd = random.Random(3)
    m = Manifest(tmp_path / "m.sqlite3")
    paths = [f"/r/{i}.md" for i in range(8)]
    for step in range(150):
        path = rnd.choice(paths)
        action = rnd.random()
        if action < 0.45:
            texts = [f"t{rnd.randrange(12)}" for _ in range(rnd.randrange(0, 5))]
            status = "indexed" if texts else rnd.choice(["skipped", "failed"])
            m.commit_files([FileUpdate(path, step, step, f"h{step}", status, chunks=rows(path, list(dict.fromkeys(texts))))])
        elif action < 0.8:
            awaiting = [c.id for c in m.awaiting_chunks([path])]
            ok = {cid: np.ones(4, np.float32) for cid in awaiting if rnd.random() < 0.7}
            bad = [cid for cid in awaiting if cid not in ok and rnd.random() < 0.5]
            m.commit_vectors(ok, {path: (bad, "failed: too long")} if bad else {})
        else:
            m.commit_files([], deleted=[path])
        assert m.tallies() == _recount(m), step
    assert m.counts()["files_awaiting"] == len(m.awaiting_files())
    for (trigger,) in m._db.conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'tally_%'").fetchall():
        m._db.conn.execute(f"DROP TRIGGER {trigger}")   # as a schema 5 manifest
    m._db.conn.execute("DROP TABLE tallies")
    expected = _recount(m)
    m.close()
    again = Manifest(tmp_path / "m.sqlite3")
    assert again.tallies() == expected and again.get_meta("schema") == "6"
