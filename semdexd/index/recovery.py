"""What a start does before the pipeline runs, so that a crash anywhere ends in the clean result.

* Orphan vectors: store writes journalled as pending that no committed chunk owns were cut short;
  their ids are deleted from the store.
* Poison: a file the daemon died reading `POISON_AFTER_CRASHES` times (the manifest's
  ``preparing`` journal) is recorded as poison, its old chunks dropped, so it is skipped rather
  than retried in a crash loop.
* After an unclean stop, the full check: every id in the store is compared with the manifest
  (store-only ids deleted; a file whose embedded chunks the store lacks is forgotten and queued
  again).
* Files whose chunks await vectors join the backlog.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from semdexd.index.backlog import Backlog, Waiting
from semdexd.index.changes import ChangeQueue, Urgency
from semdexd.index.prepare import record, stat_of
from semdexd.kinds import Kind
from semdexd.store.manifest import Manifest
from semdexd.store.vectors import VectorStore

log = structlog.get_logger()

# A file the daemon died reading this many times (in a row, across restarts) is poison. Not 1:
# a kill -9 or an unrelated crash during a big file's read must not blacklist that file.
POISON_AFTER_CRASHES = 2


def recover(manifest: Manifest, store: VectorStore, queue: ChangeQueue, backlog: Backlog, *,
            full_check: bool, follow_symlinks: bool) -> dict[str, int]:
    """At start: delete orphan vectors of interrupted writes; with ``full_check`` (after a
    crash) also compare every id in the store with the manifest (store-only ids deleted,
    files whose embedded chunks are missing from the store queued again on ``queue``). Files
    whose chunks await vectors join ``backlog``."""
    orphans = manifest.journal.orphan_pending()
    if orphans:
        store.delete(orphans)
    manifest.journal.clear_pending()
    stats = {"orphans_deleted": len(orphans), "extra_deleted": 0, "files_requeued": 0,
             "poison": record_poison(manifest, store, follow_symlinks)}
    if full_check:
        stats["extra_deleted"], stats["files_requeued"] = _check_store(manifest, store, queue)
    awaiting = manifest.awaiting_files()
    for path, mtime_ns, size in awaiting:
        backlog.add(path, Waiting(Urgency.BACKLOG, mtime_ns, size))
    stats["files_awaiting"] = len(awaiting)
    log.info("recovered", **stats)
    return stats


def _check_store(manifest: Manifest, store: VectorStore, queue: ChangeQueue) -> tuple[int, int]:
    """Delete the store's ids the manifest does not know; forget and queue again the files whose
    embedded chunks the store lacks. Returns (ids deleted, files queued)."""
    in_store = store.all_ids()
    extra = sorted(in_store - manifest.all_chunk_ids())
    if extra:
        store.delete(extra)
    missing = manifest.all_chunk_ids(embedded=True) - in_store
    paths: set[str] = set()
    if missing:
        paths = {r.path for r in manifest.chunks_by_id(sorted(missing)).values()}
        for p in paths:
            # Forget it (so it is redone whole), with the vectors it still has in the
            # store: if the file changed meanwhile, nothing else would ever delete them.
            store.delete([r.id for r in manifest.chunks_of(p)])
            manifest.commit_files([], deleted=[p])
            queue.touch(p)
    return len(extra), len(paths)


def record_poison(manifest: Manifest, store: VectorStore, follow_symlinks: bool) -> int:
    """Files the process died reading `POISON_AFTER_CRASHES` times: recorded as poison
    (their old chunks dropped) so they are skipped, not retried in a crash loop."""
    crashed = manifest.journal.take_crashed(POISON_AFTER_CRASHES)
    for path, crashes in crashed:
        try:
            st: os.stat_result | None = stat_of(Path(path), follow_symlinks)
        except OSError:
            st = None
        reason = (f"failed: crashed the daemon while being read ({crashes} times): skipped "
                  f"(semdex reindex {path} to retry)")
        log.error("file_poison", path=path, crashes=crashes)
        job = record(manifest, path, st, Kind.POISON, reason)
        store.delete(job.stale)
        assert job.update is not None
        manifest.commit_files([job.update])
    return len(crashed)
