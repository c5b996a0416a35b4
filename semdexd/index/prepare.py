"""Stage 1's work on one path: what it needs, decided against the manifest.

A path outside the roots, ignored, gone or now a folder is forgotten; one unchanged since it was
recorded needs nothing; a symlink not followed is recorded with its kind and reason (`plan`).
Otherwise it is read (`semdexd.index.read`: extracted and chunked), in the daemon (`read_here`,
journalled as being read meanwhile: a file the daemon dies reading is found at the next start,
`semdexd.index.recovery`) or in a reader process (`semdexd.index.readers`); a file without text
is recorded with its reason, and the chunks of one with text are diffed against the manifest's:
new ones await vectors, stale ones leave the store (`finish`). The result is a `FileJob` for the
writer (`semdexd.index.pipeline`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from semdexd.chunk import Chunk
from semdexd.chunk.units import CountTokens
from semdexd.config import Config
from semdexd.extract import EXTRACTOR_VERSION
from semdexd.faults import Faults
from semdexd.index.changes import Urgency
from semdexd.index.metrics import Metrics
from semdexd.index.read import Reading, ReadLimits, read_file
from semdexd.kinds import Kind
from semdexd.store.manifest import ChunkRow, FileRow, FileUpdate, Manifest
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


@dataclass(frozen=True)
class ToRead:
    """A file `Preparer.plan` found changed: to be read, then `Preparer.finish`ed."""

    path: str
    st: os.stat_result
    old: FileRow | None
    force: bool

    @property
    def unless_hash(self) -> str:
        """Content that needs no chunking: the recorded file's, unless a reread is forced."""
        return self.old.hash if self.old and self.old.kind.searchable and not self.force else ""


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
    """Decides what a path needs and turns what reading it gave into a `FileJob`."""

    def __init__(self, cfg: Config, manifest: Manifest, count_tokens: CountTokens, limits: ReadLimits,
                 metrics: Metrics, faults: Faults) -> None:
        self.cfg = cfg
        self.manifest = manifest
        self.count_tokens = count_tokens
        self.limits = limits
        self.metrics = metrics
        self.faults = faults

    def plan(self, path: str, roots: Roots, force: bool = False) -> FileJob | ToRead:
        """What ``path`` (under ``roots``) needs: a `FileJob` at once (forget it, record a skip,
        nothing), or a `ToRead`."""
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
        return ToRead(path, st, old, force)

    def read_here(self, todo: ToRead) -> Reading:
        """Read ``todo`` in this process, journalled as being read meanwhile."""
        self.manifest.journal.mark_preparing(todo.path)      # cleared once read: see `semdexd.index.recovery`
        try:
            self.faults.stage("prepare", Path(todo.path).name)
            return read_file(Path(todo.path), self.limits, self.count_tokens, todo.unless_hash)
        finally:
            self.manifest.journal.clear_preparing(todo.path)

    def finish(self, todo: ToRead, reading: Reading) -> FileJob:
        """The `FileJob` of ``todo`` read as ``reading``: a skip recorded, the touch of an
        unchanged file, or its chunks diffed against the manifest's."""
        self.metrics.add("extract", reading.extract_s)
        self.metrics.add("chunk", reading.chunk_s)
        path = todo.path
        if not reading.has_text:
            return record(self.manifest, path, None if reading.again else todo.st, reading.kind, reading.reason,
                          reading.content_hash, reading.file_type)
        if reading.unchanged and todo.old is not None:
            return self._unchanged(path, todo.old, todo.st)
        rows = self._rows(path, reading.chunks)
        existing = {r.id for r in self.manifest.chunks_of(path)}
        new = [r for r in rows if r.id not in existing]
        self.metrics.count("chunks_reused", len(rows) - len(new))
        if reading.reason:
            log.info("file_truncated", path=path, reason=reading.reason)
        update = FileUpdate(path, todo.st.st_size, todo.st.st_mtime_ns, reading.content_hash, reading.kind,
                            reading.reason, reading.file_type, tuple(rows), EXTRACTOR_VERSION)
        return FileJob(path, update, new=new, stale=sorted(existing - {r.id for r in rows}))

    @staticmethod
    def _reread(old: FileRow) -> bool:
        """A skip or failure decided by another extractor version is worth reading again."""
        return bool(not old.kind.searchable and old.kind != Kind.POISON and old.extractor != EXTRACTOR_VERSION)

    @staticmethod
    def _rows(path: str, chunks: Sequence[Chunk]) -> list[ChunkRow]:
        seen: dict[str, int] = {}
        rows = []
        for ordinal, c in enumerate(chunks):
            n = seen.get(c.hash, 0)
            seen[c.hash] = n + 1
            rows.append(ChunkRow(chunk_id(path, c.hash, n), path, ordinal, c.hash, c.start_line,
                                 c.end_line, c.start_byte, c.end_byte, c.text))
        return rows

    def _unchanged(self, path: str, old: FileRow, st: os.stat_result) -> FileJob:
        """Content unchanged (only touched): keep the chunks, refresh size/mtime."""
        rows = tuple(self.manifest.chunks_of(path))
        update = FileUpdate(path, st.st_size, st.st_mtime_ns, old.hash, old.kind, old.reason,
                            old.file_type, rows, old.extractor)
        return FileJob(path, update)
