"""The daemon's core: owns the model, the pool, the store, the manifest, the indexer, the watcher.

`Service` is built once by `semdexd run`. `start()` returns at once; the model is prepared and the
initial reconcile scan runs in the background while `status` reports ``starting``. The socket
API lives in `semdexd.api.handlers` (`handlers()` builds its map); this module keeps the
lifecycle and the views it reads (`state`, `status`, `ready`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

import structlog

from semdexd import __version__
from semdexd.config import Config
from semdexd.events import EventHub, Publisher
from semdexd.metrics import Metrics

log = structlog.get_logger()



class Service:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.error: str | None = None
        self.reload_error: str | None = None  # why the last SIGHUP reload was refused
        self._ready = threading.Event()
        self._scanned = threading.Event()
        self._stopping = threading.Event()
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
        self.events = EventHub()  # progress/state for subscribers (semdexd.events)
        self._publisher = Publisher(self.events, self.progress, log=log)

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start background work (returns at once)."""
        self._boot_thread = threading.Thread(target=self._boot, name="boot", daemon=True)
        self._boot_thread.start()
        self._publisher.start()

    def _boot(self) -> None:
        try:
            self._open()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("start_failed")
            return
        self._ready.set()
        try:
            self.indexer.scan()
        except Exception:
            log.exception("initial_scan_failed")
        self._scanned.set()
        self._after_initial_index()

    def _open(self) -> None:
        from semdexd.embed.model import TokenCounter, prepare_model
        from semdexd.embed.pool import EmbedPool
        from semdexd.index import Indexer
        from semdexd.manifest import Manifest
        from semdexd.search import Searcher
        from semdexd.store import VectorStore
        from semdexd.watch import Watcher

        self.info = prepare_model(self.cfg)
        if self._stopping.is_set():
            raise RuntimeError("stopped while starting")
        key = self.index_key()
        self.manifest = Manifest(self.cfg.paths.data_dir / "index" / key / "manifest.sqlite3")
        self.store = VectorStore(self.cfg, f"{self.cfg.store.collection}-{key}")
        self.pool = EmbedPool(self.cfg, self.info)
        self.pool.start()
        counter = TokenCounter(self.info)
        self.indexer = Indexer(self.cfg, self.manifest, self.store, self.pool, counter.count,
                               self.info.max_tokens, self.metrics)
        clean = self.manifest.get_meta("clean_shutdown") == "1"
        self.indexer.recover(full_check=not clean)
        self.manifest.set_meta("clean_shutdown", "0")
        self.searcher = Searcher(self.manifest, self.store, self.pool)
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
        table too) and remove indexes of an older model/chunker, built beside this one."""
        while not self._stopping.is_set() and self.indexer.busy():
            self._stopping.wait(0.5)
        if self._stopping.is_set():
            return
        log.info("initial_index_done", s=round(time.time() - self._started_at, 1), **self.manifest.counts())
        self._log_profile()
        key = self.index_key()
        root = self.cfg.paths.data_dir / "index"
        for old in root.iterdir() if root.is_dir() else []:
            if old.name != key:
                try:
                    self.store.drop_collection(f"{self.cfg.store.collection}-{old.name}")
                except Exception:
                    log.warning("old_collection_drop_failed", index=old.name)
                shutil.rmtree(old, ignore_errors=True)
                log.info("old_index_removed", index=old.name)

    def stop(self, drain: bool = True) -> None:
        """Stop background work; with ``drain``, groups already prepared reach the store."""
        self._stopping.set()
        self._publisher.stop()
        if self.watcher:
            self.watcher.stop()
        if self.indexer:
            self.indexer.stop(timeout=60.0 if drain else 5.0)
        if self.pool:
            self.pool.close()
        if self.manifest:
            self.manifest.set_meta("clean_shutdown", "1")
            self.manifest.close()
        self._log_profile()
        log.info("stopped")

    def _log_profile(self) -> None:
        """With ``PROFILE=true``: the plan's stage breakdown, one event per stage, then counters."""
        if os.environ.get("PROFILE", "").lower() not in ("1", "true", "yes"):
            return
        snap = self.metrics.snapshot()
        for stage, figures in snap["stages"].items():  # type: ignore[union-attr]
            avg_ms = round(1000 * figures["s"] / figures["calls"], 1) if figures["calls"] else 0.0
            log.info("profile_stage", stage=stage, time_pct=figures["share_pct"], total_s=figures["s"], avg_ms=avg_ms)
        log.info("profile_counters", **snap["counters"])  # type: ignore[arg-type]

    def reload(self, cfg: Config) -> None:
        """Apply a new config (SIGHUP): added folders are indexed, removed ones purged."""
        from semdexd.watch import Watcher

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

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """The socket API's handler map (semdexd.api.handlers)."""
        from semdexd.api.handlers import Api

        return Api(self).handlers()

    # ------------------------------------------------------------ views for the API

    def state(self) -> str:
        if self.error:
            return "error"
        if not self._scanned.is_set():
            return "starting"
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
        out["eta_s"] = self._eta(queued, int(snap["counters"].get("files_written", 0)))  # type: ignore[union-attr]
        return out

    def _eta(self, queued: int, written: int) -> float | None:
        elapsed = time.time() - self._started_at
        if not queued or not written:
            return None
        return round(queued * elapsed / written, 1)
