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
from collections.abc import Callable
from typing import Any

import structlog

from semdexd import __version__
from semdexd.config import Config
from semdexd.index.metrics import Metrics
from semdexd.server.events import EventHub, Publisher

log = structlog.get_logger()

STOP_JOIN_S = 10.0        # how long stop waits for the write in progress
INDEX_SHAPE = ("model", "chunk", "store", "paths")  # config sections fixed for a running index
OPEN_RETRY_MAX_S = 30.0   # back-off ceiling while the store cannot be opened (disk full, server down)


class Service:
    def __init__(self, cfg: Config) -> None:
        from semdexd.embed.memory import limit_arenas

        limit_arenas(cfg.server.malloc_arenas)  # before this service starts its threads
        self.cfg = cfg
        self.metrics = Metrics()
        self.error: str | None = None
        self.reload_error: str | None = None  # why the last SIGHUP reload was refused
        self.open_error: str | None = None    # why opening the store is being retried (degraded)
        self._key: str | None = None          # the running index's key, fixed when it was opened
        self.restart_needed: str | None = None  # a reload changed what only a restart applies
        self.previous: Any = None             # the index served while a rebuild catches up
        self._ready = threading.Event()
        self._scanned = threading.Event()
        self._stopping = threading.Event()
        self.settled = threading.Event()  # start-up work done: initial index, vector copies, old indexes
        self._lock = threading.Lock()
        self._boot_thread: threading.Thread | None = None
        self._started_at = time.time()
        self.info: Any = None
        self.pool: Any = None
        self.manifest: Any = None
        self.store: Any = None
        self.indexer: Any = None
        self.watcher: Any = None
        self.searcher: Any = None
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

        delay = 0.5
        while not self._stopping.is_set():
            try:
                self._open()
                if self.open_error is not None:
                    log.info("open_recovered")
                self.open_error = None
                return True
            except Exception as exc:
                self._close_parts()
                if self._stopping.is_set():
                    return False
                if not store_unavailable(exc):
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.exception("start_failed")
                    return False
                self.open_error = describe(exc)
                log.warning("open_degraded", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)
                self._stopping.wait(delay)
                delay = min(OPEN_RETRY_MAX_S, delay * 2)
        return False

    def _close_parts(self) -> None:
        """Undo a partial `_open` so that it can be retried."""
        for name in ("watcher", "indexer", "pool", "manifest"):
            part = getattr(self, name)
            if part is None:
                continue
            try:
                part.close() if name in ("pool", "manifest") else part.stop()
            except Exception:
                log.warning("close_failed", part=name)
            setattr(self, name, None)
        if self.previous is not None:
            self.previous.close()
        self.store = self.searcher = self.previous = None

    def _open(self) -> None:
        from semdexd.embed.model import prepare_model
        from semdexd.embed.pool import EmbedPool
        from semdexd.index.pipeline import Indexer
        from semdexd.search import Searcher
        from semdexd.store.manifest import Manifest
        from semdexd.store.previous import META_COMPLETE, find_previous, record_model
        from semdexd.store.vectors import VectorStore
        from semdexd.watch.watcher import Watcher

        self.info = prepare_model(self.cfg)
        if self._stopping.is_set():
            raise RuntimeError("stopped while starting")
        key = self._key = self.index_key()
        self.manifest = Manifest(self.cfg.paths.data_dir / "index" / key / "manifest.sqlite3")
        record_model(self.manifest, self.info)
        self.store = VectorStore(self.cfg, f"{self.cfg.store.collection}-{key}")
        self.pool = EmbedPool(self.cfg, self.info)
        self.pool.start()
        if self.manifest.get_meta(META_COMPLETE) != "1":
            self.previous = find_previous(self.cfg, key, self.info, self.pool)
        counter = self.pool.token_counter()
        self.indexer = Indexer(self.cfg, self.manifest, self.store, self.pool, counter.count,
                               self.info.max_tokens, self.metrics)
        clean = self.manifest.get_meta("clean_shutdown") == "1"
        self.indexer.recover(full_check=not clean)
        self.manifest.set_meta("clean_shutdown", "0")
        self.searcher = Searcher(self.manifest, self.store, self.pool) if self.previous is None else \
            Searcher(self.previous.manifest, self.previous.store, self.previous.embedder)
        self.indexer.start()
        self.watcher = Watcher(self.indexer, self.cfg.index.reconcile_interval_s)
        self.watcher.start()
        log.info("started", folders=[str(f) for f in self.cfg.index.folders], model=self.info.model_id,
                 index=key)

    def index_key(self) -> str:
        """Changes whenever a vector or a chunk boundary would: model, chunker, chunk settings."""
        from semdexd.chunk import CHUNKER_VERSION

        parts = [self.info.model_id, CHUNKER_VERSION, str(self.cfg.chunk.target_tokens),
                 str(self.cfg.chunk.overlap_tokens), str(self.info.max_tokens)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]

    def _after_initial_index(self) -> None:
        """Once the first index has caught up: log its figures (with ``PROFILE=true`` the stage
        table too), copy into the manifest the vectors an older version did not keep there, and
        remove indexes of an older model/chunker, built beside this one."""
        while not self._stopping.is_set() and self.indexer.busy():
            self._stopping.wait(0.5)
        if self._stopping.is_set():
            return
        log.info("initial_index_done", s=round(time.time() - self._started_at, 1), **self.manifest.counts())
        self._log_profile()
        self.indexer.keep_vectors()
        self._complete_rebuild()
        key = self._key
        root = self.cfg.paths.data_dir / "index"
        for old in root.iterdir() if root.is_dir() else []:
            if old.name != key:
                try:
                    self.store.drop_collection(f"{self.cfg.store.collection}-{old.name}")
                except Exception:
                    log.warning("old_collection_drop_failed", index=old.name)
                shutil.rmtree(old, ignore_errors=True)
                log.info("old_index_removed", index=old.name)

    def _complete_rebuild(self) -> None:
        """The new index has caught up: mark it complete and serve it (no more previous)."""
        from semdexd.search import Searcher
        from semdexd.store.previous import META_COMPLETE

        try:
            self.manifest.set_meta(META_COMPLETE, "1")
        except Exception as exc:  # a full disk: it is marked at a later start
            log.warning("complete_not_recorded", error=f"{type(exc).__name__}: {exc}")
        previous, self.previous = self.previous, None
        if previous is not None:
            self.searcher = Searcher(self.manifest, self.store, self.pool)
            previous.close()
            log.info("serving_new_index", index=self._key, previous=previous.key)

    def stop(self, drain: bool = True) -> None:
        """Stop promptly: the store write in progress completes, nothing prepared or embedded is
        drained (the next start's reconcile redoes it). The shutdown counts as clean (no full
        store/manifest check at the next start) only if every indexer thread ended and no write
        was failing. ``drain`` is kept for callers; stopping is prompt either way."""
        self._stopping.set()
        self._publisher.stop()
        clean = True
        if self.watcher:
            self.watcher.stop()
        if self.indexer:
            self.indexer.request_stop()   # before the pool closes: nothing embedded after is written
        if self.pool:
            self.pool.close()
        if self.indexer:
            clean = self.indexer.stop(timeout=STOP_JOIN_S) and not self.indexer.health.degraded
        if self.manifest:
            self._mark_shutdown(clean)
        if self.previous is not None:
            self.previous.close()
        self._log_profile()
        log.info("stopped", clean=clean)

    def _mark_shutdown(self, clean: bool) -> None:
        try:
            if clean:
                self.manifest.set_meta("clean_shutdown", "1")
            self.manifest.close()
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
        with self._lock:
            self.indexer.cfg = cfg
            self.indexer.set_folders(cfg.index.folders)
            self.watcher.stop()
            self.watcher = Watcher(self.indexer, cfg.index.reconcile_interval_s)
            self.watcher.start()
        self.watcher.rescan()
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

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """The socket API's handler map (semdexd.app.handlers)."""
        from semdexd.app.handlers import Api

        return Api(self).handlers()

    # ------------------------------------------------------------ views for the API

    def health(self) -> dict[str, Any]:
        """Why the daemon is degraded, for `status`: ``{"degraded": bool, "reason": str|None,
        "since": epoch s|None, "failures": int, "retry_in_s": float|None, "pending_files": int}``.
        Degraded = a store write (or opening the store) fails for now and is retried by itself;
        searches keep being answered from what is indexed."""
        from semdexd.index.health import HealthSnapshot

        indexer = self.indexer  # read once: a retried open may reset it meanwhile
        snap = indexer.health.snapshot() if indexer else HealthSnapshot(False, None, None, 0, None)
        out = snap.as_dict()
        if self.open_error and not self._ready.is_set():
            out.update(degraded=True, reason=self.open_error)
        out["pending_files"] = (indexer.queue.pending() + indexer.queue.in_flight()) if indexer else 0
        return out

    def serving(self) -> dict[str, Any]:
        """Which index answers searches: the running one, or the previous one while a model or
        chunker change is being rebuilt (``{"index": key, "previous": bool, "model": id}``)."""
        if self.previous is not None:
            return {"index": self.previous.key, "previous": True, "model": self.previous.model_id,
                    "building": self._key}
        return {"index": self._key, "previous": False, "model": self.info.model_id if self.info else None}

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
            counts = self.manifest.counts()
            queued = self.indexer.queue.pending() + self.indexer.queue.in_flight()
            done = counts["indexed"] + counts["skipped"] + counts["failed"]
            out.update(files_done=done, files_total=done + queued, files_queued=queued, chunks=counts["chunks"])
        return out

    def status(self, _params: object = None) -> dict[str, Any]:
        """The ``status`` result (``_params`` ignored: kept for callers of the old handler form)."""
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
        out["eta_s"] = self._eta(queued, int(snap["counters"].get("files_written", 0)))
        return out

    def _eta(self, queued: int, written: int) -> float | None:
        elapsed = time.time() - self._started_at
        if not queued or not written:
            return None
        return round(queued * elapsed / written, 1)
