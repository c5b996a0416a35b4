"""The indexing pipeline: a change to a path becomes the right chunks in the store and manifest.

Words first, meaning next:

    ChangeQueue ─▶ prepare (stat, read: extract + chunk, diff vs manifest) ─▶ write words ─┐
                   1 thread, most urgent paths first; reads in reader            │
                   processes while many files wait                               │
    Backlog (files whose chunks await vectors, best first) ◀──────────────────────┘
      ─▶ embed (pool) ─▶ write vectors
         2 threads        the same writer thread, words before vectors

The prepare stage reads a few files (a save) itself, and hands files to reader processes
(`semdexd.index.readers`, one per core) while at least ``[index] readers_from`` wait or the
readers are still running: reading is pure Python, and one thread of the daemon would both cap it at one
core and hold the GIL searches need.

Writing a file's words deletes its stale chunks from the store, then commits its row and chunks
to the manifest, its new chunks marked as awaiting vectors: from then on lexical and hybrid
search find it. Writing vectors journals their ids, adds those the store lacks, then marks the
chunks embedded in the manifest (last), for chunks that still await them (a file edited again
meanwhile has other chunks). One writer thread does both, so the two never interleave. A crash
anywhere leaves a state the start-up recovery (`semdexd.index.recovery`) and the reconcile scan
(`semdexd.index.reconcile`) turn into the clean result; chunks still awaiting vectors are found
again in the manifest. What a path needs (the prepare stage's work on one file) is decided in
`semdexd.index.prepare`.

Stopping is prompt: every stage waits on its queue with a short timeout and looks at the stop
flag; the write in progress completes, prepared or embedded groups are dropped (redone by the next
start's reconcile). A write the store refuses for now (disk full, server down: `semdexd.index.health`)
is kept and retried with back-off while the prepare stage pauses (state ``degraded``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from semdexd.backoff import Backoff
from semdexd.config import Config
from semdexd.embed.jobs import Embedder
from semdexd.embed.model import ModelInfo
from semdexd.faults import Faults
from semdexd.index.backlog import Backlog, Waiting
from semdexd.index.changes import Change, ChangeQueue, Urgency
from semdexd.index.health import WriteHealth, describe, store_unavailable
from semdexd.index.metrics import Metrics
from semdexd.index.prepare import FileJob, Preparer, ToRead, record
from semdexd.index.read import Reading, ReadLimits, read_error
from semdexd.index.readers import Readers, Setup
from semdexd.index.reconcile import reconcile
from semdexd.kinds import Kind
from semdexd.store.manifest import ChunkRow, Manifest
from semdexd.store.vectors import VectorStore, chunk_metadata
from semdexd.tree.roots import Roots

log = structlog.get_logger()

GROUP_CHUNKS = 64      # chunks per embed call: enough to keep every worker busy
TAKE_FILES = 32        # paths prepared per round
WORDS_CHUNKS = 200     # chunks per words commit, about (a file's are never split)
EMBED_FILES = 8        # files whose awaiting chunks one embed call takes, at most
POLL_S = 0.2           # how often a blocked stage looks at the stop flag
TRANSIENT_RETRY = Backoff(first_s=5.0, max_s=600.0)  # a transient failure in a row: 5 s, 10 s, 20 s, ... 10 min


@dataclass
class VectorJob:
    """The awaiting chunks of a few files, and what embedding made of them."""

    files: dict[str, Waiting]
    file_types: dict[str, str]
    chunks: list[ChunkRow]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    failures: dict[str, list[tuple[str, str]]] = field(default_factory=dict)   # path -> (id, why)
    transient: dict[str, str] = field(default_factory=dict)   # path -> a failure of the pool, not the text


class Indexer:
    """Owns the pipeline threads. `enqueue`/`scan` feed it; `stop()` ends them promptly.

    A write the store refuses because it is unavailable (disk full, server down) does not drop or
    re-embed anything: the writer keeps the group, marks `health` degraded and retries the same
    write with back-off, while the prepare stage pauses; the first write that succeeds clears it.
    """

    def __init__(self, cfg: Config, manifest: Manifest, store: VectorStore, embedder: Embedder,
                 count_tokens: Callable[[Sequence[str]], list[int]], info: ModelInfo,
                 metrics: Metrics) -> None:
        self.cfg = cfg
        self.manifest = manifest
        self.store = store
        self.embedder = embedder
        self.metrics = metrics
        self.queue = ChangeQueue()
        self.backlog = Backlog()
        self.roots = Roots(cfg, ())
        self.paused = threading.Event()
        self.health = WriteHealth()
        self._stopping = threading.Event()
        self._words_q: queue.Queue[list[FileJob]] = queue.Queue(maxsize=2)
        self._vectors_q: queue.Queue[VectorJob] = queue.Queue(maxsize=2)
        self._threads: list[threading.Thread] = []
        self.faults = Faults.from_env()   # test-only: crash or hang at a stage (semdexd.faults)
        limits = ReadLimits.of(cfg, info.max_tokens)
        self.preparer = Preparer(cfg, manifest, count_tokens, limits, metrics, self.faults)
        readers = cfg.reader_count(info.footprint)
        self.readers: Readers | None = Readers(Setup.of(info, limits, cfg.pool.nice), readers, self._stopping)
        self._attempts: dict[str, int] = {}    # transient failures in a row, per path
        self.set_folders(cfg.index.folders)

    # ------------------------------------------------------------ folders & scanning

    def set_folders(self, folders: Sequence[Path]) -> None:
        self.roots = Roots(self.cfg, folders)

    def scan(self, urgency: Urgency = Urgency.BACKLOG) -> int:
        """The reconcile scan over the current folders (`semdexd.index.reconcile`): returns paths
        queued."""
        return reconcile(self.roots, self.manifest, self.queue, self.metrics, urgency)

    def enqueue(self, path: str, delay: float | None = None, force: bool = False,
                urgency: Urgency = Urgency.LIVE) -> None:
        """``path`` may have changed (an event: `Urgency.LIVE`, debounced; ``force``: read it
        again even if its size and mtime did not change)."""
        self.queue.touch(path, self.cfg.index.debounce_ms / 1000 if delay is None else delay, force, urgency)

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        specs = [("index-prepare", self._prepare_loop), ("index-embed-1", self._embed_loop),
                 ("index-embed-2", self._embed_loop), ("index-write", self._write_loop)]
        for name, target in specs:
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    @property
    def stopping(self) -> threading.Event:
        """Set once the indexer is asked to stop (work outside its threads, such as
        `semdexd.index.backfill.keep_vectors`, stops with it)."""
        return self._stopping

    def request_stop(self) -> None:
        """Ask every stage to end: the write in progress completes, nothing else is drained."""
        self._stopping.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """`request_stop`, then join the threads (up to ``timeout`` s in all). What was prepared or
        embedded but not written is dropped: its files are not in the manifest as they are on
        disk, so the next start's reconcile scan queues them again (chunk ids are deterministic).
        True if every thread ended (no write left running)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("indexer_threads_left", threads=alive)
        self._threads.clear()
        return not alive

    def busy(self) -> bool:
        """Files wait for their words or their meaning."""
        return self.queue.pending() > 0 or self.queue.in_flight() > 0 or self.backlog.busy()

    # ------------------------------------------------------------ stage 1: prepare

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        """Put ``item`` on a bounded stage queue; False (dropped) if stopping first."""
        while not self._stopping.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        """The next item of a stage queue, or None once stopping."""
        while not self._stopping.is_set():
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return None

    def _held(self) -> bool:
        """Reading and embedding wait: paused by the user, or store writes failing."""
        return self.paused.is_set() or self.health.degraded

    def _prepare_loop(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._held():
                    self._stopping.wait(POLL_S)
                    continue
                changes = self.queue.take(TAKE_FILES, timeout=0.2)
                if self._held():   # since take began waiting
                    self.queue.give_back(changes)
                    continue
                if not changes:
                    if self.readers is not None:
                        self.readers.close_if_idle()
                    continue
                if not self._prepare(changes):
                    return
        finally:
            if self.readers is not None:
                self.readers.close()

    def _prepare(self, changes: list[Change]) -> bool:
        """Prepare ``changes`` and hand their words to the writer in commits of about
        `WORDS_CHUNKS` chunks; False if stopping first."""
        group: list[FileJob] = []
        rows = 0
        for job in self._jobs(changes):
            group.append(job)
            rows += len(job.update.chunks) if job.update is not None else 0
            if rows >= WORDS_CHUNKS:   # a live save's words wait for the commit before them: keep it short
                if not self._put(self._words_q, group):
                    return False
                group, rows = [], 0
        return not group or self._put(self._words_q, group)

    def _jobs(self, changes: list[Change]) -> Iterator[FileJob]:
        """The `FileJob` of each change: at once for those that need no reading, then the
        others as they are read."""
        todo: list[tuple[Change, ToRead]] = []
        for change in changes:
            planned = self._guarded(change, partial(self.preparer.plan, change.path, self.roots, change.force))
            if isinstance(planned, ToRead):
                todo.append((change, planned))
            else:
                yield planned
        for change, planned, reading in self._read(todo):
            yield self._guarded(change, partial(self.preparer.finish, planned, reading))

    def _read(self, todo: list[tuple[Change, ToRead]]) -> Iterator[tuple[Change, ToRead, Reading]]:
        """Read ``todo``: in reader processes while many files wait (or they still run), else
        here. Nothing more once stopping."""
        readers = self.readers
        if todo and readers is not None and (readers.running or len(todo) + self.queue.pending() >= self.cfg.index.readers_from):
            left = dict(enumerate(todo))
            try:
                for i, reading in readers.read([(t.path, t.unless_hash) for _, t in todo]):
                    yield *left.pop(i), reading
                return
            except OSError as exc:   # no reader process could start: read here from now on
                log.error("readers_unavailable", error=str(exc))
                readers.close()
                self.readers = None
                todo = list(left.values())
        for change, planned in todo:
            if self._stopping.is_set():
                return
            try:
                reading = self.preparer.read_here(planned)
            except Exception as exc:  # one bad file never stops the others
                log.exception("prepare_failed", path=change.path)
                reading = read_error(exc)
            yield change, planned, reading

    def _guarded(self, change: Change, step: Callable[[], Any]) -> Any:
        """``step()`` for ``change``, with the change's urgency; an error records the file as failed."""
        try:
            job = step()
        except Exception as exc:  # one bad file never stops the others
            log.exception("prepare_failed", path=change.path)
            job = record(self.manifest, change.path, None, Kind.FAILED, f"failed: {type(exc).__name__}: {exc}")
        if isinstance(job, FileJob):
            job.urgency = change.urgency
        return job

    # ------------------------------------------------------------ stage 2: embed

    def _embed_loop(self) -> None:
        while not self._stopping.is_set():
            if self._held():
                self._stopping.wait(POLL_S)
                continue
            # Words first: while files wait to be read, only what a person asked for is embedded
            # (the backlog's vectors would take the cores the reading needs).
            upto = Urgency.REQUESTED if self.queue.reading() else Urgency.BACKLOG
            taken = self.backlog.take(EMBED_FILES, timeout=0.2, upto=upto)
            if self._held():   # since take began waiting
                self.backlog.give_back(taken)
                continue
            if not taken:
                continue
            job = self._awaiting(dict(taken))
            if not job.chunks:
                self.backlog.done(list(job.files))
                continue
            try:
                self._embed(job)
            except Exception:
                if self._stopping.is_set():
                    return  # the pool was closed under us: the chunks still await, in the manifest
                log.exception("embed_failed", files=len(job.files))
                job.transient = {path: "embedding failed" for path in job.files}
            if self._stopping.is_set():
                return  # embedded while stopping: results may be "pool closed"; never write them
            if not self._put(self._vectors_q, job):
                return

    def _awaiting(self, files: dict[str, Waiting]) -> VectorJob:
        """The chunks of ``files`` that await vectors, at most about `GROUP_CHUNKS` (the first
        file whole, however large); files left out go back to the backlog."""
        chunks: list[ChunkRow] = []
        taken: dict[str, Waiting] = {}
        for path, waiting in files.items():
            if chunks and len(chunks) >= GROUP_CHUNKS:
                self.backlog.done([path])
                self.backlog.add(path, waiting)
                continue
            taken[path] = waiting
            chunks += self.manifest.awaiting_chunks([path])
        types = {path: row.file_type for path in taken if (row := self.manifest.file(path)) is not None}
        return VectorJob(taken, types, chunks)

    def _embed(self, job: VectorJob) -> None:
        with self.metrics.stage("embed"):
            results = self.embedder.embed([r.text for r in job.chunks], kind="passage")
        for r, value in zip(job.chunks, results):
            if isinstance(value, np.ndarray):
                job.vectors[r.id] = value
            elif value.transient:
                job.transient.setdefault(r.path, value.reason)
            else:
                job.failures.setdefault(r.path, []).append((r.id, f"lines {r.start_line}-{r.end_line}: {value.reason}"))
        self.metrics.count("chunks_embedded", len(job.chunks))

    # ------------------------------------------------------------ stage 3: write (words, then vectors)

    def _write_loop(self) -> None:
        while not self._stopping.is_set():
            item = self._next_write()
            if item is not None:
                self._write_until_done(item)

    def _next_write(self) -> list[FileJob] | VectorJob | None:
        """The next words commit if one waits (a live save goes ahead of the backlog's
        vectors), else the next vectors, else None after a short wait."""
        try:
            return self._words_q.get_nowait()
        except queue.Empty:
            pass
        try:
            return self._vectors_q.get(timeout=POLL_S / 4)
        except queue.Empty:
            pass
        try:
            return self._words_q.get(timeout=POLL_S / 4)
        except queue.Empty:
            return None

    def _write_until_done(self, item: list[FileJob] | VectorJob) -> None:
        """Write ``item``; while the store is unavailable keep it and retry with back-off (both
        writes are idempotent: stale ids deleted before the words commit, journalled ids,
        add-missing, manifest last)."""
        while not self._stopping.is_set():
            try:
                with self.metrics.stage("write"):
                    self.write_words(item) if isinstance(item, list) else self.write_vectors(item)
            except Exception as exc:
                if not store_unavailable(exc):
                    log.exception("write_failed", what="words" if isinstance(item, list) else "vectors")
                    self._retry_later(item)
                    return
                delay = self.health.failed(describe(exc))
                log.warning("write_degraded", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay,
                            failures=self.health.snapshot().failures)
                self._stopping.wait(delay)
                continue
            outage = self.health.recovered()
            if outage is not None:
                log.info("write_recovered", outage_s=round(outage, 1))
            return

    def write_words(self, group: list[FileJob]) -> None:
        """Commit the words of ``group``: stale chunks leave the store, then the manifest records
        each file (new chunks awaiting vectors); those files join the backlog."""
        updates = [job.update for job in group if job.update is not None and not job.forget]
        deleted = [job.path for job in group if job.forget]
        stale = [i for job in group for i in job.stale]
        if stale:
            self.store.delete(stale)
        self.faults.stage("after_delete")
        self.manifest.commit_files(updates, deleted)
        self.faults.stage("after_words")
        for job in group:
            self._attempts.pop(job.path, None)
            if job.forget:
                self.backlog.discard(job.path)
            elif job.new and job.update is not None:
                self.backlog.add(job.path, Waiting(job.urgency, job.update.mtime_ns, job.update.size))
                log.info("file_words", path=job.path, chunks=len(job.update.chunks), awaiting=len(job.new))
        self.queue.done([job.path for job in group])
        self.metrics.count("files_written", len(updates) + len(deleted))

    def write_vectors(self, job: VectorJob) -> None:
        """Store the vectors of ``job``'s chunks that still await them, then mark them embedded in
        the manifest (last); chunks no vector can be made for are dropped (their file indexed in
        part); files that met a transient failure go back to the backlog after a back-off."""
        awaiting = self.manifest.still_awaiting([r.id for r in job.chunks])
        rows = [r for r in job.chunks if r.id in awaiting and r.id in job.vectors]
        self.manifest.journal.add_pending((r.id, r.path) for r in rows)
        ids = [r.id for r in rows]
        present = self.store.existing(ids) if ids else set()  # an interrupted earlier write may have stored some
        keep = [r for r in rows if r.id not in present]
        if keep:
            self.store.add([r.id for r in keep], np.stack([job.vectors[r.id] for r in keep]),
                           [chunk_metadata(r.path, job.file_types.get(r.path, "")) for r in keep])
        self.faults.stage("after_add")
        failed = {path: ([cid for cid, _ in fails if cid in awaiting],
                         f"partly indexed: {len(fails)} chunk(s) failed ({fails[0][1]})")
                  for path, fails in job.failures.items()}
        self.manifest.commit_vectors({r.id: job.vectors[r.id] for r in rows}, failed)
        if rows:
            self.faults.stage("after_vectors")
        for path in job.files:
            if path in job.transient:
                self._retry_later(job, path)
            else:
                self._attempts.pop(path, None)
                log.info("file_indexed", path=path, embedded=sum(1 for r in rows if r.path == path))
        self.backlog.done(list(job.files))

    def _retry_later(self, item: list[FileJob] | VectorJob, only: str | None = None) -> None:
        """Nothing of ``item`` is recorded for its files (or for the file ``only``), which keep
        what the manifest has; each is taken again after a back-off that doubles per failure in
        a row (5 s .. 10 min). Paths dropped while stopping are found again at the next start."""
        if isinstance(item, list):
            self.queue.done([job.path for job in item])
            paths = [job.path for job in item]
        else:
            paths = [only] if only else list(item.files)
            self.backlog.done(paths)
        if self._stopping.is_set():
            return
        for path in paths:
            attempt = self._attempts[path] = self._attempts.get(path, 0) + 1
            delay = TRANSIENT_RETRY.delay(attempt)
            reason = item.transient.get(path, "embedding failed") if isinstance(item, VectorJob) else "write failed"
            log.warning("file_retry_later", path=path, attempt=attempt, delay_s=delay, reason=reason)
            if isinstance(item, VectorJob):
                self.backlog.add(path, item.files[path], delay=delay)
            else:
                self.queue.touch(path, delay=delay, force=True)
        self.metrics.count("files_retried", len(paths))
