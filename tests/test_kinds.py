"""Failure kinds (issue 11.6): an explicit kind per file, transient embedding failures retried
(not stored as "partly indexed"), files skipped by an older extractor read again, and the
manifest of schema 1 migrated in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from semdexd.extract import EXTRACTOR_VERSION
from semdexd.index.pipeline import TRANSIENT_RETRY
from semdexd.kinds import Kind
from semdexd.store.manifest import SCHEMA_VERSION, Manifest
from tests.support import Instance, running_service, wait_for

SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, file_type TEXT NOT NULL,
    chunks INTEGER NOT NULL, indexed_at REAL NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
INSERT INTO files VALUES ('/a/old.bin', 10, 20, 'h', 'skipped', 'skipped: binary', 'bin', 0, 1.0);
INSERT INTO files VALUES ('/a/ok.md', 10, 20, 'h', 'indexed', '', 'md', 1, 1.0);
"""


def test_schema_1_manifest_is_migrated_and_old_skips_are_read_again(tmp_path: Path) -> None:
    db = tmp_path / "manifest.sqlite3"
    with sqlite3.connect(db) as con:
        con.executescript(SCHEMA_1)
    manifest = Manifest(db)
    try:
        row = manifest.file("/a/old.bin")
        # a row from before kinds has only its status: its kind is read from it
        assert row is not None and (row.kind, row.extractor) == (Kind.SKIPPED, "")
        assert manifest.file("/a/ok.md").kind == Kind.INDEXED
        assert manifest.get_meta("schema") == str(SCHEMA_VERSION)
        assert manifest.paths_to_reread(EXTRACTOR_VERSION) == ["/a/old.bin"]
    finally:
        manifest.close()
    Manifest(db).close()   # opening a migrated database again is a no-op


def test_kinds_and_back_off() -> None:
    assert [k.status for k in Kind] == ["indexed", "indexed", "indexed", "skipped", "failed", "failed"]
    assert [TRANSIENT_RETRY.delay(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0] and TRANSIENT_RETRY.delay(50) == 600.0


@pytest.fixture
def service(tmp_path: Path, model_info):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nApples grow on trees in the orchard.\n")
    (folder / "blank.txt").write_text("   \n\n")
    inst = Instance(tmp_path, [folder], chunk={"target_tokens": 24, "overlap_tokens": 0})
    with running_service(inst, lambda svc: len(svc.manifest.all_paths()) == 2) as svc:
        yield svc, folder


def test_kinds_are_recorded_and_old_extractor_skips_are_reread(service) -> None:
    svc, folder = service
    a, blank = svc.manifest.file(str(folder / "a.md")), svc.manifest.file(str(folder / "blank.txt"))
    assert (a.kind.status, a.kind, a.extractor) == ("indexed", "indexed", EXTRACTOR_VERSION)
    assert (blank.kind.status, blank.kind, blank.reason) == ("skipped", "skipped", "skipped: empty")
    with svc.manifest._db.lock:   # as an older release would have left it
        svc.manifest._db.conn.execute("UPDATE files SET extractor='1' WHERE path=?", (str(folder / "blank.txt"),))
    assert svc.indexer.scan() >= 1
    wait_for(lambda: svc.manifest.file(str(folder / "blank.txt")).extractor == EXTRACTOR_VERSION,
             timeout=60, what="blank.txt read again by the current extractor")


def test_pool_closing_mid_file_is_retried_not_recorded_as_partly_indexed(service) -> None:
    from semdexd.embed.pool import EmbedPool

    svc, folder = service
    big = folder / "big.md"
    big.write_text("\n\n".join(f"Paragraph {i}: the keeper of light {i} writes the log of the "
                               f"storm, the tide and the ships passing the rock." for i in range(60)))
    wait_for(lambda: svc.pool.stats()["in_flight"] or svc.pool.stats()["queued"], timeout=60,
             interval=0.005, what="big.md being embedded")
    old_pool = svc.pool
    old_pool.close()                      # every in-flight text fails: "pool closed"
    wait_for(lambda: svc.metrics.snapshot()["counters"].get("files_retried", 0) >= 1, timeout=60,
             what="the file put back for a retry")
    row = svc.manifest.file(str(big))
    assert row is None or "partly" not in row.reason, row
    pool = EmbedPool(svc.cfg, svc.info)   # the pool comes back: the retry indexes it whole
    pool.start()
    assert svc.parts is not None
    svc.parts.pool = svc.indexer.embedder = pool
    wait_for(lambda: (r := svc.manifest.file(str(big))) is not None and r.kind == "indexed",
             timeout=120, what="big.md indexed after the retry")
    row = svc.manifest.file(str(big))
    assert row.reason == "" and row.chunks >= 10
    wait_for(lambda: svc.store.all_ids() == svc.manifest.all_chunk_ids(), timeout=30,
             what="store and manifest to agree")
