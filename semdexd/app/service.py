"""The daemon's core: owns the model, the pool, the store, the manifest, the indexer, the watcher.

`Service` is built once by `semdexd run`. `start()` returns at once; the model is prepared and the
initial reconcile scan runs in the background while `status` reports ``starting``. The socket
API lives in `semdexd.app.handlers` (`handlers()` builds its map); this module keeps the
lifecycle and the views it reads (`state`, `status`, `ready`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from semdexd import __version__
from semdexd.backoff import Backoff
from semdexd.config import Config
from semdexd.index.changes import Urgency
from semdexd.index.metrics import Metrics
from semdexd.server.events import EventHub, Publisher
from semdexd.store.layout import Layout

if TYPE_CHECKING:
    from semdexd.embed.jobs import Result
    from semdexd.embed.model import ModelInfo
    from semdexd.embed.pool import EmbedPool
    from semdexd.index.pipeline import Indexer
    from semdexd.search import Searcher
    from semdexd.store.manifest import Manifest
    from semdexd.store.previous import PreviousIndex
    from semdexd.store.vectors import VectorStore
    from semdexd.watch.watcher import Watcher

log = structlog.get_logger()

STOP_JOIN_S = 10.0        # how long stop waits for the write in progress
INDEX_SHAPE = ("model", "chunk", "store", "paths")  # config sections fixed for a running index
OPEN_RETRY = Backoff(first_s=0.5, max_s=30.0)  # while the store cannot be opened (disk full, server down)


class NotOpen(RuntimeError):
    """A part of the service was asked for before the index was opened (or after it closed)."""


@dataclass
class Parts:
    """What an open index is made of. ``searcher`` serves ``previous`` while a rebuild for a new
    model or chunker catches up, else this index; ``watcher`` is replaced by a reload."""

    info: ModelInfo
    key: str
    manifest: Manifest
    store: VectorStore
    pool: EmbedPool
    indexer: Indexer
    searcher: Searcher
    watcher: Watcher
    previous: PreviousIndex | None = None

    def close(self) -> None:
        """Stop the watcher and the indexer, close the pool and the manifests (each failure logged)."""
        for name, close in (("watcher", self.watcher.stop), ("indexer", self.indexer.stop),
                            ("pool", self.pool.close), ("manifest", self.manifest.close)):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing must go on with the other parts
                log.warning("close_failed", part=name)
        if self.previous is not None:
            self.previous.close()


class Service:
    def __init__(self, cfg: Config) -> None:
        from semdexd.embed.memory import limit_arenas

        limit_arenas(cfg.server.malloc_arenas)  # before this service starts its threads
        self.cfg = cfg
        self.metrics = Metrics()
        self.error: str | None = None
        self.reload_error: str | None = None  # why the last SIGHUP reload was refused
        self.open_error: str | None = None    # why opening the store is being retried (degraded)
        self.restart_needed: str | None = None  # a reload changed what only a restart applies
        self.parts: Parts | None = None         # set once the index is open
        self._ready = threading.Event()
        self._scanned = threading.Event()
        self._stopping = threading.Event()
        self.settled = threading.Event()  # start-up work done: initial index, vector copies, old indexes
        self._lock = threading.Lock()
        self._boot_thread: threading.Thread | None = None
        self._started_at = time.time()
        self.events = EventHub()  # progress/state for subscribers (semdexd.server.events)
        self._publisher = Publisher(self.events, self.progress, log=log)

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start background work (returns at once)."""
        self._boot_thread = threading.Thread(target=self._boot, name="boot", daemon=True)
        self._boot_thread.start()
        self._publisher.start()

    def _boot(self) -> None:
        if not self._open_with_retry():
            return
        self._ready.set()
        self._warm_up()
        try:
            self.indexer.scan()
        except Exception:
            log.exception("initial_scan_failed")
        self._scanned.set()
        self._after_initial_index()
        self.settled.set()

    def _warm_up(self) -> None:
        """Answer one search now, so that the first real one does not wait for what a first
        search loads (Chroma's index: ~1 s at 95k chunks, 4.6 s at 506k; the pages of the
        lexical index). A failure is only logged: that first search will load it."""
        from semdexd.search import SearchRequest

        start = time.monotonic()
        try:
            self.searcher.search(SearchRequest(query="warm up", limit=1))
        except Exception as exc:
            log.warning("warm_up_failed", error=f"{type(exc).__name__}: {exc}")
            return
        log.info("warmed_up", s=round(time.monotonic() - start, 2))

    def _open_with_retry(self) -> bool:
        """`_open`; while it fails because the store is unavailable (a full disk, a Chroma server
        that does not answer) state is ``degraded`` and it is retried with back-off, so a daemon
        restarted on a full disk starts by itself once there is space. Other failures (no model, a
        bad config) are final: state ``error``."""
        from semdexd.index.health import describe, store_unavailable

        attempt = 0
        while not self._stopping.is_set():
            try:
                self.parts = self._open()
                if self.open_error is not None:
                    log.info("open_recovered")
                self.open_error = None
                return True
            except Exception as exc:
                if self._stopping.is_set():
                    return False
                if not store_unavailable(exc):
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.exception("start_failed")
                    return False
                self.open_error = describe(exc)
                attempt += 1
                delay = OPEN_RETRY.delay(attempt)
                log.warning("open_degraded", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)
                self._stopping.wait(delay)
        return False

    def _open(self) -> Parts:
        """Open the index of this config (building it beside an older one if the model or chunker
        changed) and start its indexer and watcher. A failure part-way closes what was opened."""
        from semdexd.embed.model import prepare_model
        from semdexd.embed.pool import EmbedPool
        from semdexd.index.pipeline import Indexer
        from semdexd.index.recovery import recover
        from semdexd.search import Searcher, for_model
        from semdexd.store.manifest import Manifest
        from semdexd.store.previous import META_COMPLETE, find_previous, record_model
        from semdexd.store.vectors import VectorStore
        from semdexd.watch.watcher import Watcher

        cfg = self.cfg
        info = prepare_model(cfg)
        if self._stopping.is_set():
            raise RuntimeError("stopped while starting")
        key = index_key(cfg, info)
        layout = Layout.of(cfg)
        with ExitStack() as undo:
            manifest = Manifest(layout.manifest(key))
            undo.callback(manifest.close)
            record_model(manifest, info)
            store = VectorStore(cfg, layout.collection_of(key))
            pool = EmbedPool(cfg, info)
            undo.callback(pool.close)
            pool.start()
            previous = find_previous(cfg, key, info, pool) if manifest.get_meta(META_COMPLETE) != "1" else None
            if previous is not None:
                undo.callback(previous.close)
            indexer = Indexer(cfg, manifest, store, pool, pool.token_counter().count, info, self.metrics)
            undo.callback(indexer.stop)
            recover(manifest, store, indexer.queue, indexer.backlog,
                    full_check=manifest.get_meta("clean_shutdown") != "1", follow_symlinks=cfg.index.follow_symlinks)
            manifest.set_meta("clean_shutdown", "0")
            searcher = Searcher(manifest, store, pool, for_model(info.name)) if previous is None else \
                Searcher(previous.manifest, previous.store, previous.embedder, for_model(previous.model.name))
            indexer.start()
            watcher = Watcher(indexer, cfg.index.reconcile_interval_s)
            watcher.start()
            undo.pop_all()
        log.info("started", folders=[str(f) for f in cfg.index.folders], model=info.model_id, index=key)
        return Parts(info, key, manifest, store, pool, indexer, searcher, watcher, previous)

    def _after_initial_index(self) -> None:
        """Once the first index has caught up: log its figures (with ``PROFILE=true`` the stage
        table too), copy into the manifest the vectors an older version did not keep there, and
        remove indexes of an older model/chunker, built beside this one."""
        from semdexd.index.backfill import keep_vectors

        parts = self._parts()
        while not self._stopping.is_set() and parts.indexer.busy():
            self._stopping.wait(0.5)
        if self._stopping.is_set():
            return
        log.info("initial_index_done", s=round(time.time() - self._started_at, 1), **parts.manifest.counts())
        self._log_profile()
        keep_vectors(parts.manifest, parts.store, parts.indexer.stopping)
        self._complete_rebuild(parts)
        layout = Layout.of(self.cfg)
        for old in layout.keys():
            if old == parts.key:
                continue
            try:
                parts.store.drop_collection(layout.collection_of(old))
            except Exception:
                log.warning("old_collection_drop_failed", index=old)
            shutil.rmtree(layout.folder(old), ignore_errors=True)
            log.info("old_index_removed", index=old)

    def _complete_rebuild(self, parts: Parts) -> None:
        """The new index has caught up: mark it complete and serve it (no more previous)."""
        from semdexd.search import Searcher, for_model
        from semdexd.store.previous import META_COMPLETE

        try:
            parts.manifest.set_meta(META_COMPLETE, "1")
        except Exception as exc:  # a full disk: it is marked at a later start
            log.warning("complete_not_recorded", error=f"{type(exc).__name__}: {exc}")
        previous, parts.previous = parts.previous, None
        if previous is not None:
            parts.searcher = Searcher(parts.manifest, parts.store, parts.pool, for_model(parts.info.name))
            previous.close()
            log.info("serving_new_index", index=parts.key, previous=previous.key)

    def stop(self) -> None:
        """Stop promptly: the store write in progress completes, nothing prepared or embedded is
        drained (the next start's reconcile redoes it). The shutdown counts as clean (no full
        store/manifest check at the next start) only if every indexer thread ended and no write
        was failing."""
        self._stopping.set()
        self._publisher.stop()
        parts = self.parts
        clean = True
        if parts is not None:
            parts.watcher.stop()
            parts.indexer.request_stop()   # before the pool closes: nothing embedded after is written
            parts.pool.close()
            clean = parts.indexer.stop(timeout=STOP_JOIN_S) and not parts.indexer.health.degraded
            self._mark_shutdown(parts.manifest, clean)
            if parts.previous is not None:
                parts.previous.close()
        self._log_profile()
        log.info("stopped", clean=clean)

    @staticmethod
    def _mark_shutdown(manifest: Manifest, clean: bool) -> None:
        try:
            if clean:
                manifest.set_meta("clean_shutdown", "1")
            manifest.close()
        except Exception as exc:  # a full disk: the next start does the full check instead
            log.warning("clean_shutdown_not_recorded", error=f"{type(exc).__name__}: {exc}")

    def _log_profile(self) -> None:
        """With ``PROFILE=true``: the plan's stage breakdown, one event per stage, then counters."""
        if os.environ.get("PROFILE", "").lower() not in ("1", "true", "yes"):
            return
        snap = self.metrics.snapshot()
        for stage, figures in snap["stages"].items():
            avg_ms = round(1000 * figures["s"] / figures["calls"], 1) if figures["calls"] else 0.0
            log.info("profile_stage", stage=stage, time_pct=figures["share_pct"], total_s=figures["s"], avg_ms=avg_ms)
        log.info("profile_counters", **snap["counters"])

    def reload(self, cfg: Config) -> None:
        """Apply a new config (SIGHUP): added folders are indexed, removed ones purged.

        What shapes the running index (``[model]``, ``[chunk]``, ``[store]``, ``[paths]``) is fixed
        when it is opened and is not changed by a reload: its key (and folder) stays the one opened,
        so a reload never removes or mixes into the live index. A change there is logged and shown
        in ``status`` (``restart_needed``); the next start builds the new index beside the old one
        (and removes the old once the new has caught up).
        """
        from semdexd.watch.watcher import Watcher

        cfg = self._keep_index_shape(cfg)
        self.cfg = cfg
        if not self._ready.is_set():
            return
        parts = self._parts()
        with self._lock:
            parts.indexer.cfg = cfg
            parts.indexer.set_folders(cfg.index.folders)
            parts.watcher.stop()
            parts.watcher = Watcher(parts.indexer, cfg.index.reconcile_interval_s)
            parts.watcher.start()
        parts.watcher.rescan(Urgency.REQUESTED)   # a folder added goes ahead of the backlog
        log.info("reloaded", folders=[str(f) for f in cfg.index.folders])

    def _keep_index_shape(self, new: Config) -> Config:
        """``new`` with the running config's model/chunk/store/paths; notes what differed."""
        from dataclasses import replace

        changed = [name for name in INDEX_SHAPE if getattr(new, name) != getattr(self.cfg, name)]
        self.restart_needed = None
        if changed:
            self.restart_needed = (f"changed [{'], ['.join(changed)}] applies at the next restart "
                                   "(it shapes the index; a reload keeps the running one)")
            log.warning("reload_needs_restart", sections=changed)
        return replace(new, **{name: getattr(self.cfg, name) for name in INDEX_SHAPE})

    # ------------------------------------------------------------ the open index's parts

    def _parts(self) -> Parts:
        parts = self.parts
        if parts is None:
            raise NotOpen("the index is not open")
        return parts

    @property
    def info(self) -> ModelInfo:
        return self._parts().info

    @property
    def manifest(self) -> Manifest:
        return self._parts().manifest

    @property
    def store(self) -> VectorStore:
        return self._parts().store

    @property
    def pool(self) -> EmbedPool:
        return self._parts().pool

    @property
    def indexer(self) -> Indexer:
        return self._parts().indexer

    @property
    def watcher(self) -> Watcher:
        return self._parts().watcher

    @property
    def searcher(self) -> Searcher:
        return self._parts().searcher

    @property
    def previous(self) -> PreviousIndex | None:
        return self.parts.previous if self.parts is not None else None

    # ------------------------------------------------------------ actions for the API

    def pause(self) -> None:
        """Stop taking files from the queue (events keep being queued) until `resume`."""
        self.indexer.paused.set()

    def resume(self) -> None:
        self.indexer.paused.clear()

    def reindex(self, path: Path | None) -> int:
        """Index again, model and all, every file under ``path`` (a file or folder; None: every
        indexed file), then rescan for files not yet indexed. Returns how many were queued."""
        parts = self._parts()
        if path is None:
            targets = parts.manifest.all_paths()
        else:
            targets = [str(path)] if not path.is_dir() else parts.manifest.files_under(str(path))
        for target in targets:
            parts.indexer.enqueue(target, delay=0.0, force=True, urgency=Urgency.REQUESTED)
        parts.watcher.rescan(Urgency.REQUESTED)
        return len(targets)

    def serving_index(self) -> Searcher:
        """The searcher answering now: the previous index's during a rebuild, else this one's. Take
        it once per answer, so that a whole answer comes from one index."""
        return self.searcher

    def embed_texts(self, texts: Sequence[str], kind: str) -> list[Result]:
        """Vectors from the pool's priority lane (the `embed` method)."""
        return self.pool.embed(list(texts), kind="query" if kind == "query" else "passage", priority=True)

    def model_id(self) -> str | None:
        """The running model's id, once prepared."""
        return self.parts.info.model_id if self.parts is not None else None

    # ------------------------------------------------------------ views for the API

    def health(self) -> dict[str, Any]:
        """Why the daemon is degraded, for `status`: ``{"degraded": bool, "reason": str|None,
        "since": epoch s|None, "failures": int, "retry_in_s": float|None, "pending_files": int}``.
        Degraded = a store write (or opening the store) fails for now and is retried by itself;
        searches keep being answered from what is indexed."""
        from semdexd.index.health import HealthSnapshot

        parts = self.parts  # read once: a retried open may set it meanwhile
        snap = parts.indexer.health.snapshot() if parts else HealthSnapshot(False, None, None, 0, None)
        out = snap.as_dict()
        if self.open_error and not self._ready.is_set():
            out.update(degraded=True, reason=self.open_error)
        out["pending_files"] = (parts.indexer.queue.pending() + parts.indexer.queue.in_flight()) if parts else 0
        return out

    def serving(self) -> dict[str, Any]:
        """Which index answers searches: the running one, or the previous one while a model or
        chunker change is being rebuilt (``{"index": key, "previous": bool, "model": id}``)."""
        parts = self.parts
        if parts is not None and parts.previous is not None:
            return {"index": parts.previous.key, "previous": True, "model": parts.previous.model.model_id,
                    "building": parts.key}
        return {"index": parts.key if parts else None, "previous": False, "model": self.model_id()}

    def state(self) -> str:
        if self.error:
            return "error"
        if self.open_error and not self._ready.is_set():
            return "degraded"
        if not self._scanned.is_set():
            return "starting"
        if self.indexer.health.degraded:
            return "degraded"
        if self.indexer.paused.is_set():
            return "paused"
        return "indexing" if self.indexer.busy() else "idle"

    @property
    def ready(self) -> threading.Event:
        """Set once the model, store and index are open (searches can run)."""
        return self._ready

    def progress(self) -> dict[str, Any]:
        """The figures pushed to subscribers (``progress`` events): cheap, no pool or metrics."""
        out: dict[str, Any] = {"state": self.state(), "error": self.error, "files_done": 0, "files_total": 0,
                               "files_queued": 0, "chunks": 0}
        if self._ready.is_set():
            counts = self.manifest.tallies()
            queued = self.indexer.queue.pending() + self.indexer.queue.in_flight()
            done = counts["indexed"] + counts["skipped"] + counts["failed"]
            out.update(files_done=done, files_total=done + queued, files_queued=queued, chunks=counts["chunks"],
                       chunks_awaiting=counts["chunks_awaiting"])
        return out

    def status(self) -> dict[str, Any]:
        """The ``status`` result."""
        out: dict[str, Any] = {"state": self.state(), "error": self.error, "reload_error": self.reload_error,
                               "version": __version__,
                               "folders": [str(f) for f in self.cfg.index.folders],
                               "uptime_s": round(time.time() - self._started_at, 1),
                               "files_indexed": 0, "files_failed": 0, "files_skipped": 0,
                               "files_queued": 0, "files_total": 0, "chunks": 0, "failures": []}
        out.update(degraded=self.health(), restart_needed=self.restart_needed,
                   serving=self.serving())
        if not self._ready.is_set():
            return out
        counts = self.manifest.counts()
        snap = self.metrics.snapshot()
        queued = self.indexer.queue.pending() + self.indexer.queue.in_flight()
        done = counts["indexed"] + counts["skipped"] + counts["failed"]
        out.update(files_indexed=counts["indexed"], files_failed=counts["failed"],
                   files_skipped=counts["skipped"], files_queued=queued, files_total=done + queued,
                   chunks=counts["chunks"], failures=self.manifest.problems(),
                   model=self.info.model_id, pool=self.pool.stats(), **snap)
        out.update(self._words_and_meaning(counts, queued, snap["counters"]))
        return out

    def _words_and_meaning(self, counts: dict[str, int], queued: int, counters: dict[str, Any]) -> dict[str, Any]:
        """``words``: files whose words are searchable, files queued for them, an ETA; ``meaning``:
        files and chunks with their vectors, those awaiting them, an ETA (each ETA from the rate
        since the start). ``eta_s``: until both are done."""
        words_eta = self._eta(queued, int(counters.get("files_written", 0)))
        meaning_eta = self._eta(counts["chunks_awaiting"], int(counters.get("chunks_embedded", 0)))
        words = {"files": counts["indexed"], "files_queued": queued, "eta_s": words_eta}
        meaning = {"files": counts["indexed"] - counts["files_awaiting"], "files_awaiting": counts["files_awaiting"],
                   "chunks": counts["chunks"] - counts["chunks_awaiting"], "chunks_awaiting": counts["chunks_awaiting"],
                   "eta_s": meaning_eta}
        etas = [e for e in (words_eta, meaning_eta) if e is not None]
        return {"words": words, "meaning": meaning, "eta_s": max(etas) if etas else None}

    def _eta(self, remaining: int, done: int) -> float | None:
        """Seconds until ``remaining`` more are done, at the rate ``done`` took since the start."""
        elapsed = time.time() - self._started_at
        if not remaining or not done:
            return None
        return round(remaining * elapsed / done, 1)

def index_key(cfg: Config, info: ModelInfo) -> str:
    """Changes whenever a vector or a chunk boundary would: model, chunker, chunk settings."""
    from semdexd.chunk import CHUNKER_VERSION

    parts = [info.model_id, CHUNKER_VERSION, str(cfg.chunk.target_tokens), str(cfg.chunk.overlap_tokens),
             str(info.max_tokens)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]
