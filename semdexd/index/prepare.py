"""Stage 1's work on one path: what it needs, decided against the manifest.

A path outside the roots, ignored, gone or now a folder is forgotten; one unchanged since it was
recorded needs nothing; a symlink not followed, a file that cannot be read or holds no text is
recorded with its kind and reason; otherwise it is extracted and chunked (journalled as being read
meanwhile: a file the daemon dies reading is found at the next start, `semdexd.index.recovery`),
and its chunks are diffed against the manifest's: new ones await vectors, stale ones leave the
store. The result is a `FileJob` for the writer (`semdexd.index.pipeline`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from semdexd.chunk import cap_chunks, chunk_budget_chars, chunk_text
from semdexd.config import Config
from semdexd.extract import EXTRACTOR_VERSION, extract
from semdexd.extract.result import cap_text
from semdexd.faults import Faults
from semdexd.index.changes import Urgency
from semdexd.index.metrics import Metrics
from semdexd.kinds import Kind
from semdexd.store.manifest import ChunkRow, FileUpdate, Manifest
from semdexd.tree.roots import Roots

log = structlog.get_logger()


def chunk_id(path: str, chunk_hash: str, occurrence: int) -> str:
    """Deterministic id: the same text at the same path (n-th occurrence) always gets the same id."""
    return hashlib.sha256(f"{path}\0{chunk_hash}\0{occurrence}".encode()).hexdigest()[:32]


@dataclass
class FileJob:
    """What a file's words commit changes."""

    path: str
    update: FileUpdate | None            # what the manifest records; None: nothing to record
    forget: bool = False                 # the file is gone (or excluded): drop it everywhere
    new: list[ChunkRow] = field(default_factory=list)     # chunks new in this version: they await vectors
    stale: list[str] = field(default_factory=list)        # ids to delete from the store
    urgency: Urgency = Urgency.BACKLOG


def stat_of(p: Path, follow_symlinks: bool) -> os.stat_result:
    """lstat; with ``follow_symlinks`` the target's stat (so its edits are noticed), or the
    link's own lstat when the link is broken."""
    st = os.lstat(p)
    if stat.S_ISLNK(st.st_mode) and follow_symlinks:
        try:
            return os.stat(p)
        except OSError:
            return st
    return st


def forget(manifest: Manifest, path: str) -> FileJob:
    """``path`` is gone (or no longer ours): drop it everywhere."""
    stale = [r.id for r in manifest.chunks_of(path)]
    return FileJob(path, update=None, forget=True, stale=stale)


def record(manifest: Manifest, path: str, st: os.stat_result | None, kind: Kind, reason: str,
           content_hash: str = "", file_type: str = "") -> FileJob:
    """A skipped or failed file: no chunks, its kind and reason kept for `status`."""
    stale = [r.id for r in manifest.chunks_of(path)]
    size, mtime = (st.st_size, st.st_mtime_ns) if st else (-1, -1)
    log.info("file_skipped", path=path, kind=str(kind), reason=reason)
    update = FileUpdate(path, size, mtime, content_hash, kind, reason, file_type, (), EXTRACTOR_VERSION)
    return FileJob(path, update, stale=stale)


class Preparer:
    """Reads files for the prepare stage: extraction and chunking within the configured caps."""

    def __init__(self, cfg: Config, manifest: Manifest, count_tokens: Callable[[Sequence[str]], list[int]],
                 max_tokens: int, metrics: Metrics, faults: Faults) -> None:
        self.cfg = cfg
        self.manifest = manifest
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.metrics = metrics
        self.faults = faults

    def prepare(self, path: str, roots: Roots, force: bool = False) -> FileJob:
        """Decide what ``path`` needs (under ``roots``): forget it, record a skip, or (re)index
        changed chunks."""
        p = Path(path)
        where = roots.root_of(p)
        if where is None or where[1].ignored(p, is_dir=False):
            return forget(self.manifest, path)
        old = self.manifest.file(path)
        try:
            st = stat_of(p, self.cfg.index.follow_symlinks)
        except FileNotFoundError:
            return forget(self.manifest, path)
        except OSError as exc:
            return record(self.manifest, path, None, Kind.FAILED, f"failed: cannot stat: {exc.strerror}")
        if old and not force and (old.size, old.mtime_ns) == (st.st_size, st.st_mtime_ns) \
                and not self._reread(old):
            return FileJob(path, update=None)  # nothing changed since it was recorded
        if stat.S_ISLNK(st.st_mode):
            reason = ("skipped: broken symlink" if self.cfg.index.follow_symlinks
                      else "skipped: symlink (follow_symlinks is off)")
            return record(self.manifest, path, st, Kind.SKIPPED, reason)
        if stat.S_ISDIR(st.st_mode):
            return forget(self.manifest, path)
        self.manifest.journal.mark_preparing(path)      # cleared once read: see `semdexd.index.recovery`
        try:
            return self._read(path, p, st, old, force)
        finally:
            self.manifest.journal.clear_preparing(path)

    @staticmethod
    def _reread(old: Any) -> bool:
        """A skip or failure decided by another extractor version is worth reading again."""
        return bool(not old.kind.searchable and old.kind != Kind.POISON and old.extractor != EXTRACTOR_VERSION)

    def _read(self, path: str, p: Path, st: os.stat_result, old: Any, force: bool) -> FileJob:
        """Extract and chunk ``path`` (journalled as being read by the caller)."""
        self.faults.stage("prepare", p.name)
        with self.metrics.stage("extract"):
            ex = extract(p, max_bytes=int(self.cfg.index.max_file_mb * 1024 * 1024),
                         max_chars=int(self.cfg.index.max_text_mb * 1024 * 1024))
        if not ex.has_text:
            return record(self.manifest, path, st, ex.kind, ex.reason, ex.content_hash, ex.file_type)
        if old and old.kind.searchable and old.hash == ex.content_hash and not force:
            return self._unchanged(path, old, st)
        cap = self.cfg.index.max_chunks_per_file
        text = cap_text(ex.text, chunk_budget_chars(cap, self.cfg.chunk.target_tokens))
        with self.metrics.stage("chunk"):
            chunks = chunk_text(text.text, file_type=ex.file_type, count_tokens=self.count_tokens,
                                target_tokens=self.cfg.chunk.target_tokens, max_tokens=self.max_tokens,
                                overlap_tokens=self.cfg.chunk.overlap_tokens)
        chunks, reason = cap_chunks(chunks, cap, ex.reason, cut=bool(text.reason))
        rows = self._rows(path, chunks)
        existing = {r.id for r in self.manifest.chunks_of(path)}
        new = [r for r in rows if r.id not in existing]
        self.metrics.count("chunks_reused", len(rows) - len(new))
        if reason:
            log.info("file_truncated", path=path, reason=reason)
        kind = Kind.TRUNCATED if reason else Kind.INDEXED
        update = FileUpdate(path, st.st_size, st.st_mtime_ns, ex.content_hash, kind, reason,
                            ex.file_type, tuple(rows), EXTRACTOR_VERSION)
        return FileJob(path, update, new=new, stale=sorted(existing - {r.id for r in rows}))

    @staticmethod
    def _rows(path: str, chunks: Sequence[Any]) -> list[ChunkRow]:
        seen: dict[str, int] = {}
        rows = []
        for ordinal, c in enumerate(chunks):
            n = seen.get(c.hash, 0)
            seen[c.hash] = n + 1
            rows.append(ChunkRow(chunk_id(path, c.hash, n), path, ordinal, c.hash, c.start_line,
                                 c.end_line, c.start_byte, c.end_byte, c.text))
        return rows

    def _unchanged(self, path: str, old: Any, st: os.stat_result) -> FileJob:
        """Content unchanged (only touched): keep the chunks, refresh size/mtime."""
        rows = tuple(self.manifest.chunks_of(path))
        update = FileUpdate(path, st.st_size, st.st_mtime_ns, old.hash, old.kind, old.reason,
                            old.file_type, rows, old.extractor)
        return FileJob(path, update)
