"""Live changes: filesystem events on the configured folders -> paths in the indexer's change queue.

The watcher only says *which* paths may have changed; the indexer decides what changed by
comparing with the manifest, so a dropped, duplicated or reordered event is harmless. A folder
created, moved or deleted is expanded into its files; an ignore file that changes triggers a
rescan; a periodic light reconcile catches whatever the OS dropped (inotify limits, overflows).

One `Backend` is picked when the watcher is built: on Linux `InotifyTree` (one inotify watch per
*admitted* folder, one reader thread), elsewhere `ObserverBackend` (watchdog's Observer, one
recursive watch per root). Both report to the same `ChangeSink`.
"""

from __future__ import annotations

import sys
import threading
from typing import Protocol

import structlog

from semdexd.index.changes import Urgency
from semdexd.index.pipeline import Indexer
from semdexd.watch.sink import ChangeSink

log = structlog.get_logger()


class Backend(Protocol):
    """A source of filesystem events for the roots of its sink."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def ensure_roots(self) -> None:
        """Watch every root that exists and has no watch yet (called before each reconcile)."""


class Watcher:
    """Feeds ``indexer`` from filesystem events on ``indexer.roots``; `start()`/`stop()`;
    `rescan()` on demand. Threads: the backend's (one on Linux, whatever the number of folders)
    and the reconciler."""

    def __init__(self, indexer: Indexer, reconcile_interval_s: int, use_inotify: bool | None = None) -> None:
        self.indexer = indexer
        self.reconcile_interval_s = reconcile_interval_s
        sink = ChangeSink(indexer.roots, indexer, indexer.manifest.files_under, self.rescan)
        if use_inotify is None:
            use_inotify = sys.platform.startswith("linux")
        self.backend: Backend = _inotify(sink) if use_inotify else _observer(sink)
        self._stop = threading.Event()
        self._rescan = threading.Event()
        self._urgency = Urgency.BACKLOG    # of the next scan: the most urgent asked for
        self._reconciler: threading.Thread | None = None

    def start(self) -> None:
        self.backend.start()
        self._reconciler = threading.Thread(target=self._reconcile_loop, name="reconcile", daemon=True)
        self._reconciler.start()

    def stop(self) -> None:
        self._stop.set()
        self._rescan.set()
        self.backend.stop()
        if self._reconciler:
            self._reconciler.join(5)

    def rescan(self, urgency: Urgency = Urgency.BACKLOG) -> None:
        """Ask for a reconcile scan soon (from any thread); what it finds is queued with
        ``urgency`` (`Urgency.REQUESTED`: ahead of the backlog)."""
        self._urgency = min(self._urgency, urgency)
        self._rescan.set()

    def _reconcile_loop(self) -> None:
        interval = self.reconcile_interval_s or None
        while not self._stop.is_set():
            self._rescan.wait(interval)
            if self._stop.is_set():
                return
            self._rescan.clear()
            urgency, self._urgency = self._urgency, Urgency.BACKLOG
            try:
                self.backend.ensure_roots()
                self.indexer.scan(urgency)
            except Exception:
                log.exception("reconcile_failed")


def _inotify(sink: ChangeSink) -> Backend:
    from semdexd.watch.inotify import InotifyTree

    return InotifyTree(sink)


def _observer(sink: ChangeSink) -> Backend:
    from semdexd.watch.observer import ObserverBackend

    return ObserverBackend(sink)
