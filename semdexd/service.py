"""The daemon's core: owns the model, the pool, the store, the manifest, the indexer, the watcher.

`Service` is built once by `semdexd run`. `start()` returns at once; the model is prepared and the
initial reconcile scan runs in the background while `status` reports ``starting``. The socket
server only sees `handlers()`: method name -> callable(params) -> result, raising `ApiError` for a
request it refuses.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import structlog

from semdexd import PROTOCOL_VERSION, __version__
from semdexd.config import Config
from semdexd.errors import ApiError
from semdexd.metrics import Metrics

log = structlog.get_logger()

Handler = Callable[[dict[str, Any]], Any]
READY_WAIT_S = 120.0
MAX_EMBED_TEXTS = 256


def _param(params: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None,
           required: bool = False) -> Any:
    """A typed request parameter, or ApiError('bad_request') naming what is wrong."""
    if name not in params or params[name] is None:
        if required:
            raise ApiError("bad_request", f"missing parameter: {name}")
        return default
    value = params[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ApiError("bad_request", f"parameter {name} must be {names}, not {type(value).__name__}")
    return value


class Service:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.error: str | None = None
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

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start background work (returns at once)."""
        self._boot_thread = threading.Thread(target=self._boot, name="boot", daemon=True)
        self._boot_thread.start()

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
        from semdexd.embed.model import prepare_model
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
        counter = self.pool.token_counter()
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

    def _wait_ready(self) -> None:
        if self.error:
            raise ApiError("unavailable", f"the daemon could not start: {self.error}")
        if not self._ready.wait(READY_WAIT_S):
            raise ApiError("unavailable", "the daemon is still starting (model loading); try again")
        if self.error:
            raise ApiError("unavailable", f"the daemon could not start: {self.error}")

    # ------------------------------------------------------------ API

    def handlers(self) -> dict[str, Handler]:
        return {"version": self.version, "status": self.status, "search": self.search,
                "similar": self.similar, "reindex": self.reindex, "pause": self.pause,
                "resume": self.resume, "embed": self.embed}

    def version(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"version": __version__, "protocol": PROTOCOL_VERSION, "model": self.cfg.model.name,
                "model_id": self.info.model_id if self.info else None}

    def state(self) -> str:
        if self.error:
            return "error"
        if not self._scanned.is_set():
            return "starting"
        if self.indexer.paused.is_set():
            return "paused"
        return "indexing" if self.indexer.busy() else "idle"

    def status(self, params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state(), "error": self.error, "version": __version__,
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

    def search(self, params: dict[str, Any]) -> dict[str, Any]:
        from semdexd.search import SearchRequest

        query = _param(params, "query", str, required=True)
        if not query.strip():
            raise ApiError("bad_request", "query is empty")
        req = SearchRequest(
            query=query,
            limit=max(1, min(_param(params, "limit", int, 10), 200)),
            mode=_param(params, "mode", str, "hybrid"),
            path=_param(params, "path", str),
            glob=_param(params, "glob", str),
            file_type=_param(params, "type", (str, list)),
            since=_param(params, "since", (int, float)),
            per_file=max(1, _param(params, "per_file", int, 3)),
        )
        if req.mode not in ("hybrid", "semantic", "lexical"):
            raise ApiError("bad_request", "mode must be hybrid, semantic or lexical")
        self._wait_ready()
        return {"hits": self.searcher.search(req)}

    def similar(self, params: dict[str, Any]) -> dict[str, Any]:
        path = _param(params, "path", str, required=True)
        line = _param(params, "line", int)
        limit = max(1, min(_param(params, "limit", int, 10), 200))
        self._wait_ready()
        return {"hits": self.searcher.similar(str(Path(path).expanduser().resolve()), line, limit)}

    def reindex(self, params: dict[str, Any]) -> dict[str, Any]:
        path = _param(params, "path", str)
        self._wait_ready()
        if path is None:
            targets = self.manifest.all_paths()
        else:
            p = Path(path).expanduser().resolve()
            targets = [str(p)] if not p.is_dir() else self.manifest.files_under(str(p))
        for t in targets:
            self.indexer.enqueue(t, delay=0.0, force=True)
        self.watcher.rescan()
        return {"queued": len(targets)}

    def pause(self, params: dict[str, Any]) -> dict[str, Any]:
        self._wait_ready()
        self.indexer.paused.set()
        return {"state": self.state()}

    def resume(self, params: dict[str, Any]) -> dict[str, Any]:
        self._wait_ready()
        self.indexer.paused.clear()
        return {"state": self.state()}

    def embed(self, params: dict[str, Any]) -> dict[str, Any]:
        texts = _param(params, "texts", list, required=True)
        kind = _param(params, "kind", str, "passage")
        if not texts or len(texts) > MAX_EMBED_TEXTS or not all(isinstance(t, str) for t in texts):
            raise ApiError("bad_request", f"texts must be a list of 1..{MAX_EMBED_TEXTS} strings")
        if kind not in ("passage", "query"):
            raise ApiError("bad_request", "kind must be passage or query")
        self._wait_ready()
        results = self.pool.embed(texts, kind=kind, priority=True)
        vectors = []
        for r in results:
            if not isinstance(r, np.ndarray):
                raise ApiError("bad_request", f"a text could not be embedded: {getattr(r, 'reason', r)}")
            vectors.append([float(x) for x in r])
        return {"vectors": vectors}
